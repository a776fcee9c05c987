package consumer

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// gate holds one merchant's calls to one WeChat Pay host while a systemic
// fault (its signature refused, WeChat's answers not validating against
// its keys, its keys unusable, its permission missing) is in force: such a
// failure is the merchant's misconfiguration, not the contract's, so
// answering intents with terminate-failed would flood billing with false
// failures. While tripped, one caller per probe interval is let through to
// see whether the fault cleared, and no other while that probe is out; the
// first success reopens the gate. Waiting callers sleep until the gate
// reopens or it may be their turn: they never spin. Safe for concurrent use.
type gate struct {
	mchID, host string // what it holds
	interval    time.Duration
	now         func() time.Time

	mu        sync.Mutex
	cause     error     // nil while open
	since     time.Time // when it tripped
	lastProbe time.Time // when the last probe was let through (or the trip)
	probing   bool      // a probe is out
	changed   chan struct{}
}

func newGate(mchID, host string, interval time.Duration, now func() time.Time) *gate {
	return &gate{mchID: mchID, host: host, interval: interval, now: now, changed: make(chan struct{})}
}

// admit decides for one caller: pass (open, or probe: this caller is the
// probe and must call probed when its call ends), or wait up to wait
// (0: until changed) and ask again.
func (g *gate) admit() (pass, probe bool, wait time.Duration, changed <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cause == nil {
		return true, false, 0, nil
	}
	if g.probing {
		return false, false, 0, g.changed
	}
	now := g.now()
	if wait = g.interval - now.Sub(g.lastProbe); wait <= 0 {
		g.probing, g.lastProbe = true, now
		return true, true, 0, nil
	}
	return false, false, wait, g.changed
}

// enter returns when the caller may call WeChat Pay: at once while the gate
// is open, else when it reopens or it is this caller's turn to probe
// (probe true: call probed when the call ended).
func (g *gate) enter(ctx context.Context) (probe bool, err error) {
	for {
		pass, probe, wait, changed := g.admit()
		if pass {
			return probe, nil
		}
		var timer *time.Timer
		var timeout <-chan time.Time
		if wait > 0 {
			timer = time.NewTimer(wait)
			timeout = timer.C
		}
		select {
		case <-ctx.Done():
		case <-changed:
		case <-timeout:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
	}
}

// probed ends a probe: the next one may go an interval after this one
// started. Callers waiting for the probe look again.
func (g *gate) probed() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.probing {
		g.probing = false
		g.wake()
	}
}

// wake tells the waiting callers to look again; g.mu is held.
func (g *gate) wake() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// trip closes the gate (or keeps it closed with a newer cause); it reports
// whether the gate was open before.
func (g *gate) trip(cause error) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	wasOpen := g.cause == nil
	g.cause = cause
	if wasOpen {
		g.since = g.now()
		g.lastProbe = g.since
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
	g.cause, g.probing = nil, false
	g.wake()
	return true
}

// err is the fault holding the gate, nil while open.
func (g *gate) err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cause
}

// Hold is what a tripped gate holds: one merchant's calls to one WeChat Pay
// host, since a systemic fault.
type Hold struct {
	MchID string
	Host  string
	Since time.Time
	Cause error
}

func (h Hold) String() string {
	return fmt.Sprintf("merchant %s on %s since %s: %v", h.MchID, h.Host, h.Since.UTC().Format(time.RFC3339), h.Cause)
}
