package consumer

// Promises of issue 12 under takeovers and a lost Redis, from its review:
// each test failed on the main of its time.

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/testenv"
	"github.com/wxterm/wxterm/internal/wxapi"
)

// scriptedTerminator answers every query with query and every terminate
// with terminate, and counts the terminates.
type scriptedTerminator struct {
	query, terminate error
	terminates       int
}

func (s *scriptedTerminator) Terminate(context.Context, wxapi.Request) (*wxapi.Contract, error) {
	s.terminates++
	return nil, s.terminate
}

func (s *scriptedTerminator) Query(context.Context, wxapi.Request) (*wxapi.Contract, error) {
	return nil, s.query
}

// Review (issue 12 item 5): "a retries_exhausted with unknown outcome lets
// the next request terminate without querying. Leave a mark that makes the
// next owner query first." The mark (unk) is cleared by any known failure,
// and the call policy completes a takeover with a known failure without
// any query having settled the contract: request B, for the same contract
// but with parameters under which WeChat cannot find it (a query answering
// 404), or malformed ones (PARAM_ERROR on the query and on the terminate),
// is answered not_found / rejected, stored as KindFailed, and so request C
// claims Claimed and terminates without querying, though A's call may have
// terminated the contract (C then reports our own termination as
// already_terminated).
func TestUnknownMarkSurvivesAnUnsettledKnownFailure(t *testing.T) {
	notFound := &wxapi.Error{API: wxapi.PapayDirect, Op: "query", HTTPStatus: http.StatusNotFound, Code: "NOT_FOUND"}
	paramQ := &wxapi.Error{API: wxapi.PapayDirect, Op: "query", HTTPStatus: http.StatusBadRequest, Code: wxapi.CodeParamError}
	paramT := &wxapi.Error{API: wxapi.PapayDirect, Op: "terminate", HTTPStatus: http.StatusBadRequest, Code: wxapi.CodeParamError}
	for _, tc := range []struct {
		name  string
		fake  *scriptedTerminator
		wantB string // B's reason, to show the case is what it claims
	}{
		{"query not found", &scriptedTerminator{query: notFound}, event.ReasonNotFound},
		{"query and terminate param error", &scriptedTerminator{query: paramQ, terminate: paramT}, event.ReasonRejected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := dedupe.New(testenv.Redis(t), dedupe.Options{Prefix: "wxterm:" + testenv.Unique(t) + ":"})
			c, err := New(Options{Brokers: []string{"127.0.0.1:1"}, Store: store,
				Merchants: map[string]Merchant{"1900000100": {Client: tc.fake}}, DefaultMerchant: "1900000100",
				Retry: RetryOptions{Initial: time.Millisecond, Max: time.Millisecond, MaxElapsed: 50 * time.Millisecond}})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			code := "REVUNK1"
			// A: its call may have reached WeChat Pay (retries_exhausted, unknown).
			a := newIntent(event.PapayDirect, code)
			if _, err := store.Claim(ctx, code, a.RequestID, "oa"); err != nil {
				t.Fatal(err)
			}
			ra := event.Failed(a.RequestID, code, a.API, "", event.Source{}, event.Failure{Reason: event.ReasonRetriesExhausted, Retryable: true}, 1, time.Now())
			ba, _ := json.Marshal(ra)
			if err := store.Complete(ctx, code, a.RequestID, "oa", dedupe.KindUnknown, ba); err != nil {
				t.Fatal(err)
			}
			// B takes over, as it must, and runs the call policy.
			b := newIntent(event.PapayDirect, code)
			b.RequestID = "req-REVUNK1-b"
			cl, err := store.Claim(ctx, code, b.RequestID, "ob")
			if err != nil || cl.Status != dedupe.TakenOver {
				t.Fatalf("claim B: got %v, %v; want TakenOver", cl.Status, err)
			}
			in := &intent{Intent: b, mch: c.merchants["1900000100"], log: c.opts.Logger}
			r, v, err := c.call(ctx, in, tc.fake, true, &sentMark{})
			if err != nil || r.Reason != tc.wantB {
				t.Fatalf("call B: got reason %q, err %v; want %q", r.Reason, err, tc.wantB)
			}
			if _, err := c.complete(ctx, in, "ob", outcomeKind(r, v), r); err != nil {
				t.Fatal(err)
			}
			// C: nothing settled whether A's call terminated the contract.
			cl, err = store.Claim(ctx, code, "req-REVUNK1-c", "oc")
			if err != nil {
				t.Fatal(err)
			}
			if cl.Status != dedupe.TakenOver {
				t.Errorf("claim C after B's %s (no query settled A's call): got %v; want TakenOver (query first)", tc.wantB, cl.Status)
			}
		})
	}
}

// Review (issue 12 item 6): "a stored outcome that cannot be read … give
// each a defined path … nothing is dropped silently". An intent whose
// stored outcome is unreadable is dead-lettered (unreadableOutcome), but a
// notification whose stored termination is unreadable is acknowledged
// with nothing published and no dead letter: its offset is committed past
// it, and the only trace is a log line.
func TestUnreadableNotificationOutcomeIsDeadLettered(t *testing.T) {
	r := newNotifyRig(t)
	in := newIntent(event.PapayDirect, "REVNTF1")
	seed(r.sim, in)
	id := "rev-ntf-1"
	// The record holds this notification's termination, unreadable (a
	// corrupted value, or one written by an incompatible version).
	if err := r.rdb.HSet(context.Background(), r.prefix+"{"+in.OutContractCode+"}",
		"state", "done", "kind", "terminated", "oreq", "notification:"+id, "outcome", "{not json").Err(); err != nil {
		t.Fatal(err)
	}
	opts := r.options()
	_, _ = r.start(opts)
	r.deliver(id, event.NotifyEntrustTerminate, "USER_TERMINATE", in)
	waitTopicCommitted(t, r.harness, opts.GroupID, r.topic, 2)
	time.Sleep(300 * time.Millisecond) // room for a dead letter in flight to land
	r.mu.Lock()
	events, dead := len(r.events), len(r.dead)
	r.mu.Unlock()
	if events+dead == 0 {
		t.Fatalf("notification committed with %d results and %d dead letters; want a dead letter (or a hold) naming the unreadable outcome", events, dead)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.dead {
		if h := header(m, event.HeaderDLQError); !strings.Contains(h, "unreadable") || !strings.Contains(h, id) {
			t.Errorf("dead letter's %s: got %q; want it to name the unreadable outcome of notification %s", event.HeaderDLQError, h, id)
		}
	}
}

// waitTopicCommitted waits until the group's committed offsets of topic's
// partitions reach their ends, with at least one message.
func waitTopicCommitted(t *testing.T, h *harness, group, topic string, partitions int) {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(h.brokers...)}
	ids := make([]int, partitions)
	reqs := make([]kafka.OffsetRequest, partitions)
	for i := range partitions {
		ids[i], reqs[i] = i, kafka.LastOffsetOf(i)
	}
	deadline := time.Now().Add(waitLong)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ids}})
		e, err2 := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
		cancel()
		if err == nil && err2 == nil {
			var committed, end int64
			for _, p := range c.Topics[topic] {
				committed += max(p.CommittedOffset, 0)
			}
			for _, p := range e.Topics[topic] {
				end += p.LastOffset
			}
			if end > 0 && committed == end {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("group %s never committed %s to its end", group, topic)
}

// countingTerminator answers every terminate with a 429 (not sent) and
// counts the terminates.
type countingTerminator struct{ terminates atomic.Int64 }

func (s *countingTerminator) Terminate(context.Context, wxapi.Request) (*wxapi.Contract, error) {
	s.terminates.Add(1)
	return nil, &wxapi.Error{API: wxapi.PapayDirect, Op: "terminate", HTTPStatus: http.StatusTooManyRequests, Code: "FREQUENCY_LIMITED"}
}

func (s *countingTerminator) Query(context.Context, wxapi.Request) (*wxapi.Contract, error) {
	return &wxapi.Contract{}, nil
}

// Review (issue 12, takeovers): a worker cut off from Redis keeps calling
// terminate after its lease has run out and another worker took the
// contract over (keepLease ignores every Extend error but ErrNotOwner, and
// the call policy never asks whether the lease is still held), so two
// owners call WeChat Pay for one contract at once: the new owner's query
// cannot see a terminate the old one sends after it. A worker that could
// not renew its lease for a whole lease should stop calling.
func TestWorkerCutOffFromRedisStopsCallingOnceItsLeaseIsGone(t *testing.T) {
	prefix := "wxterm:" + testenv.Unique(t) + ":"
	lease := 300 * time.Millisecond
	rdbA := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	storeA := dedupe.New(rdbA, dedupe.Options{Prefix: prefix, Lease: lease})
	rdbB := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)}) // same database as A's
	t.Cleanup(func() { _ = rdbB.Close() })
	storeB := dedupe.New(rdbB, dedupe.Options{Prefix: prefix, Lease: lease})
	t.Cleanup(func() { _ = rdbB.Del(context.Background(), prefix+"{REVCUT1}").Err() })
	fake := &countingTerminator{}
	c, err := New(Options{Brokers: []string{"127.0.0.1:1"}, Store: storeA,
		Merchants: map[string]Merchant{"1900000100": {Client: fake}}, DefaultMerchant: "1900000100",
		Retry: RetryOptions{Initial: 20 * time.Millisecond, Max: 20 * time.Millisecond, MaxElapsed: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	in := &intent{Intent: newIntent(event.PapayDirect, "REVCUT1"), mch: c.merchants["1900000100"], log: c.opts.Logger}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl, err := storeA.Claim(ctx, in.OutContractCode, in.RequestID, "owner-a")
	if err != nil || cl.Status != dedupe.Claimed {
		t.Fatalf("claim A: %v, %v", cl.Status, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _, _ = c.callClaimed(ctx, in, "owner-a", cl, make(semaphore, 1), &sentMark{})
	}()
	waitUntil(t, "A calls", func() bool { return fake.terminates.Load() > 0 })
	_ = rdbA.Close() // A is cut off from Redis
	var clB dedupe.Claim
	waitUntilShort(t, "B takes over", func() bool {
		clB, err = storeB.Claim(context.Background(), in.OutContractCode, in.RequestID, "owner-b")
		return err == nil && clB.Status == dedupe.TakenOver
	})
	at := fake.terminates.Load()
	time.Sleep(3 * lease)
	if n := fake.terminates.Load() - at; n > 0 {
		t.Errorf("A made %d terminate calls after B took the contract over; want 0 (its lease was gone for a whole lease)", n)
	}
	cancel()
	<-done
}

func waitUntilShort(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
