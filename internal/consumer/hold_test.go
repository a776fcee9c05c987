package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wxterm/wxterm/event"
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
	m := NewMetrics(nil)
	gauge := m.Systemic
	clock := time.Now()
	gs := newGates(time.Hour, func() time.Time { return clock }, m, slog.New(slog.DiscardHandler))
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

// Regression: one systemic gate served every merchant, so a healthy
// merchant's success reopened a broken one's gate and the broken
// merchant's held lanes called again at once: 5 intents of a merchant whose
// signature was refused made 486 terminate calls in 2 s beside a healthy
// merchant, with a 500 ms probe interval. Now the broken merchant is held
// alone: the healthy one's results arrive, the broken one's calls (counted
// at its simulator) are at most one per probe interval once its first
// attempts failed, and its intents finish once the fault clears.
func TestBrokenMerchantHoldsOnlyItself(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	const interval = 300 * time.Millisecond
	const brokenID = "1900000299"
	broken := wxsim.New(brokenSimOptions(h.keys.SimOptions(), brokenID))
	srv := httptest.NewServer(broken)
	t.Cleanup(srv.Close)
	cfg := h.keys.ClientConfig(srv.URL)
	cfg.MchID = brokenID
	brokenClient, err := wxapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	opts := h.options(0)
	opts.SystemicProbeInterval = interval
	opts.Merchants[brokenID] = Merchant{Client: brokenClient}

	var healthy, held []event.Intent
	for i := range 40 {
		in := newIntent(event.CreditRepayment, fmt.Sprintf("OK%d", i))
		seed(h.sim, in)
		healthy = append(healthy, in)
	}
	for i := range 5 {
		in := newIntent(event.CreditRepayment, fmt.Sprintf("BROKEN%d", i))
		in.MchID = brokenID
		seed(broken, in)
		held = append(held, in)
	}
	broken.SetFaults(wxsim.Faults{Rate: 1, Kinds: []wxsim.FaultKind{wxsim.FaultSignError}})
	c, _ := h.start(opts)
	start := time.Now()
	h.publish(held...)
	h.publish(healthy...)
	h.waitFor("the healthy merchant's results", waitLong, func(ev []event.Result, _ []kafka.Message) bool {
		return len(ev) >= len(healthy)
	})
	// Hold a few probe intervals more, then count the broken merchant's calls.
	time.Sleep(5 * interval)
	calls := broken.TotalTerminateCalls() + broken.TotalQueryCalls()
	elapsed := time.Since(start)
	// Each intent's first attempt may leave before the first refusal trips
	// the gate; after that one probe per interval (+1 for the interval under way).
	limit := len(held) + int(elapsed/interval) + 1
	if calls > limit {
		t.Errorf("broken merchant's calls in %v: got %d; want at most %d (one per %v probe interval)", elapsed, calls, limit, interval)
	}
	// Ready: the healthy merchant works; the holds name the broken one.
	if err := c.Ready(); err != nil {
		t.Errorf("one merchant of two held: got unready %v; want ready", err)
	}
	if hs := c.Holds(); len(hs) != 1 || hs[0].MchID != brokenID || hs[0].Host != wxapi.CreditRepayment.Host() || wxapi.Classify(hs[0].Cause) != wxapi.Systemic {
		t.Errorf("holds: got %v; want %s on %s with its SIGN_ERROR", hs, brokenID, wxapi.CreditRepayment.Host())
	}
	for _, e := range h.snapshot() {
		if e.MchID == brokenID || !strings.HasPrefix(e.OutContractCode, "OK") || e.EventType != event.TypeTerminated {
			t.Errorf("while the broken merchant is held: got %s %s %s; want only the healthy merchant's contract-terminated", e.MchID, e.OutContractCode, e.EventType)
		}
	}

	broken.SetFaults(wxsim.Faults{})
	evs := h.waitEvents(len(healthy)+len(held), waitLong)
	for _, e := range evs {
		if e.EventType != event.TypeTerminated {
			t.Errorf("got %s %s after the fault cleared; want contract-terminated", e.OutContractCode, e.EventType)
		}
	}
	t.Logf("broken merchant: %d calls in %v (probe interval %v)", calls, elapsed, interval)
	if hs := c.Holds(); len(hs) != 0 {
		t.Errorf("holds after the fault cleared: got %v; want none", hs)
	}
}

// brokenSimOptions are the simulator options of a second merchant, mchID,
// with the same keys.
func brokenSimOptions(o wxsim.Options, mchID string) wxsim.Options {
	o.MchID = mchID
	return o
}
