package consumer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/internal/batch"
)

// publisher writes messages with acks=all through kafka-go's Client. Each
// partition has at most one produce request in flight; what arrives
// meanwhile leaves together in the next one. A lone message is sent at once
// and a burst batches itself, so there is no linger timer to wait out:
// kafka.Writer holds every message up to BatchTimeout and then still sends
// one batch per partition at a time, which under load cost an intent more
// than its Redis steps together (docs/benchmarks.md).
//
// Messages of one key are never in two requests at once (a key's next
// intent waits for its result to be published), so sending them in
// separate requests cannot reorder a key.
type publisher struct {
	client   *kafka.Client
	balancer kafka.Murmur2Balancer // same partition for a key as Java clients

	requests atomic.Int64 // produce requests sent

	mu     sync.Mutex
	queues map[topicPartition]*batch.Queue[*pendingMessage]
	topics map[string]*topicMeta
}

type topicPartition struct {
	topic     string
	partition int
}

type pendingMessage struct {
	m    kafka.Message
	size int
	done chan error // buffered: the sender never blocks on it
}

// topicMeta caches a topic's partitions. It is refreshed in the background
// once stale, and at once after a produce error: a topic can gain
// partitions, and a metadata error must not stick.
type topicMeta struct {
	partitions []int
	fetched    time.Time
	refreshing bool
}

const (
	metadataTTL     = 30 * time.Second
	produceAttempts = 3
	maxBatchRecords = 500
	// maxBatchBytes stays under the broker's default message.max.bytes (1 MiB
	// per record batch); a single larger message still goes alone.
	maxBatchBytes = 900 << 10
)

func newPublisher(brokers []string, transport kafka.RoundTripper, timeout time.Duration) *publisher {
	return &publisher{
		client: &kafka.Client{Addr: kafka.TCP(brokers...), Transport: transport, Timeout: timeout},
		queues: make(map[topicPartition]*batch.Queue[*pendingMessage]),
		topics: make(map[string]*topicMeta),
	}
}

// write publishes m to m.Topic and returns when the broker has acknowledged
// it with acks=all, when it failed, or when ctx is done (then m may still be
// published: its event id makes a second copy harmless).
func (p *publisher) write(ctx context.Context, m kafka.Message) error {
	parts, err := p.partitions(ctx, m.Topic)
	if err != nil {
		return err
	}
	pm := &pendingMessage{m: m, size: len(m.Key) + len(m.Value) + 64, done: make(chan error, 1)}
	for _, h := range m.Headers {
		pm.size += len(h.Key) + len(h.Value)
	}
	tp := topicPartition{m.Topic, p.balancer.Balance(m, parts...)}
	p.mu.Lock()
	q := p.queues[tp]
	if q == nil {
		q = batch.New(1, func(b []*pendingMessage) { p.send(tp, b) }, takeBatch)
		p.queues[tp] = q
	}
	p.mu.Unlock()
	q.Add(pm)
	select {
	case err := <-pm.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// takeBatch takes what fits in one produce request.
func takeBatch(w []*pendingMessage) int {
	n, size := 0, 0
	for n < len(w) && n < maxBatchRecords && (n == 0 || size+w[n].size <= maxBatchBytes) {
		size += w[n].size
		n++
	}
	return n
}

// send produces batch and tells each of its writers the outcome.
func (p *publisher) send(tp topicPartition, batch []*pendingMessage) {
	// A few quick attempts, as kafka.Writer makes: a leader moving or a
	// topic just created answers NOT_LEADER for a moment. The caller
	// retries with backoff beyond that.
	var err error
	for attempt := range produceAttempts {
		if attempt > 0 {
			p.stale(tp.topic)
			time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
		}
		if err = p.produce(tp, batch); err == nil || refusalOf(err) != transient {
			break // a refusal answers the same again
		}
	}
	if err != nil && len(batch) > 1 && refusalOf(err) == refusedRecord {
		// Kafka refuses the batch as a whole when one record is refused, or
		// when together they exceed the topic's max.message.bytes: send
		// each alone, so only a record that is itself refused fails.
		for _, pm := range batch {
			p.send(tp, []*pendingMessage{pm})
		}
		return
	}
	for _, pm := range batch {
		pm.done <- err
	}
}

func (p *publisher) produce(tp topicPartition, batch []*pendingMessage) error {
	records := make([]kafka.Record, len(batch))
	now := time.Now()
	for i, pm := range batch {
		at := pm.m.Time
		if at.IsZero() {
			at = now // as kafka.Writer does: the record's CreateTime
		}
		records[i] = kafka.Record{Time: at, Key: bytesOrNil(pm.m.Key), Value: bytesOrNil(pm.m.Value), Headers: pm.m.Headers}
	}
	p.requests.Add(1)
	// The client's Timeout bounds the request; no caller's context does,
	// since the batch carries other callers' messages.
	res, err := p.client.Produce(context.Background(), &kafka.ProduceRequest{
		Topic: tp.topic, Partition: tp.partition, RequiredAcks: kafka.RequireAll,
		Records: kafka.NewRecordReader(records...),
	})
	switch {
	case err != nil:
		return err
	case res.Error != nil:
		return fmt.Errorf("produce to %s/%d: %w", tp.topic, tp.partition, res.Error)
	case len(res.RecordErrors) > 0:
		// The broker rejected the batch as a whole; report one of its reasons.
		for i, e := range res.RecordErrors {
			return fmt.Errorf("produce to %s/%d: record %d of %d: %w", tp.topic, tp.partition, i, len(batch), e)
		}
	}
	return nil
}

func bytesOrNil(b []byte) kafka.Bytes {
	if b == nil {
		return nil
	}
	return kafka.NewBytes(b)
}

// partitions returns topic's partition ids, fetching them the first time
// and refreshing them in the background when stale.
func (p *publisher) partitions(ctx context.Context, topic string) ([]int, error) {
	p.mu.Lock()
	t := p.topics[topic]
	if t != nil && t.partitions != nil {
		if time.Since(t.fetched) > metadataTTL && !t.refreshing {
			t.refreshing = true
			go func() {
				rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, _ = p.fetch(rctx, topic)
			}()
		}
		parts := t.partitions
		p.mu.Unlock()
		return parts, nil
	}
	p.mu.Unlock()
	return p.fetch(ctx, topic)
}

// stale makes the next write of topic refresh its partitions.
func (p *publisher) stale(topic string) {
	p.mu.Lock()
	if t := p.topics[topic]; t != nil {
		t.fetched = time.Time{}
	}
	p.mu.Unlock()
}

func (p *publisher) fetch(ctx context.Context, topic string) ([]int, error) {
	parts, err := p.lookup(ctx, topic)
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.topics[topic]
	if t == nil {
		t = &topicMeta{}
		p.topics[topic] = t
	}
	t.refreshing = false
	if err != nil {
		return nil, err
	}
	t.partitions, t.fetched = parts, time.Now()
	return parts, nil
}

var errNoPartitions = errors.New("topic has no partitions")

func (p *publisher) lookup(ctx context.Context, topic string) ([]int, error) {
	res, err := p.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	for _, t := range res.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("metadata of %s: %w", topic, t.Error)
		}
		if len(t.Partitions) == 0 {
			return nil, fmt.Errorf("metadata of %s: %w", topic, errNoPartitions)
		}
		parts := make([]int, len(t.Partitions))
		for i, pt := range t.Partitions {
			parts[i] = pt.ID
		}
		// Sorted ids: the balancer maps a key to an index into this list.
		slices.Sort(parts)
		return parts, nil
	}
	return nil, fmt.Errorf("metadata of %s: %w", topic, kafka.UnknownTopicOrPartition)
}
