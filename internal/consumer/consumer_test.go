package consumer

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/wxapi"
	"github.com/wxterm/wxterm/internal/wxsim"
)

const waitLong = 60 * time.Second

func newIntent(api event.API, code string) event.Intent {
	in := event.Intent{
		SchemaVersion: 1, RequestID: "req-" + code, RequestedAt: time.Now().UTC().Truncate(time.Second),
		Source: "test", API: api, OutContractCode: code, Remark: "closing the product",
	}
	switch api {
	case event.PapayPartner:
		in.PlanID, in.SubMchID = "12535", "1900000109"
	case event.PapayDirect:
		in.PlanID = "12535"
	case event.GlobalPapay:
		in.ContractID, in.AppID = "gc"+code, "wxcbda96de0b165486"
	}
	return in
}

// seed makes the simulator hold an effective contract matching in, and
// returns the key the simulator counts its calls by.
func seed(sim *wxsim.Server, in event.Intent) string {
	sim.Seed(wxsim.Contract{
		API: wxapi.API(in.API), OutContractCode: in.OutContractCode, PlanID: in.PlanID, ContractID: in.ContractID,
		SubMchID: in.SubMchID, AppID: in.AppID, SpAppID: in.SpAppID, SubAppID: in.SubAppID,
		DisplayName: "*明",
	})
	if in.API == event.GlobalPapay {
		return in.ContractID
	}
	return in.OutContractCode
}

func TestEveryAPITerminates(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	inst := newIntent(event.GlobalPapay, "GP2")
	inst.AppID, inst.SpAppID, inst.SubMchID, inst.SubAppID = "", "wxcbda96de0b165486", "10000097", "wxcbda96de0b165484"
	ins := []event.Intent{
		newIntent(event.CreditRepayment, "CR1"), newIntent(event.PapayPartner, "PP1"),
		newIntent(event.PapayDirect, "PD1"), newIntent(event.GlobalPapay, "GP1"), inst,
	}
	simKeys := map[string]string{}
	for _, in := range ins {
		simKeys[in.RequestID] = seed(h.sim, in)
	}
	h.start(h.options(0))
	h.publish(ins...)
	got := byRequest(h.waitEvents(len(ins), waitLong))
	for _, in := range ins {
		evs := got[in.RequestID]
		if len(evs) != 1 {
			t.Errorf("%s: got %d events; want 1", in.RequestID, len(evs))
			continue
		}
		e := evs[0]
		if e.EventType != event.TypeTerminated || e.API != in.API || e.Attempts != 1 || e.AlreadyTerminated || e.Replayed {
			t.Errorf("%s: got %+v; want contract-terminated after 1 attempt", in.RequestID, e)
		}
		if e.EventID != event.EventID(in.RequestID, in.OutContractCode, event.TypeTerminated) {
			t.Errorf("%s: event_id %s is not the stable id", in.RequestID, e.EventID)
		}
		if e.Contract == nil || e.Contract.State != string(wxapi.StatusTerminated) || e.Contract.ContractState == "" ||
			e.Contract.TerminationMode != string(wxapi.ModeMerchant) {
			t.Errorf("%s: got contract %+v; want state %s, WeChat's raw state and mode %s", in.RequestID, e.Contract, wxapi.StatusTerminated, wxapi.ModeMerchant)
		}
		if in.API != event.GlobalPapay && (e.Contract.OutContractCode != in.OutContractCode || e.Contract.ContractTerminatedTime == "" || e.Contract.ContractID == "") {
			t.Errorf("%s: got contract %+v; want WeChat's fields", in.RequestID, e.Contract)
		}
		if in.API == event.GlobalPapay && e.Contract.ContractID != in.ContractID {
			t.Errorf("%s: got contract id %q; want %q", in.RequestID, e.Contract.ContractID, in.ContractID)
		}
		if n := h.sim.TerminateCalls(simKeys[in.RequestID]); n != 1 {
			t.Errorf("%s: simulator saw %d terminate calls; want 1", in.RequestID, n)
		}
		rec, err := h.published(in)
		if err != nil || rec.State != dedupe.StateDone || rec.Kind != dedupe.KindTerminated || !rec.Published[in.RequestID] {
			t.Errorf("%s: got record %+v, %v; want done, terminated, published", in.RequestID, rec, err)
		}
	}
}

func TestDuplicatesCallOnceAndPublishOnce(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	in := newIntent(event.PapayDirect, "DUP1")
	key := seed(h.sim, in)
	c, _ := h.start(h.options(0))
	h.publish(in, in, in)
	h.waitEvents(1, waitLong)
	// A new request for the terminated contract is answered from the record.
	again := in
	again.RequestID = "req-DUP1-again"
	h.publish(again)
	h.waitEvents(2, waitLong)
	evs := h.settle(c)
	got := byRequest(evs)
	if len(got[in.RequestID]) != 1 {
		t.Errorf("got %d events for the duplicated request; want 1", len(got[in.RequestID]))
	}
	if e := got[again.RequestID]; len(e) != 1 || !e[0].AlreadyTerminated || e[0].Attempts != 0 || e[0].EventType != event.TypeTerminated {
		t.Errorf("got %+v for a new request of a terminated contract; want one already_terminated event without a call", e)
	}
	if n := h.sim.TerminateCalls(key); n != 1 {
		t.Errorf("simulator saw %d terminate calls; want 1", n)
	}
	if d := c.Stats().Duplicates.Load(); d != 2 {
		t.Errorf("got %d duplicates counted; want 2", d)
	}
}

func TestTransientFailuresAreRetried(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	cases := []struct {
		code       string
		kinds      []wxsim.FaultKind
		afterApply bool
		wantCalls  int
	}{
		{"T500", []wxsim.FaultKind{wxsim.FaultHTTP500, wxsim.FaultHTTP503}, false, 3},
		{"T429", []wxsim.FaultKind{wxsim.Fault429}, false, 3},
		{"TDROP", []wxsim.FaultKind{wxsim.FaultDrop}, false, 3},
		// The answer is lost after WeChat terminated the contract: a query
		// finds it terminated, so there is no second terminate call.
		{"TLOST", []wxsim.FaultKind{wxsim.FaultTimeout}, true, 1},
	}
	var ins []event.Intent
	for _, tc := range cases {
		in := newIntent(event.CreditRepayment, tc.code)
		seed(h.sim, in)
		ins = append(ins, in)
	}
	// One fault profile at a time, so each contract sees only its kinds.
	for i, tc := range cases {
		h.sim.SetFaults(wxsim.Faults{FailFirst: map[string]int{tc.code: 2}, Kinds: tc.kinds, AfterApply: tc.afterApply, HangFor: 3 * time.Second})
		if i == 0 {
			h.start(h.options(time.Second))
		}
		h.publish(ins[i])
		h.waitFor(tc.code, waitLong, func(ev []event.Result, _ []kafka.Message) bool { return len(byRequest(ev)[ins[i].RequestID]) > 0 })
	}
	got := byRequest(h.snapshot())
	for i, tc := range cases {
		e := got[ins[i].RequestID]
		if len(e) != 1 || e[0].EventType != event.TypeTerminated {
			t.Errorf("%s: got %+v; want one contract-terminated", tc.code, e)
			continue
		}
		if e[0].AlreadyTerminated {
			t.Errorf("%s: got already_terminated; the contract was terminated by this request", tc.code)
		}
		if n := h.sim.TerminateCalls(tc.code); n != tc.wantCalls {
			t.Errorf("%s: simulator saw %d terminate calls; want %d", tc.code, n, tc.wantCalls)
		}
		if n := h.sim.Terminations(tc.code); n != 1 {
			t.Errorf("%s: %d terminations; want 1", tc.code, n)
		}
	}
}

func TestPermanentRejections(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	// WeChat answers PARAM_ERROR: the sub-merchant is not the contract's.
	bad := newIntent(event.PapayPartner, "PERM1")
	key := seed(h.sim, bad)
	bad.SubMchID = "1900000999"
	// No such contract at WeChat Pay.
	missing := newIntent(event.CreditRepayment, "NOSUCH1")
	// Already terminated by the user before we called.
	gone := newIntent(event.CreditRepayment, "GONE1")
	seed(h.sim, gone)
	// By the merchant an hour ago (its console): WeChat's time, before our call, says so.
	h.sim.Seed(wxsim.Contract{API: wxapi.CreditRepayment, OutContractCode: "GONE1", State: wxsim.Terminated, DisplayName: "x",
		TerminatedTime: time.Now().Add(-time.Hour)})
	h.start(h.options(0))
	h.publish(bad, missing, gone)
	got := byRequest(h.waitEvents(3, waitLong))
	if e := got[bad.RequestID]; len(e) != 1 || e[0].EventType != event.TypeFailed || e[0].Reason != event.ReasonRejected ||
		e[0].ErrorCode != "PARAM_ERROR" || e[0].HTTPStatus != 400 || *e[0].Retryable || e[0].Attempts != 1 {
		t.Errorf("PARAM_ERROR: got %+v; want one terminate-failed rejected PARAM_ERROR after 1 attempt", e)
	}
	if n := h.sim.TerminateCalls(key); n != 1 {
		t.Errorf("PARAM_ERROR: %d terminate calls; want 1 (no retry)", n)
	}
	if e := got[missing.RequestID]; len(e) != 1 || e[0].Reason != event.ReasonNotFound || e[0].HTTPStatus != 404 {
		t.Errorf("not found: got %+v; want terminate-failed not_found", e)
	}
	if e := got[gone.RequestID]; len(e) != 1 || e[0].EventType != event.TypeTerminated || !e[0].AlreadyTerminated {
		t.Errorf("already terminated: got %+v; want contract-terminated with already_terminated", e)
	}
	// A failure does not block a later intent with a new request id.
	fixed := bad
	fixed.RequestID, fixed.SubMchID = "req-PERM1-fixed", "1900000109"
	h.publish(fixed)
	h.waitFor("the fixed request", waitLong, func(ev []event.Result, _ []kafka.Message) bool {
		e := byRequest(ev)[fixed.RequestID]
		return len(e) == 1 && e[0].EventType == event.TypeTerminated
	})
}

func TestInvalidIntentsNeverCallWeChat(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	c, _ := h.start(h.options(0))
	good := newIntent(event.PapayDirect, "OK1")
	seed(h.sim, good)
	h.publishRaw(
		kafka.Message{Key: []byte("BAD1"), Value: []byte(`{"schema_version":1,"request_id":"req-BAD1","out_contract_code":"BAD1","api":"papay_magic"}`)},
		kafka.Message{Key: []byte("BAD2"), Value: []byte("\xff\xfe not json")},
		kafka.Message{Key: []byte("BAD3"), Value: []byte(`{"request_id":"req-BAD3","out_contract_code":"BAD3","remark":"` + strings.Repeat("x", 20000) + `"}`)},
		kafka.Message{Value: []byte(`{}`)},
	)
	h.publish(good)
	h.waitFor("2 failures, 1 success, 2 dead letters", waitLong, func(ev []event.Result, dead []kafka.Message) bool {
		return len(ev) >= 2 && len(dead) >= 2
	})
	evs := h.settle(c)
	got := byRequest(evs)
	if e := got["req-BAD1"]; len(e) != 1 || e[0].Reason != event.ReasonInvalidRequest || e[0].Detail == "" || *e[0].Retryable {
		t.Errorf("BAD1: got %+v; want terminate-failed invalid_request with a detail", e)
	}
	if e := got[good.RequestID]; len(e) != 1 || e[0].EventType != event.TypeTerminated {
		t.Errorf("good intent after bad ones: got %+v", e)
	}
	h.mu.Lock()
	dead := append([]kafka.Message(nil), h.dead...)
	h.mu.Unlock()
	// BAD2 (not JSON), BAD3 (oversized, so not identified) and the empty one.
	if len(dead) != 3 {
		t.Errorf("got %d dead letters; want 3", len(dead))
	}
	for _, m := range dead {
		if header(m, event.HeaderDLQError) == "" || header(m, event.HeaderDLQSourceTopic) != h.requests || header(m, event.HeaderDLQSourceOffset) == "" {
			t.Errorf("dead letter %q lacks its error or source headers: %+v", m.Key, m.Headers)
		}
	}
	if n := h.sim.TotalTerminateCalls(); n != 1 {
		t.Errorf("simulator saw %d terminate calls; want 1 (the good intent)", n)
	}
}

// A consumer killed after storing an outcome but before publishing it leaves
// a done, unpublished record. Its successor must publish the stored result
// once and not call WeChat Pay again.
func TestCrashBetweenStoreAndPublish(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	in := newIntent(event.CreditRepayment, "CRASH1")
	key := seed(h.sim, in)
	ctx := context.Background()

	// The dead consumer's footprint: it claimed, terminated, stored.
	cl, err := h.store.Claim(ctx, in.OutContractCode, in.RequestID, "dead-owner")
	if err != nil || cl.Status != dedupe.Claimed {
		t.Fatalf("claim: %+v, %v", cl, err)
	}
	ct, err := h.client(0).Terminate(ctx, wxapi.Request{API: wxapi.CreditRepayment, OutContractCode: in.OutContractCode, Remark: in.Remark})
	if err != nil {
		t.Fatal(err)
	}
	stored := event.Terminated(in, event.Source{Topic: h.requests, Partition: 0, Offset: 0}, contract(ct), 1, false, time.Now())
	b, _ := json.Marshal(stored)
	if err := h.store.Complete(ctx, in.OutContractCode, in.RequestID, "dead-owner", dedupe.KindTerminated, b); err != nil {
		t.Fatal(err)
	}
	// Its intent was never committed, so the successor reads it again.
	c, _ := h.start(h.options(0))
	h.publish(in)
	h.waitEvents(1, waitLong)
	evs := h.settle(c)
	if len(evs) != 1 || evs[0].EventID != stored.EventID || evs[0].EventType != event.TypeTerminated {
		t.Fatalf("got %+v; want exactly the stored event", evs)
	}
	if n := h.sim.TerminateCalls(key); n != 1 {
		t.Errorf("simulator saw %d terminate calls; want 1 (the dead consumer's)", n)
	}
	rec, err := h.published(in)
	if err != nil || !rec.Published[in.RequestID] {
		t.Errorf("record %+v, %v: want it marked published", rec, err)
	}
}

// A worker that died after its terminate call succeeded but before recording
// it leaves an in-flight claim; the next owner must query, find the contract
// terminated, and record it without a second terminate call.
func TestExpiredLeaseIsResolvedByQuery(t *testing.T) {
	now := time.Now()
	h := newHarness(t, harnessOpts{})
	in := newIntent(event.PapayPartner, "LEASE1")
	key := seed(h.sim, in)
	ctx := context.Background()
	past := dedupe.New(h.rdb, dedupe.Options{Prefix: h.prefix, Now: func() time.Time { return now.Add(-time.Hour) }})
	if err := past.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if cl, err := past.Claim(ctx, in.OutContractCode, in.RequestID, "dead-owner"); err != nil || cl.Status != dedupe.Claimed {
		t.Fatalf("claim: %+v, %v", cl, err)
	}
	if _, err := h.client(0).Terminate(ctx, wxapi.Request{API: wxapi.PapayPartner, OutContractCode: in.OutContractCode,
		PlanID: in.PlanID, SubMchID: in.SubMchID, Remark: in.Remark}); err != nil {
		t.Fatal(err)
	}
	h.start(h.options(0))
	h.publish(in)
	evs := h.waitEvents(1, waitLong)
	if evs[0].EventType != event.TypeTerminated || evs[0].Attempts != 0 {
		t.Errorf("got %+v; want contract-terminated with no terminate attempt", evs[0])
	}
	if n := h.sim.TerminateCalls(key); n != 1 {
		t.Errorf("simulator saw %d terminate calls; want 1", n)
	}
}

// A slow key must not hold back the other keys of its partition.
func TestSlowKeyDoesNotBlockItsPartition(t *testing.T) {
	h := newHarness(t, harnessOpts{partitions: 1})
	slow := newIntent(event.CreditRepayment, "SLOW1")
	seed(h.sim, slow)
	// The slow contract's first call hangs until the client times out.
	h.sim.SetFaults(wxsim.Faults{FailFirst: map[string]int{"SLOW1": 1}, Kinds: []wxsim.FaultKind{wxsim.FaultTimeout}, HangFor: 20 * time.Second})
	ins := []event.Intent{slow}
	for i := range 10 {
		in := newIntent(event.CreditRepayment, fmt.Sprintf("FAST%d", i))
		seed(h.sim, in)
		ins = append(ins, in)
	}
	h.start(h.options(8 * time.Second))
	h.publish(ins...)
	evs := h.waitEvents(len(ins), waitLong)
	for i, e := range evs[:10] {
		if e.OutContractCode == "SLOW1" {
			t.Errorf("the slow contract's result arrived %dth; want it after the 10 fast ones", i+1)
		}
	}
}

// Messages of one key are handled in order: a second intent for a contract
// waits for the first.
func TestSameKeyStaysInOrder(t *testing.T) {
	h := newHarness(t, harnessOpts{partitions: 1})
	first := newIntent(event.PapayDirect, "ORD1")
	seed(h.sim, first)
	first.PlanID = "99999" // rejected
	second := first
	second.RequestID, second.PlanID = "req-ORD1-b", "12535"
	h.sim.SetFaults(wxsim.Faults{Latency: 50 * time.Millisecond})
	h.start(h.options(0))
	h.publish(first, second)
	evs := h.waitEvents(2, waitLong)
	if evs[0].RequestID != first.RequestID || evs[1].RequestID != second.RequestID {
		t.Errorf("got %s then %s; want them in publish order", evs[0].RequestID, evs[1].RequestID)
	}
}

func TestSystemicFaultHoldsWorkUntilItClears(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	var ins []event.Intent
	for i := range 5 {
		in := newIntent(event.CreditRepayment, fmt.Sprintf("SYS%d", i))
		seed(h.sim, in)
		ins = append(ins, in)
	}
	h.sim.SetFaults(wxsim.Faults{Rate: 1, Kinds: []wxsim.FaultKind{wxsim.FaultSignError}})
	c, _ := h.start(h.options(0))
	h.publish(ins...)
	deadline := time.Now().Add(waitLong)
	for c.Ready() == nil || !strings.Contains(c.Ready().Error(), "systemic") {
		if time.Now().After(deadline) {
			t.Fatalf("consumer never reported the systemic fault; ready: %v", c.Ready())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Held long enough that a retry budget (5s here) would have run out.
	time.Sleep(6 * time.Second)
	if n := len(h.snapshot()); n != 0 {
		t.Fatalf("got %d events during a systemic fault; want none", n)
	}
	h.sim.SetFaults(wxsim.Faults{})
	evs := h.waitEvents(len(ins), waitLong)
	for _, e := range evs {
		if e.EventType != event.TypeTerminated {
			t.Errorf("got %+v after the fault cleared; want contract-terminated", e)
		}
	}
	if err := c.Ready(); err != nil {
		t.Errorf("still unready after the fault cleared: %v", err)
	}
}

// A consumer stopped mid-run (SIGTERM's path) and a successor in the same
// group together answer every intent exactly once, with one terminate call
// per contract.
func TestStopAndRestartLosesNothing(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	const n = 300
	var ins []event.Intent
	for i := range n {
		in := newIntent(event.CreditRepayment, fmt.Sprintf("RS%04d", i))
		seed(h.sim, in)
		ins = append(ins, in)
	}
	h.sim.SetFaults(wxsim.Faults{Latency: 20 * time.Millisecond})
	opts := h.options(0)
	opts.MaxInFlight = 8
	_, stop := h.start(opts)
	h.publish(ins...)
	h.waitEvents(50, waitLong)
	stop()
	stoppedAt := len(h.snapshot())
	if stoppedAt >= n {
		t.Fatalf("all %d answered before the stop; the test proves nothing", n)
	}
	c2, _ := h.start(opts)
	h.waitEvents(n, waitLong)
	evs := h.settle(c2)
	got := byRequest(evs)
	for _, in := range ins {
		if e := got[in.RequestID]; len(e) != 1 || e[0].EventType != event.TypeTerminated {
			t.Errorf("%s: got %d events %+v; want one contract-terminated", in.RequestID, len(e), e)
		}
		if c := h.sim.TerminateCalls(in.OutContractCode); c != 1 {
			t.Errorf("%s: %d terminate calls; want 1", in.OutContractCode, c)
		}
	}
	t.Logf("first consumer answered %d of %d before stopping", stoppedAt, n)
}

func TestIntentsOutsideTheAllowlistAreNotAllowed(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	opts := h.options(0)
	opts.APIs = []event.API{event.PapayPartner, event.CreditRepayment}
	opts.Merchants[h.keys.MchID] = Merchant{Client: opts.Merchants[h.keys.MchID].Client, SubMchIDs: []string{"1900000109"}}
	reg := prometheus.NewRegistry()
	opts.Metrics = NewMetrics(reg)
	ok := newIntent(event.PapayPartner, "AL1")
	seed(h.sim, ok)
	otherSub := newIntent(event.PapayPartner, "AL2")
	otherSub.SubMchID = "1900000555"
	seed(h.sim, otherSub)
	otherMch := newIntent(event.CreditRepayment, "AL3")
	otherMch.MchID = "1900000001"
	seed(h.sim, otherMch)
	disabled := newIntent(event.PapayDirect, "AL4")
	seed(h.sim, disabled)
	h.start(opts)
	h.publish(ok, otherSub, otherMch, disabled)
	got := byRequest(h.waitEvents(4, waitLong))
	if e := got[ok.RequestID]; len(e) != 1 || e[0].EventType != event.TypeTerminated {
		t.Errorf("allowed intent: got %+v", e)
	}
	for _, in := range []event.Intent{otherSub, otherMch, disabled} {
		e := got[in.RequestID]
		if len(e) != 1 || e[0].Reason != event.ReasonNotAllowed || e[0].Detail == "" || e[0].Attempts != 0 {
			t.Errorf("%s: got %+v; want terminate-failed not_allowed", in.RequestID, e)
		}
		if n := h.sim.TerminateCalls(in.OutContractCode); n != 0 {
			t.Errorf("%s: %d terminate calls; want none", in.RequestID, n)
		}
	}
	// The consumer counts an outcome once its write to Kafka returns, which
	// may be a moment after this test has read the event.
	outcome := opts.Metrics.Outcomes.WithLabelValues("papay_partner", event.TypeFailed, event.ReasonNotAllowed)
	for deadline := time.Now().Add(10 * time.Second); testutil.ToFloat64(outcome) < 1 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if v := testutil.ToFloat64(outcome); v != 1 {
		t.Errorf("got outcomes{papay_partner,failed,not_allowed} = %v; want 1", v)
	}
	if v := testutil.ToFloat64(opts.Metrics.Consumed); v != 4 {
		t.Errorf("got consumed = %v; want 4", v)
	}
	if n := testutil.CollectAndCount(opts.Metrics.CallDuration); n != 1 {
		t.Errorf("got %d call-duration series; want 1 (one terminate of papay_partner)", n)
	}
}

func TestRetriesExhausted(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	in := newIntent(event.CreditRepayment, "EXH1")
	seed(h.sim, in)
	h.sim.SetFaults(wxsim.Faults{FailFirst: map[string]int{"EXH1": 1000}, Kinds: []wxsim.FaultKind{wxsim.Fault429}})
	opts := h.options(0)
	opts.Retry.MaxElapsed = time.Second
	h.start(opts)
	h.publish(in)
	e := h.waitEvents(1, waitLong)[0]
	if e.EventType != event.TypeFailed || e.Reason != event.ReasonRetriesExhausted || !*e.Retryable ||
		e.HTTPStatus != 429 || e.ErrorCode != wxapi.CodeRateLimitExceed || e.Attempts < 2 {
		t.Errorf("got %+v; want terminate-failed retries_exhausted, retryable, with the last 429", e)
	}
	if n := h.sim.Terminations("EXH1"); n != 0 {
		t.Errorf("got %d terminations; want 0", n)
	}
}

// -max-in-flight bounds the WeChat Pay requests on the wire per partition,
// while a few more intents are worked on around them.
func TestMaxInFlightBoundsCalls(t *testing.T) {
	h := newHarness(t, harnessOpts{partitions: 1})
	const n, limit = 60, 3
	var ins []event.Intent
	for i := range n {
		in := newIntent(event.CreditRepayment, fmt.Sprintf("MF%03d", i))
		seed(h.sim, in)
		ins = append(ins, in)
	}
	h.sim.SetFaults(wxsim.Faults{Latency: 30 * time.Millisecond})
	opts := h.options(0)
	opts.MaxInFlight = limit
	h.start(opts)
	h.publish(ins...)
	evs := h.waitEvents(n, waitLong)
	if got := len(byRequest(evs)); got != n {
		t.Fatalf("%d intents answered; want %d", got, n)
	}
	if p := h.sim.PeakConcurrent(); p > limit || p < 2 {
		t.Errorf("at most %d calls at WeChat Pay at once; want between 2 and -max-in-flight %d", p, limit)
	}
}
