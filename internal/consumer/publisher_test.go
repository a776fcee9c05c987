package consumer

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/wxterm/wxterm/internal/testenv"
)

// Concurrent writes all land once, each on the partition a Java client (and
// kafka.Writer's Murmur2Balancer) would pick for its key, with key, value and
// headers intact, and bursts share produce requests.
func TestPublisherConcurrentWrites(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.Topic(t, "pub")
	const parts, writers, each = 4, 48, 40
	testenv.CreateTopics(t, brokers, parts, topic)
	p := newPublisher(brokers, nil, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	start := time.Now().Truncate(time.Millisecond)
	var g errgroup.Group
	for w := range writers {
		g.Go(func() error {
			for i := range each {
				k := fmt.Sprintf("k-%d-%d", w, i)
				m := kafka.Message{Topic: topic, Key: []byte(k), Value: []byte("v-" + k),
					Headers: []kafka.Header{{Key: "h", Value: []byte(k)}}}
				if err := p.write(ctx, m); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("write: %v", err)
	}

	want := make(map[string]int) // key → partition
	for w := range writers {
		for i := range each {
			k := fmt.Sprintf("k-%d-%d", w, i)
			want[k] = kafka.Murmur2Balancer{}.Balance(kafka.Message{Key: []byte(k)}, 0, 1, 2, 3)
		}
	}
	got := make(map[string]int)
	for part := range parts {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: part, MaxWait: 100 * time.Millisecond})
		conn, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, part)
		if err != nil {
			t.Fatal(err)
		}
		end, err := conn.ReadLastOffset()
		_ = conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		for off := int64(0); off < end; off++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("partition %d offset %d: %v", part, off, err)
			}
			k := string(m.Key)
			if _, dup := got[k]; dup {
				t.Errorf("key %s published twice", k)
			}
			got[k] = m.Partition
			if string(m.Value) != "v-"+k || len(m.Headers) != 1 || m.Headers[0].Key != "h" || string(m.Headers[0].Value) != k {
				t.Errorf("key %s: got value %q headers %v; want them as written", k, m.Value, m.Headers)
			}
			if m.Time.Before(start) || m.Time.After(time.Now()) {
				t.Errorf("key %s: timestamp %v; want the time it was written", k, m.Time)
			}
		}
		_ = r.Close()
	}
	if len(got) != len(want) {
		t.Fatalf("got %d messages; want %d", len(got), len(want))
	}
	for k, wp := range want {
		if got[k] != wp {
			t.Errorf("key %s on partition %d; want %d (murmur2, as Java clients)", k, got[k], wp)
		}
	}
	if requests := int(p.requests.Load()); requests >= len(want) {
		t.Errorf("%d messages took %d produce requests; want concurrent writes to share them", len(want), requests)
	}
	t.Logf("%d messages in %d produce requests", len(want), p.requests.Load())
}

// A topic that does not exist is an error, not a hang; a cancelled context
// ends a write.
func TestPublisherErrors(t *testing.T) {
	brokers := testenv.Kafka(t)
	p := newPublisher(brokers, nil, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := p.write(ctx, kafka.Message{Topic: testenv.Topic(t, "missing"), Key: []byte("k"), Value: []byte("v")})
	if !errors.Is(err, kafka.UnknownTopicOrPartition) {
		t.Errorf("write to a missing topic: got %v; want UnknownTopicOrPartition", err)
	}

	topic := testenv.Topic(t, "pub")
	testenv.CreateTopics(t, brokers, 1, topic)
	done, stop := context.WithCancel(ctx)
	stop()
	if err := p.write(done, kafka.Message{Topic: topic, Value: []byte("v")}); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("write with a cancelled context: got %v; want nil or context.Canceled", err)
	}
	if err := p.write(ctx, kafka.Message{Topic: topic, Value: []byte("v")}); err != nil {
		t.Errorf("write after a cancelled one: %v", err)
	}
}

// Regression (issue 12 item 6): the broker refuses a produce request whose
// batch exceeds the topic's max.message.bytes even when each message alone
// fits, and every message of the batch failed with MESSAGE_TOO_LARGE. The
// publisher now sends the messages of a refused batch alone, so only a
// message that is itself too large fails.
func TestPublisherSplitsABatchTheTopicRefuses(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.Topic(t, "pubsplit")
	testenv.CreateTopics(t, brokers, 1, topic)
	setTopicConfig(t, brokers, topic, "max.message.bytes", "1000")
	p := newPublisher(brokers, nil, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	value := make([]byte, 400) // one fits in 1000 bytes; three in one batch never do
	var g errgroup.Group
	const n = 30
	for i := range n {
		g.Go(func() error {
			return p.write(ctx, kafka.Message{Topic: topic, Key: fmt.Appendf(nil, "k%d", i), Value: value})
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("write of messages that each fit: %v", err)
	}
	err := p.write(ctx, kafka.Message{Topic: topic, Key: []byte("big"), Value: make([]byte, 2000)})
	if refusalOf(err) != refusedRecord {
		t.Errorf("write of a message too large: got %v; want MESSAGE_TOO_LARGE, a refused record", err)
	}
}

func TestRefusalOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want refusal
	}{
		{fmt.Errorf("produce to t/0: %w", kafka.MessageSizeTooLarge), refusedRecord},
		{fmt.Errorf("produce to t/0: record 0 of 1: %w", kafka.InvalidRecord), refusedRecord},
		{kafka.RecordListTooLarge, refusedRecord},
		{fmt.Errorf("metadata of t: %w", kafka.TopicAuthorizationFailed), configFault},
		{kafka.ClusterAuthorizationFailed, configFault},
		{fmt.Errorf("metadata of t: %w", kafka.UnknownTopicOrPartition), configFault},
		{kafka.NotLeaderForPartition, transient},
		{kafka.NotEnoughReplicas, transient},
		{kafka.RequestTimedOut, transient},
		{errors.New("dial tcp: connection refused"), transient},
		{context.DeadlineExceeded, transient},
	} {
		if got := refusalOf(tc.err); got != tc.want {
			t.Errorf("refusalOf(%v): got %d; want %d", tc.err, got, tc.want)
		}
	}
}

// Regression (issue 12 review, item 5): a Kafka error code kafkaRefusals does
// not list was retried forever while the consumer said ready. A write failing
// transiently for stuckWrite now holds it unready (wxterm_output_fault); a
// brief failure (a leader election) does not.
func TestStuckTransientWriteHolds(t *testing.T) {
	for _, tc := range []struct {
		kind       refusal
		failingFor time.Duration
		want       bool
	}{
		{transient, 0, false},
		{transient, stuckWrite - time.Millisecond, false},
		{transient, stuckWrite, true},
		{refusalOf(kafka.Error(-9999)), 2 * stuckWrite, true}, // a code no one listed
		{configFault, 0, true},
		{refusedRecord, 0, true}, // a refused final dead letter: reduce is no longer possible
	} {
		if got := holds(tc.kind, tc.failingFor); got != tc.want {
			t.Errorf("holds(%d, %v): got %v; want %v", tc.kind, tc.failingFor, got, tc.want)
		}
	}
}
