package consumer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
)

func TestReplay(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	before := time.Now().Add(-time.Second)
	var ins []event.Intent
	for i := range 40 {
		in := newIntent(event.CreditRepayment, fmt.Sprintf("RP%03d", i))
		seed(h.sim, in)
		ins = append(ins, in)
	}
	opts := h.options(0)
	c, stop := h.start(opts)
	h.publish(ins...)
	h.waitEvents(len(ins), waitLong)
	h.settle(c)
	stop()
	// Intents published while no consumer runs: a replay must process them.
	var late []event.Intent
	for i := range 5 {
		in := newIntent(event.PapayDirect, fmt.Sprintf("RPL%03d", i))
		seed(h.sim, in)
		late = append(late, in)
	}
	h.publish(late...)
	calls := h.sim.TotalTerminateCalls()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()

	replayer := func() *Consumer {
		r, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// Dry run: the range by time holds every message.
	ranges, err := replayer().ResolveRange(ctx, ReplayRange{From: before})
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, r := range ranges {
		total += r.Messages()
	}
	if total != int64(len(ins)+len(late)) {
		t.Fatalf("got %d messages in the range %+v; want %d", total, ranges, len(ins)+len(late))
	}
	// A future window holds none.
	empty, err := replayer().ResolveRange(ctx, ReplayRange{From: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range empty {
		if r.Messages() != 0 {
			t.Errorf("future range: got %+v; want empty", r)
		}
	}

	var progress []ReplayProgress
	got, err := replayer().Replay(ctx, ranges, ReplayOptions{Progress: func(p ReplayProgress) { progress = append(progress, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if got.Read != total || got.Answered != int64(len(ins)) || got.Processed != int64(len(late)) || got.Reemitted != 0 || !got.Done {
		t.Errorf("got %+v; want %d read, %d answered, %d processed", got, total, len(ins), len(late))
	}
	if len(progress) == 0 || !progress[len(progress)-1].Done {
		t.Errorf("got progress %+v; want a final report", progress)
	}
	evs := h.waitEvents(len(ins)+len(late), waitLong)
	if n := h.sim.TotalTerminateCalls() - calls; n != len(late) {
		t.Errorf("replay made %d terminate calls; want %d (the unprocessed intents only)", n, len(late))
	}

	// Replaying the now fully processed range by offsets: no call, no event;
	// with re-emit, each stored result once more, marked replayed.
	offsets := map[int][2]int64{}
	for _, r := range ranges {
		offsets[r.Partition] = [2]int64{r.Start, r.End}
	}
	calls = h.sim.TotalTerminateCalls()
	got, err = replayer().Replay(ctx, ranges, ReplayOptions{Range: ReplayRange{Offsets: offsets}, Reemit: true})
	if err != nil {
		t.Fatal(err)
	}
	if got.Answered != total || got.Reemitted != total || got.Processed != 0 {
		t.Errorf("re-emit: got %+v; want all %d answered and re-emitted", got, total)
	}
	if n := h.sim.TotalTerminateCalls() - calls; n != 0 {
		t.Errorf("replay of a processed range made %d terminate calls; want 0", n)
	}
	all := h.waitEvents(len(evs)+int(total), waitLong)
	first := map[string]string{}
	for _, e := range all[:len(evs)] {
		first[e.RequestID] = e.EventID
	}
	for _, e := range all[len(evs):] {
		if !e.Replayed || first[e.RequestID] != e.EventID {
			t.Errorf("re-emitted %+v: want replayed with the original event_id %s", e, first[e.RequestID])
		}
	}
}

// Regression (issue 12 item 4): a re-emit read the record's one outcome
// slot, so it emitted another request's answer (or a contract-terminated
// for a request that failed), or aborted the partition's replay with
// "stored outcome lacks the contract". Now each request re-emits its own
// outcome, a request answered from the contract's termination re-emits the
// derived contract-terminated, and a request nothing answers is skipped and
// counted.
func TestReplayReemitsEachRequestsOwnOutcome(t *testing.T) {
	h := newHarness(t, harnessOpts{partitions: 1})
	before := time.Now().Add(-time.Second)
	a := newIntent(event.CreditRepayment, "MISS1") // not seeded: not_found
	b := a
	b.RequestID = "req-MISS1-b"
	c := newIntent(event.CreditRepayment, "TERM1")
	seed(h.sim, c)
	d := c
	d.RequestID = "req-TERM1-d"
	e := newIntent(event.CreditRepayment, "MISS2")
	ins := []event.Intent{a, b, c, d, e}
	opts := h.options(0)
	cons, stop := h.start(opts)
	for _, in := range ins {
		h.publish(in) // one at a time: b after a, d after c
		h.waitFor(in.RequestID, waitLong, func(ev []event.Result, _ []kafka.Message) bool {
			return len(byRequest(ev)[in.RequestID]) == 1
		})
	}
	h.settle(cons)
	stop()
	for _, in := range ins {
		if _, err := h.published(in); err != nil {
			t.Fatal(err)
		}
	}
	// e's own failure is gone from its record (as beyond MaxFailures) while
	// its published flag stays: nothing answers it.
	if err := h.rdb.HDel(context.Background(), h.prefix+"{"+e.OutContractCode+"}", "o:"+e.RequestID).Err(); err != nil {
		t.Fatal(err)
	}
	first := byRequest(h.snapshot())
	for _, in := range []event.Intent{a, b} {
		if f := first[in.RequestID][0]; f.EventType != event.TypeFailed || f.Reason != event.ReasonNotFound {
			t.Fatalf("%s: got %+v; want terminate-failed not_found", in.RequestID, f)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ranges, err := r.ResolveRange(ctx, ReplayRange{From: before})
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Replay(ctx, ranges, ReplayOptions{Reemit: true})
	if err != nil {
		t.Fatalf("replay: %v; want the partition replayed to its end", err)
	}
	if got.Answered != 5 || got.Reemitted != 4 || got.Skipped != 1 || got.Processed != 0 {
		t.Errorf("got %+v; want 5 answered, 4 re-emitted, 1 skipped", got)
	}
	all := h.waitEvents(len(ins)+4, waitLong)
	again := byRequest(all[len(ins):])
	for _, in := range []event.Intent{a, b, c} {
		want := first[in.RequestID][0]
		g := again[in.RequestID]
		if len(g) != 1 || !g[0].Replayed || g[0].EventID != want.EventID || g[0].EventType != want.EventType || g[0].Reason != want.Reason {
			t.Errorf("%s re-emitted: got %+v; want its own %s (%s) replayed", in.RequestID, g, want.EventType, want.Reason)
		}
	}
	if g := again[d.RequestID]; len(g) != 1 || g[0].EventType != event.TypeTerminated || !g[0].AlreadyTerminated || !g[0].Replayed ||
		g[0].EventID != event.EventID(d.RequestID, d.OutContractCode, event.TypeTerminated) {
		t.Errorf("%s re-emitted: got %+v; want contract-terminated, already terminated, replayed", d.RequestID, g)
	}
	if g := again[e.RequestID]; len(g) != 0 {
		t.Errorf("%s re-emitted: got %+v; want nothing (skipped)", e.RequestID, g)
	}
}
