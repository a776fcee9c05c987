package dedupe_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/testenv"
)

// fail claims req for a fresh owner and completes it with kind and event.
func fail(t *testing.T, e env, req, kind string, event []byte) {
	t.Helper()
	owner := "w-" + req
	if c := claim(t, e, req, owner); c.Status != dedupe.Claimed && c.Status != dedupe.TakenOver {
		t.Fatalf("setup: Claim(%s): got %v; want to own it", req, c.Status)
	}
	must(t, e.s.Complete(t.Context(), code, req, owner, kind, event))
}

// Bug (issue 12 item 4): the record had one outcome slot, so every failure
// replaced the one before. Now each request keeps its own, up to
// MaxFailures; the oldest is dropped first, with its published flag.
func TestOutcomesPerRequest(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	clk := newClock()
	e := env{s: dedupe.New(rdb, dedupe.Options{MaxFailures: 3, Lease: lease, Now: clk.Now}), clk: clk, rdb: rdb, prefix: "wxterm:contract:"}
	for i := 1; i <= 5; i++ {
		req := fmt.Sprint("r", i)
		kind := dedupe.KindFailed
		if i == 4 {
			kind = dedupe.KindUnknown
		}
		fail(t, e, req, kind, []byte("failure of "+req))
		must(t, e.s.MarkPublished(t.Context(), code, req))
	}
	// r1 and r2 were dropped: a redelivery of either is processed as new.
	// r5's known failure cleared r4's unknown mark, so it is Claimed.
	for _, req := range []string{"r1", "r2"} {
		if a, err := e.s.Answer(t.Context(), code, req); !errors.Is(err, dedupe.ErrNotFound) {
			t.Errorf("Answer(%s) after its failure was dropped: got %+v, %v; want ErrNotFound", req, a, err)
		}
	}
	if c := claim(t, e, "r1", "again"); c.Status != dedupe.Claimed {
		t.Errorf("Claim(r1) after its failure was dropped: got %v; want Claimed", c.Status)
	}
	for i := 3; i <= 5; i++ {
		req := fmt.Sprint("r", i)
		c := claim(t, e, req, "dup")
		if c.Status != dedupe.Done || string(c.Outcome) != "failure of "+req || c.OutcomeRequestID != req || !c.Published {
			t.Errorf("Claim(%s): got %v %q of %s, published %v; want Done with its own outcome, published", req, c.Status, c.Outcome, c.OutcomeRequestID, c.Published)
		}
	}
	// A termination is never dropped, however many failures came before.
	must(t, e.s.Release(t.Context(), code, "again"))
	fail(t, e, "r6", dedupe.KindTerminated, []byte("termination"))
	r, err := e.s.Get(t.Context(), code)
	must(t, err)
	want := []dedupe.Outcome{
		{RequestID: "r3", Kind: dedupe.KindFailed, Event: []byte("failure of r3"), Published: true},
		{RequestID: "r4", Kind: dedupe.KindUnknown, Event: []byte("failure of r4"), Published: true},
		{RequestID: "r5", Kind: dedupe.KindFailed, Event: []byte("failure of r5"), Published: true},
		{RequestID: "r6", Kind: dedupe.KindTerminated, Event: []byte("termination")},
	}
	if fmt.Sprint(r.Outcomes) != fmt.Sprint(want) {
		t.Errorf("Outcomes:\n got %+v;\nwant %+v", r.Outcomes, want)
	}
	if r.Published["r1"] || r.Published["r2"] {
		t.Errorf("Published: got %v; want r1 and r2 dropped with their outcomes", r.Published)
	}
	if r.Kind != dedupe.KindTerminated || r.OutcomeRequestID != "r6" {
		t.Errorf("termination: got %s of %s; want terminated of r6", r.Kind, r.OutcomeRequestID)
	}
	n, err := rdb.HLen(t.Context(), e.key(code)).Result()
	must(t, err)
	// state owner req attempts kind oreq outcome fails, 3 failures, 3 pub:
	// flags; tko and unk are gone.
	if n > 14 {
		t.Errorf("record has %d fields; want at most 14", n)
	}
}

// TestAnswer: the replay's re-emit and the status command read each
// request's answer: its own outcome, else the termination.
func TestAnswer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := e.s.Answer(t.Context(), code, "r1"); !errors.Is(err, dedupe.ErrNotFound) {
		t.Errorf("Answer on an absent record: got %v; want ErrNotFound", err)
	}
	fail(t, e, "r1", dedupe.KindFailed, []byte("f1"))
	must(t, e.s.MarkPublished(t.Context(), code, "r1"))
	if _, err := e.s.Answer(t.Context(), code, "r2"); !errors.Is(err, dedupe.ErrNotFound) {
		t.Errorf("Answer for a request with no outcome, not terminated: got %v; want ErrNotFound", err)
	}
	fail(t, e, "r2", dedupe.KindTerminated, []byte("t2"))
	must(t, e.s.MarkPublished(t.Context(), code, "r3"))
	rec, err := e.s.Get(t.Context(), code)
	must(t, err)
	for _, tt := range []struct {
		req  string
		want dedupe.Answer
	}{
		{"r1", dedupe.Answer{Own: true, RequestID: "r1", Kind: dedupe.KindFailed, Event: []byte("f1"), Published: true}},
		{"r2", dedupe.Answer{Own: true, RequestID: "r2", Kind: dedupe.KindTerminated, Event: []byte("t2")}},
		{"r3", dedupe.Answer{RequestID: "r2", Kind: dedupe.KindTerminated, Event: []byte("t2"), Published: true}},
		{"r4", dedupe.Answer{RequestID: "r2", Kind: dedupe.KindTerminated, Event: []byte("t2")}},
	} {
		got, err := e.s.Answer(t.Context(), code, tt.req)
		must(t, err)
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("Store.Answer(%s): got %+v; want %+v", tt.req, got, tt.want)
		}
		got, ok := rec.Answer(tt.req)
		if !ok || fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("Record.Answer(%s): got %+v, %v; want %+v", tt.req, got, ok, tt.want)
		}
	}
}

// TestLegacyRecord: a record written before outcomes were kept per request
// (one slot: oreq, kind, outcome) answers as before, and its failure
// survives a later termination.
func TestLegacyRecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	must(t, e.rdb.HSet(t.Context(), e.key(code), "state", "done", "owner", "old", "req", "r1",
		"oreq", "r1", "kind", "failed", "outcome", "f1", "pub:r1", "1", "attempts", "1").Err())
	if c := claim(t, e, "r1", "B"); c.Status != dedupe.Done || string(c.Outcome) != "f1" || !c.Published {
		t.Errorf("Claim(r1): got %+v; want Done with f1, published", c)
	}
	fail(t, e, "r2", dedupe.KindTerminated, []byte("t2"))
	if c := claim(t, e, "r1", "B"); c.Status != dedupe.Done || string(c.Outcome) != "f1" {
		t.Errorf("Claim(r1) after r2 terminated: got %+v; want Done with f1", c)
	}
	if c := claim(t, e, "r3", "B"); c.Status != dedupe.Terminated || string(c.Outcome) != "t2" {
		t.Errorf("Claim(r3): got %+v; want Terminated with t2", c)
	}
}

// TestRecordLost: a claim whose record vanished (evicted, deleted, lost in
// a failover) is told so, not only "not owner": its worker must remember
// that its call may have been sent, since the next claim answers Claimed.
func TestRecordLost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	claim(t, e, "r1", "A")
	must(t, e.rdb.Del(t.Context(), e.key(code)).Err())
	for _, tt := range []struct {
		op  string
		err error
	}{
		{"Extend", e.s.Extend(t.Context(), code, "A")},
		{"Complete", e.s.Complete(t.Context(), code, "r1", "A", dedupe.KindTerminated, outcome)},
	} {
		if !errors.Is(tt.err, dedupe.ErrRecordLost) || !errors.Is(tt.err, dedupe.ErrNotOwner) {
			t.Errorf("%s: got %v; want ErrRecordLost, an ErrNotOwner", tt.op, tt.err)
		}
	}
	if n, err := e.rdb.Exists(t.Context(), e.key(code)).Result(); err != nil || n != 0 {
		t.Errorf("a refused write created the record: got %d, %v", n, err)
	}
	// Another owner's claim is refused as before, not as lost.
	claim(t, e, "r1", "B")
	if err := e.s.Extend(t.Context(), code, "A"); !errors.Is(err, dedupe.ErrNotOwner) || errors.Is(err, dedupe.ErrRecordLost) {
		t.Errorf("Extend by a former owner: got %v; want ErrNotOwner only", err)
	}
}

// A Complete whose reply was lost is retried after another owner claimed
// the contract for another request: it finds its outcome stored and
// succeeds, rather than telling the caller to withhold a stored result.
func TestCompleteRetriedAfterAnotherClaim(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{dedupe.KindFailed, dedupe.KindUnknown, dedupe.KindTerminated} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			claim(t, e, "r1", "A")
			must(t, e.s.Complete(t.Context(), code, "r1", "A", kind, outcome))
			if kind != dedupe.KindTerminated {
				claim(t, e, "r2", "B")
			}
			must(t, e.s.Complete(t.Context(), code, "r1", "A", kind, outcome))
			// A different outcome is not a retry.
			if err := e.s.Complete(t.Context(), code, "r1", "A", kind, []byte("other")); !errors.Is(err, dedupe.ErrNotOwner) {
				t.Errorf("Complete with another outcome: got %v; want ErrNotOwner", err)
			}
			a, err := e.s.Answer(t.Context(), code, "r1")
			must(t, err)
			if !bytes.Equal(a.Event, outcome) {
				t.Errorf("stored outcome: got %q; want %q", a.Event, outcome)
			}
		})
	}
}

func TestCompleteRejectsWhiteSpaceInRequestID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	claim(t, e, "r 1", "A")
	if err := e.s.Complete(t.Context(), code, "r 1", "A", dedupe.KindFailed, outcome); err == nil || errors.Is(err, dedupe.ErrNotOwner) {
		t.Errorf("Complete(%q): got %v; want an invalid id error", "r 1", err)
	}
}
