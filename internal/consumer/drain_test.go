package consumer

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/wxsim"
)

// Regression: Run returned as soon as its context was cancelled, so SIGTERM
// cut in-flight calls off, left their claims held until the lease ran out,
// left finished offsets uncommitted and kept the member in the group until
// its session timed out. Run must return only once the in-flight intents are
// answered, their offsets committed and the member gone.
func TestStopDrainsCommitsAndLeaves(t *testing.T) {
	h := newHarness(t, harnessOpts{partitions: 2})
	const n = 8
	ins := drainIntents(h, "DR", n)
	h.sim.SetFaults(wxsim.Faults{Latency: time.Second})
	opts := h.options(10 * time.Second)
	opts.MaxInFlight = n
	opts.ShutdownTimeout = 15 * time.Second
	c, stop := h.start(opts)
	h.publish(ins...)
	waitInFlight(t, h.sim, n)

	stop() // cancels Run's context and waits for Run to return

	for _, in := range ins {
		rec, err := h.store.Get(context.Background(), in.OutContractCode)
		if err != nil {
			t.Errorf("%s: record: %v", in.OutContractCode, err)
			continue
		}
		if rec.State != dedupe.StateDone || !rec.Published[in.RequestID] {
			t.Errorf("%s: got state %q, published %v when Run returned; want done and published", in.OutContractCode, rec.State, rec.Published[in.RequestID])
		}
	}
	if got := committedTotal(t, h, opts.GroupID, 2); got != n {
		t.Errorf("got %d offsets committed when Run returned; want %d", got, n)
	}
	if m := groupMembers(t, h, opts.GroupID); m != 0 {
		t.Errorf("got %d group members when Run returned; want 0 (the member leaves)", m)
	}
	if got := c.Stats().Terminated.Load(); got != n {
		t.Errorf("got %d terminated; want %d", got, n)
	}
}

// Regression: once the generation ended during a drain (another member
// joined), nothing heartbeated, so a drain longer than the session timeout
// lost the membership: the final commits were refused and the new member
// re-processed the finished offsets. The draining member must stay alive
// and its commits, made with the old generation while the group prepares
// the rebalance, must go through.
func TestDrainOutlivesTheSessionWhenAMemberJoins(t *testing.T) {
	h := newHarness(t, harnessOpts{partitions: 2})
	const n = 4
	ins := drainIntents(h, "DJ", n)
	// The drain (calls of 9 s) outlasts the session timeout (6 s).
	h.sim.SetFaults(wxsim.Faults{Latency: 9 * time.Second})
	opts := h.options(20 * time.Second)
	opts.MaxInFlight = n
	opts.ShutdownTimeout = 20 * time.Second
	opts.SessionTimeout, opts.HeartbeatInterval = 6*time.Second, time.Second
	_, stop1 := h.start(opts)
	h.publish(ins...)
	waitInFlight(t, h.sim, n)

	stopped := make(chan struct{})
	go func() { stop1(); close(stopped) }()
	h.sim.SetFaults(wxsim.Faults{})
	c2, _ := h.start(opts) // joins while the first member drains
	<-stopped

	if got := committedTotal(t, h, opts.GroupID, 2); got != n {
		t.Errorf("got %d offsets committed by the draining member; want %d", got, n)
	}
	// A marker behind the drained intents on every partition: once the
	// second member answered them, it has read whatever it was to re-read.
	markers := drainIntents(h, "DM", 2)
	for i, in := range markers {
		h.publishTo(i, in)
	}
	h.waitFor("markers", waitLong, func(ev []event.Result, _ []kafka.Message) bool {
		got := byRequest(ev)
		return len(got[markers[0].RequestID]) > 0 && len(got[markers[1].RequestID]) > 0
	})
	if got := c2.Stats().Consumed.Load(); got != int64(len(markers)) {
		t.Errorf("the second member consumed %d intents; want %d, the markers only (the drained offsets were committed)", got, len(markers))
	}
	got := byRequest(h.snapshot())
	for _, in := range ins {
		if e := got[in.RequestID]; len(e) != 1 || e[0].EventType != event.TypeTerminated {
			t.Errorf("%s: got %d events %+v; want one contract-terminated", in.RequestID, len(e), e)
		}
	}
}

func drainIntents(h *harness, prefix string, n int) []event.Intent {
	ins := make([]event.Intent, n)
	for i := range ins {
		ins[i] = newIntent(event.CreditRepayment, fmt.Sprintf("%s%04d", prefix, i))
		seed(h.sim, ins[i])
	}
	return ins
}

// waitInFlight waits until the simulator serves n calls at once.
func waitInFlight(t *testing.T, sim *wxsim.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for sim.PeakConcurrent() < n {
		if time.Now().After(deadline) {
			t.Fatalf("got %d calls in flight at most; want %d", sim.PeakConcurrent(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// publishTo writes in to the request topic's partition p.
func (h *harness) publishTo(p int, in event.Intent) {
	h.t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		h.t.Fatal(err)
	}
	w := &kafka.Writer{Addr: kafka.TCP(h.brokers...), Topic: h.requests, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return p })}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte(in.OutContractCode), Value: b}); err != nil {
		h.t.Fatalf("publish to partition %d: %v", p, err)
	}
}

func (h *harness) kafkaClient() *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(h.brokers...), Timeout: 10 * time.Second}
}

// committedTotal sums the group's committed offsets over the request
// topic's partitions (which start at offset 0).
func committedTotal(t *testing.T, h *harness, group string, partitions int) int64 {
	t.Helper()
	ps := make([]int, partitions)
	for i := range ps {
		ps[i] = i
	}
	res, err := h.kafkaClient().OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{
		GroupID: group, Topics: map[string][]int{h.requests: ps}})
	if err == nil {
		err = res.Error
	}
	if err != nil {
		t.Fatalf("offset fetch: %v", err)
	}
	var sum int64
	for _, p := range res.Topics[h.requests] {
		if p.Error != nil {
			t.Fatalf("offset fetch of partition %d: %v", p.Partition, p.Error)
		}
		sum += max(p.CommittedOffset, 0)
	}
	return sum
}

func groupMembers(t *testing.T, h *harness, group string) int {
	t.Helper()
	res, err := h.kafkaClient().DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		t.Fatalf("describe group: %v", err)
	}
	for _, g := range res.Groups {
		if g.Error != nil {
			t.Fatalf("describe group: %v", g.Error)
		}
		return len(g.Members)
	}
	return 0
}
