package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/e2e"
)

func (e *env) client() *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(e.brokers...), Timeout: 30 * time.Second}
}

// createTopics creates t's topics (the dead-letter topic with one
// partition) and waits until every partition has a leader.
func (e *env) createTopics(ctx context.Context, t topics) error {
	return e2e.CreateTopics(ctx, e.client(), e2e.Topics(t.partitions, t.requests, t.results, t.dlq)...)
}

// code is the out_contract_code of intent i of a scenario: letters and
// digits only, unique per run.
func (e *env) code(scenario string, i int) string {
	return fmt.Sprintf("B%s%s%07d", e.runID, scenario, i)
}

// intent encodes a valid credit_repayment intent for code.
func intent(code string, at time.Time) kafka.Message {
	in := event.Intent{
		SchemaVersion: event.SchemaVersion, RequestID: "bench-" + code, RequestedAt: at.UTC(),
		Source: "wxterm-bench", API: event.CreditRepayment, OutContractCode: code,
		Remark: "bulk termination benchmark",
	}
	b, err := json.Marshal(in)
	if err != nil {
		panic(err) // a fixed struct always encodes
	}
	return kafka.Message{Key: []byte(code), Value: b, Time: at}
}

// bulkWriter writes big batches to one topic, spreading messages evenly over
// the partitions (round robin), so that no partition has more work than
// another: a hash of a few thousand keys leaves some partitions ±5% heavier,
// and the heaviest one decides when a backlog is done.
func (e *env) bulkWriter(topic string) *kafka.Writer {
	return &kafka.Writer{
		Addr: kafka.TCP(e.brokers...), Topic: topic, Balancer: &kafka.RoundRobin{},
		RequiredAcks: kafka.RequireAll, BatchSize: 2000, BatchBytes: 8 << 20, BatchTimeout: 5 * time.Millisecond,
		WriteTimeout: 30 * time.Second,
	}
}

// produce publishes intents first..first+n-1 of a scenario as a backlog.
func (e *env) produce(ctx context.Context, topic, scenario string, first, n int) error {
	w := e.bulkWriter(topic)
	defer w.Close()
	const chunk = 10000
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	next := make(chan [2]int)
	for range 2 { // two writers in flight keep the broker busy while the next chunk is encoded
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range next {
				msgs := make([]kafka.Message, 0, r[1]-r[0])
				now := time.Now()
				for i := r[0]; i < r[1]; i++ {
					msgs = append(msgs, intent(e.code(scenario, i), now))
				}
				if err := w.WriteMessages(ctx, msgs...); err != nil {
					errs <- fmt.Errorf("produce to %s: %w", topic, err)
					return
				}
			}
		}()
	}
	go func() {
		defer close(next)
		for i := first; i < first+n; i += chunk {
			select {
			case next <- [2]int{i, min(i+chunk, first+n)}:
			case <-ctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return ctx.Err()
}

// result is one result event as the bench saw it.
type result struct {
	code, eventType, reason string
	ts                      time.Time // Kafka timestamp: when the consumer's writer sent it
	occurred                time.Time // the event's occurred_at: when the consumer had the call's outcome
	recv                    time.Time // when the bench read it
}

// collector reads a result topic from its start, one reader per partition,
// and keeps the first result of each contract.
type collector struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	got     map[string]result
	dups    int
	changed chan struct{}
	err     error
}

func (e *env) startCollector(ctx context.Context, t topics) *collector {
	ctx, cancel := context.WithCancel(ctx)
	c := &collector{cancel: cancel, got: make(map[string]result), changed: make(chan struct{})}
	for p := range t.partitions {
		rc := kafka.ReaderConfig{
			Brokers: e.brokers, Topic: t.results, Partition: p,
			MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 100 * time.Millisecond, QueueCapacity: 1000,
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			e2e.ReadPartition(ctx, rc, c.read, func(err error) bool { c.fail(err); return false })
		}()
	}
	return c
}

// read keeps the result m.
func (c *collector) read(m kafka.Message) {
	now := time.Now()
	var v struct {
		EventType       string    `json:"event_type"`
		OutContractCode string    `json:"out_contract_code"`
		Reason          string    `json:"reason"`
		OccurredAt      time.Time `json:"occurred_at"`
	}
	if err := json.Unmarshal(m.Value, &v); err != nil {
		c.fail(fmt.Errorf("result at %d/%d: %w", m.Partition, m.Offset, err))
		return
	}
	c.add(result{code: v.OutContractCode, eventType: v.EventType, reason: v.Reason, ts: m.Time, occurred: v.OccurredAt, recv: now})
}

func (c *collector) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

func (c *collector) add(r result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.got[r.code]; dup {
		c.dups++
		return
	}
	c.got[r.code] = r
	close(c.changed)
	c.changed = make(chan struct{})
}

// wait returns once n contracts have a result, or fails after timeout.
func (c *collector) wait(ctx context.Context, n int, timeout time.Duration) ([]result, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		have, ch, err := len(c.got), c.changed, c.err
		c.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("reading results: %w", err)
		}
		if have >= n {
			return c.results(), nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			return c.results(), fmt.Errorf("only %d of %d results after %s", have, n, timeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// results are the results so far, by Kafka timestamp.
func (c *collector) results() []result {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]result, 0, len(c.got))
	for _, r := range c.got {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b result) int { return a.ts.Compare(b.ts) })
	return out
}

func (c *collector) duplicates() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dups
}

func (c *collector) close() {
	c.cancel()
	c.wg.Wait()
}

// rate is the steady-state throughput of results sorted by timestamp:
// (n-1) intervals over the time from the first to the last.
func rate(rs []result) float64 {
	if len(rs) < 2 {
		return 0
	}
	span := rs[len(rs)-1].ts.Sub(rs[0].ts).Seconds()
	if span <= 0 {
		return 0
	}
	return float64(len(rs)-1) / span
}

// centralRate is the throughput between the results at quantiles lo and hi
// of the run, leaving out the start (a limiter's initial burst) and the end.
func centralRate(rs []result, lo, hi float64) float64 {
	i, j := int(lo*float64(len(rs))), int(hi*float64(len(rs)))-1
	if j <= i || j >= len(rs) {
		return rate(rs)
	}
	span := rs[j].ts.Sub(rs[i].ts).Seconds()
	if span <= 0 {
		return 0
	}
	return float64(j-i) / span
}

// checkTerminated reports results that are not contract-terminated.
func checkTerminated(rs []result) error {
	bad := map[string]int{}
	for _, r := range rs {
		if r.eventType != event.TypeTerminated {
			bad[r.eventType+"/"+r.reason]++
		}
	}
	if len(bad) == 0 {
		return nil
	}
	var parts []string
	for k, v := range bad {
		parts = append(parts, fmt.Sprintf("%s: %d", k, v))
	}
	slices.Sort(parts)
	return fmt.Errorf("results not contract-terminated: %s", strings.Join(parts, ", "))
}

// rawLoop is what a consumer of the request topic costs when it does
// nothing: a kafka-go Reader in a group (otherwise kafka-go's defaults),
// FetchMessage, and CommitMessages every commitEvery messages (kafka-go
// commits the highest offset per partition of the messages passed). It returns how many messages it read
// and the time from the first fetched message to the last commit, and from
// the reader's creation (group join included).
func (e *env) rawLoop(ctx context.Context, t topics, n, commitEvery int) (read int, steady, total time.Duration, err error) {
	start := time.Now()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: e.brokers, GroupID: t.group + "-raw", Topic: t.requests, StartOffset: kafka.FirstOffset,
		// Like the replay's readers; it only matters once the topic is read
		// to its end (Close waits for the fetch in flight), after the timing.
		MaxWait: 250 * time.Millisecond,
	})
	defer r.Close()
	var first time.Time
	pending := make([]kafka.Message, 0, commitEvery)
	for read < n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return read, 0, 0, err
		}
		if read == 0 {
			first = time.Now()
		}
		read++
		pending = append(pending, m)
		if len(pending) == commitEvery || read == n {
			if err := r.CommitMessages(ctx, pending...); err != nil {
				return read, 0, 0, err
			}
			pending = pending[:0]
		}
	}
	end := time.Now()
	return read, end.Sub(first), end.Sub(start), nil
}
