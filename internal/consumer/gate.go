package consumer

import (
	"context"
	"sync"
	"time"
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
