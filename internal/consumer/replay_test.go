package consumer

import (
	"context"
	"fmt"
	"testing"
	"time"

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
