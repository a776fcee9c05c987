package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/intentid"
)

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
	// Skipped are answered intents a re-emit could not answer again (nothing
	// stored answers the request any more, or its event is unreadable);
	// each is logged.
	Skipped   int64
	Processed int64 // not answered before: taken through the normal path
	Done      bool
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
	var read, answered, reemitted, skipped, processed atomic.Int64
	snapshot := func(done bool) ReplayProgress {
		return ReplayProgress{Ranges: ranges, Total: total, Read: read.Load(), Answered: answered.Load(),
			Reemitted: reemitted.Load(), Skipped: skipped.Load(), Processed: processed.Load(), Done: done}
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
			rp := &replayPartition{c: c, r: r, opts: opts, read: &read, answered: &answered, reemitted: &reemitted, skipped: &skipped, processed: &processed}
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
	c                                             *Consumer
	r                                             PartitionRange
	opts                                          ReplayOptions
	read, answered, reemitted, skipped, processed *atomic.Int64
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
