package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/e2e"
)

// collector reads a scenario's result and dead-letter topics from the start
// of every partition, all the time the scenario runs, so that progress can
// be watched and everything published can be checked at the end.
type collector struct {
	s        *suite
	resTopic string
	dlqTopic string
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu        sync.Mutex
	results   []received
	dlq       []received
	answered  map[string]bool          // request_ids with at least one event
	failed    int                      // terminate-failed events read
	next      map[string]map[int]int64 // topic → partition → next offset to read
	readErrs  int
	lastError error
}

// received is one message read back, with its decoded result (results only).
type received struct {
	msg  kafka.Message
	at   time.Time
	res  *resultFields
	derr error
}

// resultFields is what the checks read from a result event; the event is
// decoded again in full by the verification.
type resultFields struct {
	EventID           string `json:"event_id"`
	EventType         string `json:"event_type"`
	RequestID         string `json:"request_id"`
	OutContractCode   string `json:"out_contract_code"`
	Reason            string `json:"reason"`
	Attempts          int    `json:"attempts"`
	AlreadyTerminated bool   `json:"already_terminated"`
	Replayed          bool   `json:"replayed"`
}

func (s *suite) newCollector(ctx context.Context, resTopic, dlqTopic string) *collector {
	ctx, cancel := context.WithCancel(ctx)
	c := &collector{s: s, resTopic: resTopic, dlqTopic: dlqTopic, cancel: cancel,
		answered: make(map[string]bool), next: map[string]map[int]int64{resTopic: {}, dlqTopic: {}}}
	for _, topic := range []string{resTopic, dlqTopic} {
		for p := range s.cfg.partitions {
			c.wg.Add(1)
			go c.read(ctx, topic, p)
		}
	}
	return c
}

func (c *collector) read(ctx context.Context, topic string, partition int) {
	defer c.wg.Done()
	rc := kafka.ReaderConfig{
		Brokers: []string{c.s.cfg.kafka}, Topic: topic, Partition: partition,
		MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 250 * time.Millisecond,
		ReadBackoffMin: 100 * time.Millisecond, ReadBackoffMax: 500 * time.Millisecond,
	}
	e2e.ReadPartition(ctx, rc, func(m kafka.Message) { c.add(topic, partition, m) }, func(err error) bool {
		c.noteErr(err)
		return sleep(ctx, 200*time.Millisecond)
	})
}

// add keeps m, read from topic's partition.
func (c *collector) add(topic string, partition int, m kafka.Message) {
	rec := received{msg: m, at: time.Now()}
	if topic == c.resTopic {
		var f resultFields
		if rec.derr = json.Unmarshal(m.Value, &f); rec.derr == nil {
			rec.res = &f
		}
	}
	c.mu.Lock()
	if topic == c.resTopic {
		c.results = append(c.results, rec)
		if rec.res != nil {
			c.answered[rec.res.RequestID] = true
			if rec.res.EventType == event.TypeFailed {
				c.failed++
			}
		}
	} else {
		c.dlq = append(c.dlq, rec)
	}
	c.next[topic][partition] = m.Offset + 1
	c.mu.Unlock()
}

func (c *collector) noteErr(err error) {
	c.mu.Lock()
	c.readErrs++
	c.lastError = err
	c.mu.Unlock()
}

// snapshot is the collector's counters at one moment.
type snapshot struct {
	results, failed, dlq, answered int
}

func (c *collector) snap() snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return snapshot{results: len(c.results), failed: c.failed, dlq: len(c.dlq), answered: len(c.answered)}
}

// classify counts the results read from index from to index to: those of
// requests that needed WeChat Pay (a valid intent's first request), and the
// terminate-failed ones among them.
func (c *collector) classify(w *workload, from, to int) (wechat, failed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rec := range c.results[from:min(to, len(c.results))] {
		if rec.res == nil {
			continue
		}
		if in := w.byReq[rec.res.RequestID]; in != nil && in.valid && in.primary {
			wechat++
			if rec.res.EventType == event.TypeFailed {
				failed++
			}
		}
	}
	return wechat, failed
}

// missingReplayed counts the valid requests of w without a replayed event.
func (c *collector) missingReplayed(w *workload) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := make(map[string]bool)
	for _, rec := range c.results {
		if rec.res != nil && rec.res.Replayed {
			seen[rec.res.RequestID] = true
		}
	}
	n := 0
	for id, in := range w.byReq {
		if in.valid && !seen[id] {
			n++
		}
	}
	return n
}

// missing counts the request_ids of w without an event, and the undecodable
// messages of w without a dead letter.
func (c *collector) missing(w *workload) (reqs, garbage int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range w.byReq {
		if !c.answered[id] {
			reqs++
		}
	}
	seen := make(map[string]bool)
	for _, d := range c.dlq {
		seen[string(d.msg.Value)] = true
	}
	for _, g := range w.garbage {
		if !seen[string(g)] {
			garbage++
		}
	}
	return reqs, garbage
}

// catchUp waits until the collector has read every partition of both topics
// up to its current end.
func (c *collector) catchUp(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		lagging, err := c.lag(ctx)
		if err == nil && lagging == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("reading results back: %d partitions behind after %s (%v)", lagging, d, err)
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
}

func (c *collector) lag(ctx context.Context) (int, error) {
	lagging := 0
	for _, topic := range []string{c.resTopic, c.dlqTopic} {
		ends, err := c.s.endOffsets(ctx, topic)
		if err != nil {
			return -1, err
		}
		c.mu.Lock()
		for p, end := range ends {
			if c.next[topic][p] < end {
				lagging++
			}
		}
		c.mu.Unlock()
	}
	return lagging, nil
}

// stop ends the readers.
func (c *collector) stop() {
	c.cancel()
	c.wg.Wait()
}
