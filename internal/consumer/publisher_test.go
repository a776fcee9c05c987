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
