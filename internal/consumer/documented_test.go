package consumer

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/wxapi"
	"github.com/wxterm/wxterm/internal/wxsim"
)

// The call policy against a simulator that answers as WeChat Pay's pages
// document (issue 13 items 3-5).

// Regression (issue 13): already_terminated was decided by counting
// attempts, so a contract its user had terminated was reported as
// terminated by us after a transient failure, and the global 403
// CONTRACT_NOT_EXIST of a missing contract was reported rejected.
func TestOutcomesFollowWeChatsWord(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	userAt := time.Now().Add(-time.Hour)
	type tc struct {
		in        event.Intent
		user      bool // terminated by its user before the run
		missing   bool // no such contract at WeChat Pay
		wantType  string
		wantWhy   string // terminate-failed reason
		wantAlrdy bool
	}
	var cases []tc
	faults := map[string]int{}
	for i, api := range event.APIs {
		code := strconv.Itoa(i)
		user := newIntent(api, "USR"+code)
		missing := newIntent(api, "MIS"+code)
		ours := newIntent(api, "OUR"+code)
		k := seed(h.sim, user)
		h.sim.TerminateAs(k, wxsim.ByUser, userAt)
		faults[k] = 1 // a transient failure (429, not sent) comes first
		mk := missing.OutContractCode
		if api == event.GlobalPapay {
			mk = missing.ContractID
		}
		h.sim.SeedMissing(mk)
		faults[mk] = 1
		faults[seed(h.sim, ours)] = 1
		cases = append(cases,
			tc{in: user, user: true, wantType: event.TypeTerminated, wantAlrdy: true},
			tc{in: missing, missing: true, wantType: event.TypeFailed, wantWhy: event.ReasonNotFound},
			tc{in: ours, wantType: event.TypeTerminated})
	}
	h.sim.SetFaults(wxsim.Faults{FailFirst: faults, Kinds: []wxsim.FaultKind{wxsim.Fault429}})
	h.start(h.options(0))
	var ins []event.Intent
	for _, c := range cases {
		ins = append(ins, c.in)
	}
	h.publish(ins...)
	got := byRequest(h.waitEvents(len(ins), waitLong))
	for _, c := range cases {
		e := got[c.in.RequestID]
		if len(e) != 1 {
			t.Errorf("%s: got %d events; want 1", c.in.RequestID, len(e))
			continue
		}
		if e[0].EventType != c.wantType || e[0].Reason != c.wantWhy || e[0].AlreadyTerminated != c.wantAlrdy {
			t.Errorf("%s: got %s reason %q already_terminated %v; want %s reason %q already_terminated %v",
				c.in.RequestID, e[0].EventType, e[0].Reason, e[0].AlreadyTerminated, c.wantType, c.wantWhy, c.wantAlrdy)
		}
		if c.user && (e[0].Contract == nil || e[0].Contract.TerminationMode != string(wxapi.ModeUser) || e[0].Contract.TerminatedAt == nil) {
			t.Errorf("%s: got contract %+v; want termination mode user with its time", c.in.RequestID, e[0].Contract)
		}
	}
}

func TestAlreadyTerminatedRule(t *testing.T) {
	first := time.Date(2026, 12, 3, 12, 0, 0, 500e6, time.UTC)
	at := func(d time.Duration) time.Time { return first.Truncate(time.Second).Add(d) }
	ct := func(mode wxapi.Mode, t time.Time) *wxapi.Contract {
		return &wxapi.Contract{Status: wxapi.StatusTerminated, TerminationMode: mode, TerminatedAt: t}
	}
	console := func(t time.Time) *wxapi.Contract {
		c := ct(wxapi.ModeMerchant, t)
		c.API, c.ContractTerminationMode = wxapi.PapayDirect, "WEPAY_WEB_TERMINATE"
		return c
	}
	c := &Consumer{opts: Options{ClockSkew: 10 * time.Second}}
	sent := &sentMark{first: first, attempts: 1}
	none := &sentMark{}
	cases := []struct {
		name      string
		ct        *wxapi.Contract
		mark      *sentMark
		takenOver bool
		want      bool
	}{
		{"user, after our call", ct(wxapi.ModeUser, at(time.Minute)), sent, false, true},
		{"customer service", ct(wxapi.ModeCustomerService, at(0)), sent, false, true},
		{"platform", ct(wxapi.ModePlatform, at(0)), sent, true, true},
		{"system", ct(wxapi.ModeSystem, time.Time{}), none, true, true},
		{"merchant, long before our call", ct(wxapi.ModeMerchant, at(-time.Hour)), sent, false, true},
		{"merchant, the second of our call", ct(wxapi.ModeMerchant, at(0)), sent, false, false},
		{"merchant, a second before (clock skew)", ct(wxapi.ModeMerchant, at(-time.Second)), sent, false, false},
		{"merchant, 9 s before (within the 10 s skew)", ct(wxapi.ModeMerchant, at(-9*time.Second)), sent, false, false},
		{"merchant, 11 s before (beyond the skew)", ct(wxapi.ModeMerchant, at(-11*time.Second)), sent, false, true},
		{"merchant console, after our call", console(at(time.Minute)), sent, false, true},
		{"merchant console, taken over", console(at(-time.Hour)), none, true, true},
		{"merchant, after our call", ct(wxapi.ModeMerchant, at(3*time.Second)), sent, false, false},
		{"merchant, no time (global 204)", ct(wxapi.ModeMerchant, time.Time{}), sent, false, false},
		{"merchant, nothing of ours sent", ct(wxapi.ModeMerchant, at(-time.Hour)), none, false, true},
		{"merchant, a dead owner may have called", ct(wxapi.ModeMerchant, at(-time.Hour)), none, true, false},
		// Taken over, then our own terminate refused: the dead owner's call
		// was applied late, before ours.
		{"merchant, before our call, taken over", ct(wxapi.ModeMerchant, at(-time.Minute)), sent, true, false},
		{"unknown mode, before our call", ct(wxapi.ModeUnknown, at(-time.Hour)), sent, false, true},
		{"not terminated", &wxapi.Contract{Status: wxapi.StatusPending}, none, false, false},
	}
	for _, tc := range cases {
		if got := c.already(tc.ct, tc.mark, tc.takenOver); got != tc.want {
			t.Errorf("%s: got already_terminated %v; want %v", tc.name, got, tc.want)
		}
	}
}

// A papay terminate that leaves the contract TERMINATE_PENDING is polled,
// never terminated again and never reported failed while it resolves.
func TestPendingTerminationIsPolled(t *testing.T) {
	h := newHarness(t, harnessOpts{sim: func(o *wxsim.Options) { o.PendingFor = 1500 * time.Millisecond }})
	in := newIntent(event.PapayPartner, "PEND1")
	key := seed(h.sim, in)
	h.start(h.options(0))
	h.publish(in)
	e := h.waitEvents(1, waitLong)[0]
	if e.EventType != event.TypeTerminated || e.AlreadyTerminated || e.Attempts != 1 ||
		e.Contract == nil || e.Contract.State != string(wxapi.StatusTerminated) {
		t.Errorf("got %+v (contract %+v); want contract-terminated by this call, state terminated", e, e.Contract)
	}
	if n := h.sim.TerminateCalls(key); n != 1 {
		t.Errorf("simulator saw %d terminate calls; want 1", n)
	}
}

// A termination still pending when the retry budget ends is reported
// retries_exhausted with the outcome unknown, stored as such: the next
// request queries first and never terminates again.
func TestPendingBeyondTheBoundIsUnknown(t *testing.T) {
	h := newHarness(t, harnessOpts{sim: func(o *wxsim.Options) { o.PendingFor = time.Hour }})
	in := newIntent(event.PapayDirect, "PEND2")
	key := seed(h.sim, in)
	opts := h.options(0)
	opts.Retry.MaxElapsed = time.Second
	c, _ := h.start(opts)
	h.publish(in)
	e := h.waitEvents(1, waitLong)[0]
	if e.EventType != event.TypeFailed || e.Reason != event.ReasonRetriesExhausted || e.Attempts != 1 {
		t.Fatalf("got %+v; want retries_exhausted after 1 attempt", e)
	}
	rec, err := h.published(in)
	if a, ok := rec.Answer(in.RequestID); err != nil || !ok || !a.Own || a.Kind != dedupe.KindUnknown || rec.Unknown != in.RequestID {
		t.Errorf("got record %+v, %v; want the request's outcome stored as unknown", rec, err)
	}
	again := in
	again.RequestID = "req-PEND2-again"
	h.publish(again)
	h.waitEvents(2, waitLong)
	h.settle(c)
	if n := h.sim.TerminateCalls(key); n != 1 {
		t.Errorf("simulator saw %d terminate calls; want 1 (the pending one, never again)", n)
	}
}

// Regression (issue 12 item 5): a retries_exhausted whose call may have
// reached WeChat Pay was stored as a known failure, so the next request
// terminated without querying, was refused, and reported the contract our
// own call had terminated as already_terminated.
func TestUnknownOutcomeMakesTheNextRequestQuery(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	in := newIntent(event.PapayPartner, "UNK1")
	key := seed(h.sim, in)
	// The terminate takes effect, its answer is lost, and every query fails.
	h.sim.SetFaults(wxsim.Faults{Rate: 1, Kinds: []wxsim.FaultKind{wxsim.FaultHTTP500}, AfterApply: true})
	opts := h.options(0)
	opts.Retry.MaxElapsed = time.Second
	c, _ := h.start(opts)
	h.publish(in)
	e := h.waitEvents(1, waitLong)[0]
	if e.EventType != event.TypeFailed || e.Reason != event.ReasonRetriesExhausted {
		t.Fatalf("got %+v; want retries_exhausted", e)
	}
	h.sim.SetFaults(wxsim.Faults{})
	queries := h.sim.TotalQueryCalls()
	again := in
	again.RequestID = "req-UNK1-again"
	h.publish(again)
	h.waitFor("the second request", waitLong, func(ev []event.Result, _ []kafka.Message) bool {
		return len(byRequest(ev)[again.RequestID]) > 0
	})
	evs := byRequest(h.settle(c))[again.RequestID]
	if len(evs) != 1 || evs[0].EventType != event.TypeTerminated || evs[0].AlreadyTerminated {
		t.Errorf("second request: got %+v; want contract-terminated, not already_terminated (our own call terminated it)", evs)
	}
	if n := h.sim.TerminateCalls(key); n != 1 {
		t.Errorf("simulator saw %d terminate calls; want 1", n)
	}
	if q := h.sim.TotalQueryCalls() - queries; q < 1 {
		t.Errorf("the second request made %d queries; want at least 1", q)
	}
}

// Regression (issue 12 item 5): a record lost while the worker's terminate
// call was in flight (evicted, deleted, lost in a failover) made the worker
// claim again as if nothing had been sent, terminate a second time and
// report the contract its own call had terminated as already_terminated.
func TestRecordLostMidCallQueriesFirst(t *testing.T) {
	h := newHarness(t, harnessOpts{storeOpts: dedupe.Options{Lease: 900 * time.Millisecond}})
	in := newIntent(event.PapayDirect, "LOST1")
	key := seed(h.sim, in)
	// The terminate takes effect, then WeChat holds the answer.
	h.sim.SetFaults(wxsim.Faults{FailFirst: map[string]int{key: 1}, Kinds: []wxsim.FaultKind{wxsim.FaultTimeout},
		AfterApply: true, HangFor: time.Minute})
	c, _ := h.start(h.options(30 * time.Second))
	h.publish(in)
	waitUntil(t, "the terminate took effect", func() bool { return h.sim.Terminations(key) > 0 })
	if err := h.rdb.Del(context.Background(), h.prefix+"{"+in.OutContractCode+"}").Err(); err != nil {
		t.Fatal(err)
	}
	h.waitEvents(1, waitLong)
	evs := byRequest(h.settle(c))[in.RequestID]
	if len(evs) != 1 || evs[0].EventType != event.TypeTerminated || evs[0].AlreadyTerminated {
		t.Errorf("got %+v; want one contract-terminated, not already_terminated (this worker's call terminated it)", evs)
	}
	if n := h.sim.TerminateCalls(key); n != 1 {
		t.Errorf("simulator saw %d terminate calls; want 1 (a query, not a second terminate)", n)
	}
}

// Regression (the flake of TestSlowKeyDoesNotBlockItsPartition): a call
// abandoned by a drain that timed out (a rebalance, a shutdown) kept its
// claim until the lease ran out, because a terminate had been sent, so the
// intent, delivered again, waited Busy for up to a lease (30 s by default).
// The claim is handed back: the next owner takes over at once and queries
// first.
func TestAbandonedCallHandsTheClaimBack(t *testing.T) {
	h := newHarness(t, harnessOpts{partitions: 1})
	in := newIntent(event.CreditRepayment, "ABAND1")
	key := seed(h.sim, in)
	h.sim.SetFaults(wxsim.Faults{FailFirst: map[string]int{key: 1}, Kinds: []wxsim.FaultKind{wxsim.FaultTimeout}, HangFor: time.Minute})
	opts := h.options(30 * time.Second)
	opts.ShutdownTimeout = 500 * time.Millisecond
	_, stop := h.start(opts)
	h.publish(in)
	waitUntil(t, "the terminate call reached the simulator", func() bool { return h.sim.TerminateCalls(key) > 0 })
	stop()
	// Run may return before its lanes end (issue 12 item 1): read the record
	// once the claim is handed back, or after a bound.
	rec, err := h.store.Get(context.Background(), in.OutContractCode)
	for end := time.Now().Add(10 * time.Second); err == nil && rec.Owner != "" && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
		rec, err = h.store.Get(context.Background(), in.OutContractCode)
	}
	if err != nil || rec.State != dedupe.StateInFlight || rec.Owner != "" {
		t.Fatalf("after the drain: got record %+v, %v; want in flight and handed back (no owner)", rec, err)
	}
	c2, _ := h.start(opts)
	h.waitEvents(1, waitLong)
	evs := h.settle(c2)
	if len(evs) != 1 || evs[0].EventType != event.TypeTerminated || evs[0].AlreadyTerminated {
		t.Errorf("got %+v; want one contract-terminated by our call", evs)
	}
	if n := h.sim.Terminations(key); n != 1 {
		t.Errorf("%d terminations; want 1", n)
	}
}

// waitUntil polls cond until it holds, failing the test after waitLong.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(waitLong); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}
