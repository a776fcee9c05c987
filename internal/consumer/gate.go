package consumer

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxterm/wxterm/internal/wxapi"
)

// gate holds all calls to WeChat Pay while a systemic fault (our signature
// rejected, WeChat's signature not validating, a missing key) is in force:
// such a failure is our misconfiguration, not the contract's, so answering
// intents with terminate-failed would flood billing with false failures.
// While tripped, one caller per probe interval is let through to see whether
// the fault cleared; the first success reopens the gate. Safe for concurrent use.
type gate struct {
	interval time.Duration
	now      func() time.Time

	mu        sync.Mutex
	cause     error // nil while open
	lastProbe time.Time
	open      chan struct{} // closed when the gate reopens
}

func newGate(interval time.Duration, now func() time.Time) *gate {
	return &gate{interval: interval, now: now, open: make(chan struct{})}
}

// enter returns when the caller may call WeChat Pay: at once while the gate
// is open, else when it reopens or it is this caller's turn to probe.
func (g *gate) enter(ctx context.Context) error {
	for {
		g.mu.Lock()
		if g.cause == nil {
			g.mu.Unlock()
			return nil
		}
		wait := g.interval - g.now().Sub(g.lastProbe)
		if wait <= 0 {
			g.lastProbe = g.now()
			g.mu.Unlock()
			return nil
		}
		open := g.open
		g.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-open:
		case <-t.C:
		}
		t.Stop()
	}
}

// trip closes the gate; it reports whether the gate was open before.
func (g *gate) trip(cause error) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	wasOpen := g.cause == nil
	g.cause = cause
	if wasOpen {
		g.lastProbe = g.now()
	}
	return wasOpen
}

// ok reopens the gate after a call that was not a systemic failure; it
// reports whether the gate was closed before.
func (g *gate) ok() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cause == nil {
		return false
	}
	g.cause = nil
	close(g.open)
	g.open = make(chan struct{})
	return true
}

// err is the fault holding the gate, nil while open.
func (g *gate) err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cause
}

// gates finds the gate that holds a call. Today one gate holds every
// merchant and host; a gate per merchant and host would be chosen here by
// the request and merchant, with the systemic gauge and Ready reading all.
type gates struct {
	all      *gate
	systemic prometheus.Gauge // 1 while a gate is tripped
	log      *slog.Logger
}

func newGates(interval time.Duration, now func() time.Time, systemic prometheus.Gauge, log *slog.Logger) *gates {
	return &gates{all: newGate(interval, now), systemic: systemic, log: log}
}

// of is the gate of a call of merchant mchID to r's host. Both are unused
// while one gate holds everything; they are what a gate per merchant and
// host keys on.
func (gs *gates) of(mchID string, r wxapi.Request) *gate { return gs.all }

// err is a fault holding calls, nil when none does.
func (gs *gates) err() error { return gs.all.err() }

// hold is the middleware that holds a merchant's calls while a systemic
// fault is in force (see gate): a systemic failure trips the call's gate;
// an answer WeChat Pay judged (success or permanent refusal) proves our
// signature good and reopens it. A transient failure proves nothing: the
// gate stays as it is.
func (gs *gates) hold(mchID string) middleware {
	return func(_ string, next callFunc) callFunc {
		return func(ctx context.Context, r wxapi.Request) (*wxapi.Contract, error) {
			gt := gs.of(mchID, r)
			if err := gt.enter(ctx); err != nil {
				return nil, err
			}
			ct, err := next(ctx, r)
			if err != nil && ctx.Err() != nil {
				return ct, err
			}
			switch {
			case err != nil && wxapi.Classify(err) == wxapi.Systemic:
				if gt.trip(err) {
					gs.systemic.Set(1)
					gs.log.Error("systemic WeChat Pay fault: holding all calls until it clears", "err", err,
						"mchid", mchID, "out_contract_code", r.OutContractCode)
				}
			case err == nil || wxapi.Classify(err) == wxapi.Permanent:
				if gt.ok() {
					gs.systemic.Set(0)
					gs.log.Info("systemic WeChat Pay fault cleared: calls resume")
				}
			}
			return ct, err
		}
	}
}
