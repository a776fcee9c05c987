package consumer

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/e2e"
	"github.com/wxterm/wxterm/internal/testenv"
)

// setTopicConfig sets one configuration entry of topic on the broker.
func setTopicConfig(t *testing.T, brokers []string, topic, key, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e2e.SetTopicConfig(ctx, &kafka.Client{Addr: kafka.TCP(brokers...)}, topic, key, value); err != nil {
		t.Fatal(err)
	}
}

// waitCommitted waits until the group's committed offset of partition 0 of
// the request topic reaches its end, and fails with both if it does not.
func (h *harness) waitCommitted(group string) {
	h.t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(h.brokers...)}
	deadline := time.Now().Add(waitLong)
	var committed, end int64
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{h.requests: {0}}})
		e, err2 := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{h.requests: {kafka.LastOffsetOf(0)}}})
		cancel()
		if err == nil && err2 == nil && len(c.Topics[h.requests]) == 1 && len(e.Topics[h.requests]) == 1 {
			committed, end = c.Topics[h.requests][0].CommittedOffset, e.Topics[h.requests][0].LastOffset
			if committed == end {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.t.Fatalf("committed offset %d; want the partition's end %d", committed, end)
}

// Regression (issue 12 item 6): a dead letter larger than the dead-letter
// topic's max.message.bytes was retried forever, so the partition's commits
// froze and every later intent waited behind it. Now a reduced dead letter
// (DLQ headers, the refusal, a prefix of the message) replaces it, the
// offset moves past it and the next intent is answered.
func TestOversizedDeadLetterIsReduced(t *testing.T) {
	h := newHarness(t, harnessOpts{partitions: 1})
	setTopicConfig(t, h.brokers, h.dlq, "max.message.bytes", "1000")
	opts := h.options(0)
	h.start(opts)

	// 2 KB that names no request: only a dead letter can answer it.
	junk := []byte(`{"not an intent":"` + strings.Repeat("x", 2048) + `"}`)
	good := newIntent(event.CreditRepayment, "BIGDLQ1")
	seed(h.sim, good)
	b, _ := json.Marshal(good)
	h.publishRaw(kafka.Message{Value: junk}, kafka.Message{Key: []byte(good.OutContractCode), Value: b})

	h.waitFor("the dead letter and the next intent's result", waitLong, func(ev []event.Result, dead []kafka.Message) bool {
		return len(ev) >= 1 && len(dead) >= 1
	})
	h.waitCommitted(opts.GroupID)
	h.mu.Lock()
	dl := h.dead[0]
	h.mu.Unlock()
	for key, want := range map[string]string{
		event.HeaderDLQSourceTopic: h.requests, event.HeaderDLQSourcePartition: "0", event.HeaderDLQSourceOffset: "0",
		HeaderRefusedTopic: h.dlq,
	} {
		if got := headerValue(dl.Headers, key); got != want {
			t.Errorf("dead letter header %s: got %q; want %q", key, got, want)
		}
	}
	if got := headerValue(dl.Headers, event.HeaderDLQError); got == "" {
		t.Errorf("dead letter header %s: got none; want why the intent was refused", event.HeaderDLQError)
	}
	if got := headerValue(dl.Headers, HeaderRefused); !strings.Contains(got, "Message Size Too Large") {
		t.Errorf("dead letter header %s: got %q; want Kafka's refusal (message size too large)", HeaderRefused, got)
	}
	if len(dl.Value) == 0 || len(dl.Value) > maxReducedValue || !bytes.HasPrefix(junk, dl.Value) {
		t.Errorf("dead letter value: got %d bytes; want a prefix of the message of at most %d", len(dl.Value), maxReducedValue)
	}
	if evs := h.snapshot(); evs[0].RequestID != good.RequestID || evs[0].EventType != event.TypeTerminated {
		t.Errorf("next intent: got %+v; want its contract-terminated", evs[0])
	}
}

// Regression (issue 12 item 6): a result larger than the result topic's
// max.message.bytes was retried forever. Now a reduced event (the
// contract's identity and state, no free text, detail naming the refusal)
// is published under the same event_id, and the offset is committed; a
// result that fits is published whole beside it.
func TestOversizedResultIsReduced(t *testing.T) {
	h := newHarness(t, harnessOpts{partitions: 1})
	setTopicConfig(t, h.brokers, h.results, "max.message.bytes", "1270") // the small event takes about 1100 bytes, the big one 1430
	opts := h.options(0)
	opts.Metrics = NewMetrics(nil)
	h.start(opts)

	big := newIntent(event.PapayDirect, "BIGRES1")
	big.Remark = strings.Repeat("解约", 60) // 120 characters, 360 bytes: WeChat echoes it in the contract
	seed(h.sim, big)
	small := newIntent(event.PapayDirect, "SMALLRES1")
	seed(h.sim, small)
	h.publish(big, small)

	got := byRequest(h.waitEvents(2, waitLong))
	h.waitCommitted(opts.GroupID)
	r := got[big.RequestID]
	if len(r) != 1 || r[0].EventType != event.TypeTerminated || r[0].Contract == nil {
		t.Fatalf("big intent: got %+v; want one contract-terminated", r)
	}
	if r[0].Contract.ContractTerminationRemark != "" || !strings.Contains(r[0].Detail, "reduced") ||
		r[0].Contract.OutContractCode != big.OutContractCode || r[0].EventID != event.EventID(big.RequestID, big.OutContractCode, event.TypeTerminated) {
		t.Errorf("big intent: got contract %+v detail %q; want the reduced event (no remark, detail naming the refusal, same event_id)", *r[0].Contract, r[0].Detail)
	}
	if s := got[small.RequestID]; len(s) != 1 || s[0].Contract == nil || s[0].Contract.ContractTerminationRemark == "" || s[0].Detail != "" {
		t.Errorf("small intent: got %+v; want its whole event", s)
	}
	if n := testutil.ToFloat64(opts.Metrics.Reduced.WithLabelValues(h.results)); n != 1 {
		t.Errorf("wxterm_outputs_reduced_total{topic=results}: got %v; want 1", n)
	}
}

// When not even a headers-only dead letter fits, the answer is held and
// the consumer says so (unready, wxterm_output_fault 1, the offset not
// committed) rather than dropping it silently or looping quietly.
func TestRefusedMinimalDeadLetterHoldsUnready(t *testing.T) {
	h := newHarness(t, harnessOpts{partitions: 1})
	setTopicConfig(t, h.brokers, h.dlq, "max.message.bytes", "64")
	opts := h.options(0)
	opts.Metrics = NewMetrics(nil)
	c, _ := h.start(opts)

	h.publishRaw(kafka.Message{Value: []byte(`{"not an intent":true}`)})
	deadline := time.Now().Add(waitLong)
	for c.Ready() == nil || !strings.Contains(c.Ready().Error(), "refuses the consumer's output") {
		if time.Now().After(deadline) {
			t.Fatalf("Ready: got %v; want the output fault", c.Ready())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := testutil.ToFloat64(opts.Metrics.OutputFault); got != 1 {
		t.Errorf("wxterm_output_fault: got %v; want 1", got)
	}
	if got := c.Stats().DeadLetter.Load(); got != 0 {
		t.Errorf("dead letters counted: got %d; want 0 (none was accepted)", got)
	}
}

// Regression (issue 12 item 6): a stored outcome that could not be read
// failed the intent's resolve forever, freezing the partition. Now the
// intent is dead-lettered with the cause and its source offset, for an
// operator to repair the record and redrive it.
func TestUnreadableStoredOutcomeIsDeadLettered(t *testing.T) {
	h := newHarness(t, harnessOpts{partitions: 1})
	opts := h.options(0)
	h.start(opts)
	in := newIntent(event.CreditRepayment, "CORRUPT1")
	seed(h.sim, in)
	h.publish(in)
	h.waitEvents(1, waitLong)
	if _, err := h.published(in); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := h.prefix + "{" + in.OutContractCode + "}"
	if err := h.rdb.HSet(ctx, key, "outcome", "{not json").Err(); err != nil {
		t.Fatal(err)
	}
	if err := h.rdb.HDel(ctx, key, "pub:"+in.RequestID).Err(); err != nil {
		t.Fatal(err)
	}
	other := in
	other.RequestID = "req-CORRUPT1-again"
	h.publish(in, other)
	h.waitFor("two dead letters", waitLong, func(_ []event.Result, dead []kafka.Message) bool { return len(dead) >= 2 })
	h.waitCommitted(opts.GroupID)
	h.mu.Lock()
	dead := append([]kafka.Message(nil), h.dead...)
	h.mu.Unlock()
	for i, dl := range dead {
		var got event.Intent
		if err := json.Unmarshal(dl.Value, &got); err != nil || got.OutContractCode != in.OutContractCode {
			t.Errorf("dead letter %d: got %s; want the intent", i, dl.Value)
		}
		if e := headerValue(dl.Headers, event.HeaderDLQError); !strings.Contains(e, "unreadable") {
			t.Errorf("dead letter %d: error header %q; want the unreadable outcome named", i, e)
		}
		if off := headerValue(dl.Headers, event.HeaderDLQSourceOffset); off != strconv.Itoa(i+1) {
			t.Errorf("dead letter %d: source offset %q; want %d", i, off, i+1)
		}
	}
	if n := len(h.snapshot()); n != 1 {
		t.Errorf("got %d result events; want 1 (the first, before the record was corrupted)", n)
	}
}

// A configuration fault (here the result topic missing: UNKNOWN_TOPIC_OR_
// PARTITION) holds the answer rather than skipping it: the consumer is
// unready and says why, wxterm_output_fault is 1, and once the topic
// exists the held result is published and the consumer is ready again.
func TestResultTopicFaultHoldsUnreadyUntilFixed(t *testing.T) {
	h := newHarness(t, harnessOpts{partitions: 1})
	opts := h.options(0)
	opts.Metrics = NewMetrics(nil)
	opts.ResultTopic = testenv.Topic(t, "missing")
	c, _ := h.start(opts)
	in := newIntent(event.CreditRepayment, "NOTOPIC1")
	seed(h.sim, in)
	h.publish(in)
	deadline := time.Now().Add(waitLong)
	for c.Ready() == nil || !strings.Contains(c.Ready().Error(), opts.ResultTopic) {
		if time.Now().After(deadline) {
			t.Fatalf("Ready: got %v; want the output fault naming %s", c.Ready(), opts.ResultTopic)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := testutil.ToFloat64(opts.Metrics.OutputFault); got != 1 {
		t.Errorf("wxterm_output_fault while held: got %v; want 1", got)
	}
	testenv.CreateTopics(t, h.brokers, 1, opts.ResultTopic)
	m := h.readTopic(opts.ResultTopic, 1)[0]
	var r event.Result
	if err := json.Unmarshal(m.Value, &r); err != nil || r.RequestID != in.RequestID || r.EventType != event.TypeTerminated || r.Detail != "" {
		t.Errorf("held result: got %s (%v); want %s's whole contract-terminated", m.Value, err, in.RequestID)
	}
	h.waitCommitted(opts.GroupID)
	for c.Ready() != nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if err := c.Ready(); err != nil || testutil.ToFloat64(opts.Metrics.OutputFault) != 0 {
		t.Errorf("after the topic was created: Ready %v, wxterm_output_fault %v; want ready and 0", err, testutil.ToFloat64(opts.Metrics.OutputFault))
	}
}

// Regression (issue 12 item 6): on a compacted dead-letter topic Kafka
// refuses a record without a key (INVALID_RECORD), so a keyless
// undecodable message's dead letter was retried forever. Its reduced dead
// letter is keyed by where the message came from, and accepted. (The
// in-process fake does not enforce the rule: this needs the real broker.)
func TestKeylessDeadLetterOnACompactedTopic(t *testing.T) {
	if !testenv.RealKafka() {
		t.Skip("kfake accepts keyless records on a compacted topic; run with the real broker (make test)")
	}
	h := newHarness(t, harnessOpts{partitions: 1})
	setTopicConfig(t, h.brokers, h.dlq, "cleanup.policy", "compact")
	opts := h.options(0)
	h.start(opts)
	h.publishRaw(kafka.Message{Value: []byte(`{"no key and no intent":1}`)})
	h.waitFor("the dead letter", waitLong, func(_ []event.Result, dead []kafka.Message) bool { return len(dead) >= 1 })
	h.waitCommitted(opts.GroupID)
	h.mu.Lock()
	dl := h.dead[0]
	h.mu.Unlock()
	if want := h.requests + "/0@0"; string(dl.Key) != want || string(dl.Value) != `{"no key and no intent":1}` {
		t.Errorf("dead letter: key %q value %q; want key %q and the message", dl.Key, dl.Value, want)
	}
	if got := headerValue(dl.Headers, HeaderRefused); !strings.Contains(got, "Invalid Record") {
		t.Errorf("dead letter header %s: got %q; want Kafka's INVALID_RECORD", HeaderRefused, got)
	}
}
