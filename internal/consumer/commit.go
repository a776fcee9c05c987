package consumer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/segmentio/kafka-go"
)

func (p *partition) commitLoop(genCtx context.Context, done chan<- struct{}) {
	defer close(done)
	log := p.c.opts.Logger.With("partition", p.id)
	t := time.NewTicker(p.c.opts.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-genCtx.Done():
			return
		case <-t.C:
			if err := p.commit(); err != nil && !errors.Is(err, kafka.ErrGroupClosed) {
				// A stale generation cannot commit; its successor re-reads
				// from the last commit and the dedupe record makes that
				// harmless.
				log.Warn("commit", "err", err)
			}
		}
	}
}

// commit commits the lowest unfinished offset if it moved. One commit at a
// time per generation: the partitions share the coordinator connection, on
// which kafka-go makes a request waiting for its response spin while
// another's is read.
func (p *partition) commit() error {
	off, ok := p.tracker.committable()
	if !ok || off <= p.committed {
		return nil
	}
	p.commitMu.Lock()
	defer p.commitMu.Unlock()
	if err := p.g.gen.CommitOffsets(map[string]map[int]int64{p.topic: {p.id: off}}); err != nil {
		return fmt.Errorf("commit offset %d: %w", off, err)
	}
	p.committed = off
	// The reader's lag is from its fetch position to the partition's end;
	// what is fetched but not committed adds to it.
	if fetched, ok := p.tracker.fetched(); ok {
		lag := p.reader.Stats().Lag + fetched - off
		p.c.opts.Metrics.CommitLag.WithLabelValues(strconv.Itoa(p.id)).Set(float64(max(lag, 0)))
	}
	return nil
}

// finalCommit commits after the drain, retrying for a few seconds: a
// commit lost here redelivers every intent the drain just finished. The
// coordinator accepts it with the old generation id while the group
// prepares a rebalance; it refuses it for good once the member is gone.
func (p *partition) finalCommit() error {
	b := backoff.NewExponentialBackOff(backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(time.Second), backoff.WithMaxElapsedTime(5*time.Second))
	return backoff.Retry(func() error {
		err := p.commit()
		if errors.Is(err, kafka.ErrGroupClosed) || errors.Is(err, kafka.UnknownMemberId) ||
			errors.Is(err, kafka.IllegalGeneration) {
			return backoff.Permanent(err)
		}
		return err
	}, b)
}
