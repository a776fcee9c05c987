package consumer

import (
	"context"
	"errors"
	"strconv"
	"time"

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
			p.commit(log)
		}
	}
}

// commit commits the lowest unfinished offset if it moved. One commit at a
// time per generation: the partitions share the coordinator connection, on
// which kafka-go makes a request waiting for its response spin while
// another's is read.
func (p *partition) commit(log interface {
	Warn(string, ...any)
}) {
	off, ok := p.tracker.committable()
	if !ok || off <= p.committed {
		return
	}
	p.commitMu.Lock()
	defer p.commitMu.Unlock()
	err := p.gen.CommitOffsets(map[string]map[int]int64{p.topic: {p.id: off}})
	if err != nil {
		// A stale generation cannot commit; its successor re-reads from the
		// last commit and the dedupe record makes that harmless.
		if !errors.Is(err, kafka.ErrGroupClosed) {
			log.Warn("commit", "offset", off, "err", err)
		}
		return
	}
	p.committed = off
	// The reader's lag is from its fetch position to the partition's end;
	// what is fetched but not committed adds to it.
	if fetched, ok := p.tracker.fetched(); ok {
		lag := p.reader.Stats().Lag + fetched - off
		p.c.opts.Metrics.CommitLag.WithLabelValues(strconv.Itoa(p.id)).Set(float64(max(lag, 0)))
	}
}
