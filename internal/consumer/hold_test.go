package consumer

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wxterm/wxterm/internal/wxapi"
	"github.com/wxterm/wxterm/internal/wxsim"
	"github.com/wxterm/wxterm/internal/wxsim/wxsimtest"
)

// The hold middleware is the gate's whole policy: a systemic failure trips
// the gate (gauge 1, calls held but one probe per interval), a transient one
// leaves it as it is, and an answer WeChat Pay judged (success or a
// permanent refusal) reopens it (gauge 0).
func TestHoldTripsOnSystemicAndReopensOnAJudgedAnswer(t *testing.T) {
	sim, client := wxsimtest.AutoCreating(t, 0)
	gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "systemic"})
	clock := time.Now()
	gs := newGates(time.Hour, func() time.Time { return clock }, gauge, slog.New(slog.DiscardHandler))
	c := decorate(client, gs.hold("m1"))
	ctx := context.Background()
	req := func(code string) wxapi.Request {
		return wxapi.Request{API: wxapi.CreditRepayment, OutContractCode: code, Remark: "r"}
	}

	sim.SetFaults(wxsim.Faults{Rate: 1, Kinds: []wxsim.FaultKind{wxsim.FaultSignError}})
	if _, err := c.Terminate(ctx, req("H1")); wxapi.Classify(err) != wxapi.Systemic {
		t.Fatalf("sign error: got %v; want a systemic failure", err)
	}
	if gs.err() == nil || testutil.ToFloat64(gauge) != 1 {
		t.Fatalf("after a systemic failure: got cause %v, gauge %v; want tripped, 1", gs.err(), testutil.ToFloat64(gauge))
	}
	// Held: the next probe is an hour away.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	before := sim.TotalTerminateCalls()
	if _, err := c.Terminate(short, req("H2")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("tripped gate: got %v; want the call held until its context ends", err)
	}
	if n := sim.TotalTerminateCalls() - before; n != 0 {
		t.Fatalf("calls reaching WeChat Pay while held: got %d; want 0", n)
	}

	// A transient failure proves nothing; a success reopens.
	clock = clock.Add(time.Hour) // a probe's turn
	sim.SetFaults(wxsim.Faults{Rate: 1, Kinds: []wxsim.FaultKind{wxsim.FaultHTTP500}})
	if _, err := c.Terminate(ctx, req("H3")); wxapi.Classify(err) != wxapi.Transient {
		t.Fatalf("500: got %v; want a transient failure", err)
	}
	if gs.err() == nil {
		t.Fatal("after a transient failure: got the gate open; want it still tripped")
	}
	clock = clock.Add(time.Hour)
	sim.SetFaults(wxsim.Faults{})
	if _, err := c.Terminate(ctx, req("H4")); err != nil {
		t.Fatalf("healthy call: got %v", err)
	}
	if gs.err() != nil || testutil.ToFloat64(gauge) != 0 {
		t.Fatalf("after a success: got cause %v, gauge %v; want open, 0", gs.err(), testutil.ToFloat64(gauge))
	}
}
