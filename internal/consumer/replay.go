package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/intentid"
)

// ReplayRange selects messages of the request topic: by time (From
// inclusive, To exclusive; a zero To is the partition's end) or, if Offsets
// is set, by partition offsets [start, end).
type ReplayRange struct {
	From, To time.Time
	Offsets  map[int][2]int64
}

// PartitionRange is the resolved range of one partition: [Start, End).
type PartitionRange struct {
	Partition  int
	Start, End int64
}

// Messages is how many offsets the range spans.
func (r PartitionRange) Messages() int64 { return max(r.End-r.Start, 0) }

// ReplayOptions configure Replay.
type ReplayOptions struct {
	Range ReplayRange
	// Reemit re-publishes the stored result of intents already answered,
	// marked replayed (same event_id, so downstream dedupes it).
	Reemit bool
	// Progress, if set, is called about every second and once at the end.
	Progress func(ReplayProgress)
	// Batch is how many messages share one batched dedupe read; default 500.
	Batch int
}

// ReplayProgress reports a replay's progress.
type ReplayProgress struct {
	Ranges    []PartitionRange
	Total     int64 // messages in the range
	Read      int64 // messages read so far
	Answered  int64 // already answered: skipped, or re-emitted with Reemit
	Reemitted int64
	Processed int64 // not answered before: taken through the normal path
	Done      bool
}

// ResolveRange turns r into offsets per partition of the request topic.
func (c *Consumer) ResolveRange(ctx context.Context, r ReplayRange) ([]PartitionRange, error) {
	cl := &kafka.Client{Addr: kafka.TCP(c.opts.Brokers...), Timeout: 10 * time.Second, Transport: c.opts.Transport}
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{c.opts.RequestTopic}})
	if err != nil {
		return nil, fmt.Errorf("replay: metadata: %w", err)
	}
	var parts []int
	for _, t := range md.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("replay: topic %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			parts = append(parts, p.ID)
		}
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("replay: topic %s has no partitions", c.opts.RequestTopic)
	}
	sort.Ints(parts)
	var reqs []kafka.OffsetRequest
	for _, p := range parts {
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	bounds, err := c.listOffsets(ctx, cl, reqs)
	if err != nil {
		return nil, err
	}
	var out []PartitionRange
	if r.Offsets != nil {
		for p, se := range r.Offsets {
			b, ok := bounds[p]
			if !ok {
				return nil, fmt.Errorf("replay: partition %d does not exist", p)
			}
			if se[0] > se[1] {
				return nil, fmt.Errorf("replay: partition %d: start %d after end %d", p, se[0], se[1])
			}
			out = append(out, PartitionRange{Partition: p, Start: max(se[0], b.FirstOffset), End: min(se[1], b.LastOffset)})
		}
	} else {
		if r.From.IsZero() {
			return nil, errors.New("replay: a range needs a start time or offsets")
		}
		at := func(t time.Time) (map[int]kafka.PartitionOffsets, error) {
			var reqs []kafka.OffsetRequest
			for _, p := range parts {
				reqs = append(reqs, kafka.TimeOffsetOf(p, t))
			}
			return c.listOffsets(ctx, cl, reqs)
		}
		from, err := at(r.From)
		if err != nil {
			return nil, err
		}
		to := bounds
		if !r.To.IsZero() {
			if to, err = at(r.To); err != nil {
				return nil, err
			}
		}
		for _, p := range parts {
			out = append(out, PartitionRange{Partition: p, Start: timeOffset(from[p], bounds[p]), End: timeOffset(to[p], bounds[p])})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition })
	return out, nil
}

// timeOffset is the first offset at or after the requested time; a
// partition with no such message answers -1, meaning its end.
func timeOffset(at, bounds kafka.PartitionOffsets) int64 {
	for off := range at.Offsets {
		if off >= 0 {
			return off
		}
	}
	return bounds.LastOffset
}

func (c *Consumer) listOffsets(ctx context.Context, cl *kafka.Client, reqs []kafka.OffsetRequest) (map[int]kafka.PartitionOffsets, error) {
	resp, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{c.opts.RequestTopic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("replay: list offsets: %w", err)
	}
	out := make(map[int]kafka.PartitionOffsets)
	for _, po := range resp.Topics[c.opts.RequestTopic] {
		if po.Error != nil {
			return nil, fmt.Errorf("replay: list offsets of partition %d: %w", po.Partition, po.Error)
		}
		prev, ok := out[po.Partition]
		if !ok {
			prev = kafka.PartitionOffsets{Partition: po.Partition, FirstOffset: -1, LastOffset: -1, Offsets: map[int64]time.Time{}}
		}
		if po.FirstOffset >= 0 {
			prev.FirstOffset = po.FirstOffset
		}
		if po.LastOffset >= 0 {
			prev.LastOffset = po.LastOffset
		}
		for off, ts := range po.Offsets {
			prev.Offsets[off] = ts
		}
		out[po.Partition] = prev
	}
	return out, nil
}

// Replay reprocesses ranges of the request topic without joining the
// consumer group, so the live group is not disturbed. Intents already
// answered cost one batched dedupe read and no WeChat Pay call; others go
// through the normal path (claim, call, store, publish). It returns when the
// ranges are done or ctx ends.
func (c *Consumer) Replay(ctx context.Context, ranges []PartitionRange, opts ReplayOptions) (ReplayProgress, error) {
	if opts.Batch <= 0 {
		opts.Batch = 500
	}
	var total int64
	for _, r := range ranges {
		total += r.Messages()
	}
	var read, answered, reemitted, processed atomic.Int64
	snapshot := func(done bool) ReplayProgress {
		return ReplayProgress{Ranges: ranges, Total: total, Read: read.Load(), Answered: answered.Load(),
			Reemitted: reemitted.Load(), Processed: processed.Load(), Done: done}
	}
	stopProgress := make(chan struct{})
	var progressWG sync.WaitGroup
	if opts.Progress != nil {
		progressWG.Add(1)
		go func() {
			defer progressWG.Done()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stopProgress:
					return
				case <-t.C:
					opts.Progress(snapshot(false))
				}
			}
		}()
	}

	errs := make(chan error, len(ranges))
	var wg sync.WaitGroup
	for _, r := range ranges {
		if r.Messages() == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rp := &replayPartition{c: c, r: r, opts: opts, read: &read, answered: &answered, reemitted: &reemitted, processed: &processed}
			if err := rp.run(ctx); err != nil {
				errs <- fmt.Errorf("replay: partition %d: %w", r.Partition, err)
			}
		}()
	}
	wg.Wait()
	close(stopProgress)
	progressWG.Wait()
	close(errs)
	err := errors.Join(func() (all []error) {
		for e := range errs {
			all = append(all, e)
		}
		return
	}()...)
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	final := snapshot(err == nil)
	if opts.Progress != nil {
		opts.Progress(final)
	}
	return final, err
}

type replayPartition struct {
	c                                    *Consumer
	r                                    PartitionRange
	opts                                 ReplayOptions
	read, answered, reemitted, processed *atomic.Int64
}

func (rp *replayPartition) run(ctx context.Context) error {
	c := rp.c
	reader := kafka.NewReader(kafka.ReaderConfig{
		Brokers: c.opts.Brokers, Dialer: c.opts.Dialer, Topic: c.opts.RequestTopic, Partition: rp.r.Partition,
		// A replay reads a backlog that is there: a short long-poll keeps the
		// last fetch (and Close, which waits for it) from idling at the end.
		MinBytes: 1, MaxBytes: 4 << 20, MaxWait: min(c.opts.FetchMaxWait, 20*time.Millisecond), QueueCapacity: rp.opts.Batch,
	})
	defer closeReader(reader)
	if err := reader.SetOffset(rp.r.Start); err != nil {
		return err
	}
	// Messages that need work go through the live path's per-key lanes.
	l := c.newLanes()
	defer l.startWorkers()()

	msgs := make(chan kafka.Message, rp.opts.Batch)
	fetchErr := make(chan error, 1)
	go func() {
		defer close(msgs)
		for off := rp.r.Start; off < rp.r.End; {
			m, err := reader.FetchMessage(ctx)
			if err != nil {
				fetchErr <- err
				return
			}
			if m.Offset >= rp.r.End {
				return
			}
			off = m.Offset + 1
			msgs <- m
		}
	}()
	batch := make([]kafka.Message, 0, rp.opts.Batch)
	for m := range msgs {
		batch = append(batch[:0], m)
	fill: // take what is already fetched, without waiting for more
		for len(batch) < rp.opts.Batch {
			select {
			case m, ok := <-msgs:
				if !ok {
					break fill
				}
				batch = append(batch, m)
			default:
				break fill
			}
		}
		if err := rp.batch(ctx, l, batch); err != nil {
			return err
		}
	}
	select {
	case err := <-fetchErr:
		return err
	default:
	}
	return ctx.Err()
}

// batch answers what the dedupe record already answered, with one
// pipelined read of one field per intent and no validation (an answered
// request was valid), and dispatches the rest to the normal path.
func (rp *replayPartition) batch(ctx context.Context, l *lanes, batch []kafka.Message) error {
	c := rp.c
	rp.read.Add(int64(len(batch)))
	reqs := make([]string, len(batch))
	codes := make([]string, len(batch))
	var idx []int // batch indexes that could be peeked
	var pcodes, preqs []string
	for i, m := range batch {
		if req, code, ok := intentid.Peek(m.Value, m.Key); ok {
			reqs[i], codes[i] = req, code
			idx = append(idx, i)
			pcodes, preqs = append(pcodes, code), append(preqs, req)
		}
	}
	answered, err := retryStore(ctx, c, func() ([]bool, error) { return c.opts.Store.Answered(ctx, pcodes, preqs) })
	if err != nil {
		return err
	}
	done := make([]bool, len(batch))
	var reemit []int
	for j, i := range idx {
		if answered[j] {
			done[i] = true
			reemit = append(reemit, i)
		}
	}
	for i, m := range batch {
		if done[i] {
			rp.answered.Add(1)
			continue
		}
		if _, err := decode(m); err != nil {
			// Invalid input was answered (event or dead letter) when first
			// read; only a re-emit repeats its event.
			rp.answered.Add(1)
			if rp.opts.Reemit {
				if err := rp.reemitInvalid(ctx, m); err != nil {
					return err
				}
			}
			continue
		}
		rp.processed.Add(1)
		if err := l.admit(ctx, ctx, m); err != nil {
			return err
		}
	}
	if !rp.opts.Reemit || len(reemit) == 0 {
		return nil
	}
	rcodes := make([]string, len(reemit))
	for j, i := range reemit {
		rcodes[j] = codes[i]
	}
	recs, err := retryStore(ctx, c, func() ([]dedupe.Record, error) { return c.opts.Store.GetMany(ctx, rcodes) })
	if err != nil {
		return err
	}
	for j, i := range reemit {
		in, err := event.DecodeIntent(batch[i].Value)
		if err != nil {
			in = event.Intent{RequestID: reqs[i], OutContractCode: codes[i]}
		}
		if err := rp.reemit(ctx, in, batch[i], recs[j]); err != nil {
			return err
		}
	}
	return nil
}

// reemit publishes the stored answer to in again, marked replayed.
func (rp *replayPartition) reemit(ctx context.Context, in event.Intent, m kafka.Message, rec dedupe.Record) error {
	var r event.Result
	if err := json.Unmarshal(rec.Outcome, &r); err != nil {
		return fmt.Errorf("stored outcome of %s unreadable: %w", in.OutContractCode, err)
	}
	if r.RequestID != in.RequestID {
		// Answered from another request's termination: derive its event.
		if r.Contract == nil {
			return fmt.Errorf("stored outcome of %s lacks the contract", in.OutContractCode)
		}
		r = event.Terminated(in, event.Source{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}, *r.Contract, 0, true, rp.c.opts.Now())
	}
	r.Replayed = true
	return rp.publishReplayed(ctx, r)
}

func (rp *replayPartition) reemitInvalid(ctx context.Context, m kafka.Message) error {
	req, code, ok := event.Identify(m.Value, m.Key)
	if !ok {
		return nil // it went to the dead-letter topic; that is not repeated
	}
	detail := "invalid intent"
	if _, err := decode(m); err != nil {
		detail = invalidDetail(err)
	}
	r := event.Failed(req, code, "", "", event.Source{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset},
		event.Failure{Reason: event.ReasonInvalidRequest, Detail: detail}, 0, rp.c.opts.Now())
	r.Replayed = true
	return rp.publishReplayed(ctx, r)
}

func (rp *replayPartition) publishReplayed(ctx context.Context, r event.Result) error {
	if err := rp.c.publish(ctx, output{result: &r, replayed: true}); err != nil {
		return err
	}
	rp.reemitted.Add(1)
	return nil
}
