package consumer

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestGateHoldsCallsAndLetsOneProbe(t *testing.T) {
	g := newGate(50*time.Millisecond, time.Now)
	ctx := context.Background()
	if err := g.enter(ctx); err != nil {
		t.Fatalf("open gate: got %v; want nil", err)
	}
	if !g.trip(errors.New("sign error")) {
		t.Fatal("trip of an open gate: got false; want true")
	}
	// Right after the trip nobody may pass until a probe interval elapsed.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := g.enter(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("tripped gate: got %v; want deadline exceeded", err)
	}
	// After the interval exactly one caller probes; a second one waits.
	if err := g.enter(ctx); err != nil {
		t.Fatalf("probe: got %v", err)
	}
	waiting := make(chan error, 1)
	go func() { waiting <- g.enter(ctx) }()
	select {
	case err := <-waiting:
		t.Fatalf("second caller passed during the probe: %v", err)
	case <-time.After(10 * time.Millisecond):
	}
	if !g.ok() {
		t.Fatal("ok after trip: got false; want true")
	}
	if err := <-waiting; err != nil {
		t.Fatalf("after reopening: got %v", err)
	}
	if g.err() != nil {
		t.Fatalf("got cause %v after reopening; want nil", g.err())
	}
}
