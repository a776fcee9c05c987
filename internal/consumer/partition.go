package consumer

import (
	"context"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// partition works through one assigned partition for one generation: it
// fetches, feeds its lanes, commits (commit.go) and drains when the
// generation ends.
type partition struct {
	*lanes
	g     *generation
	topic string
	id    int
	start int64

	reader *kafka.Reader

	commitMu  *sync.Mutex // shared by a generation's partitions
	committed int64
}

func (c *Consumer) newPartition(g *generation, id int, start int64, commitMu *sync.Mutex) *partition {
	return &partition{lanes: c.newLanes(), g: g, topic: c.opts.RequestTopic, id: id, start: start,
		commitMu: commitMu, committed: -1}
}

// run works the partition, then, if the consumer is stopping, holds the
// generation open until Run left the group (generation.hold).
func (p *partition) run(genCtx context.Context) {
	p.work(genCtx)
	p.g.pending.Done()
	p.g.hold()
}

// work fetches until the generation ends or the consumer stops, then drains
// and makes the final commit. Work runs under its own context so a revoked
// or stopping partition can still finish what it started; that context is
// cancelled when the drain times out.
func (p *partition) work(genCtx context.Context) {
	log := p.c.opts.Logger.With("partition", p.id)
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   p.c.opts.Brokers,
		Dialer:    p.c.opts.Dialer,
		Topic:     p.topic,
		Partition: p.id,
		MinBytes:  1,
		MaxBytes:  1 << 20,
		MaxWait:   p.c.opts.FetchMaxWait,
		// The reader's own queue adds to the slots; keep it small so memory
		// stays bounded whatever the backlog.
		QueueCapacity: 64,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			log.Debug("kafka reader", "detail", msg)
		}),
	})
	p.reader = r
	if err := r.SetOffset(p.start); err != nil {
		log.Error("set offset", "offset", p.start, "err", err)
		_ = r.Close()
		return
	}
	workCtx, cancelWork := context.WithCancel(context.Background())
	defer cancelWork()
	stopWorkers := p.startWorkers()
	defer stopWorkers()
	// Fetching stops when the generation ends or the consumer stops; the
	// generation itself stays open while a stopping consumer drains.
	fetchCtx, stopFetch := context.WithCancel(genCtx)
	defer stopFetch()
	defer context.AfterFunc(p.g.stop, stopFetch)()

	commitDone := make(chan struct{})
	go p.commitLoop(fetchCtx, commitDone)

	for {
		m, err := r.FetchMessage(fetchCtx)
		if err != nil {
			if fetchCtx.Err() != nil {
				break
			}
			log.Warn("fetch", "err", err)
			if !sleep(fetchCtx, 200*time.Millisecond) {
				break
			}
			continue
		}
		if p.admit(fetchCtx, workCtx, m) != nil {
			break // not dispatched, so not tracked: it is redelivered
		}
		p.c.consumed()
	}
	closeReader(r)

	// Drain: let in-flight work finish, bounded, then hand back the rest.
	inFlight := p.tracker.inFlight()
	drained := p.drained()
	select {
	case <-drained:
	case <-time.After(p.c.opts.ShutdownTimeout):
		log.Warn("drain timed out; handing back in-flight intents", "in_flight", p.tracker.inFlight())
		cancelWork()
		<-drained
	}
	<-commitDone
	if err := p.finalCommit(); err != nil {
		log.Warn("final commit failed; the next owner re-reads from the last commit", "err", err)
		return
	}
	log.Info("partition drained", "in_flight", inFlight, "committed", p.committed)
}

// closeReader closes r without letting a slow broker hold up the drain:
// kafka-go's Close can block up to MaxWait.
func closeReader(r *kafka.Reader) {
	done := make(chan struct{})
	go func() { _ = r.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}
