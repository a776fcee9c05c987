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
	gen   *kafka.Generation
	topic string
	id    int
	start int64

	reader *kafka.Reader

	commitMu  *sync.Mutex // shared by a generation's partitions
	committed int64
}

func (c *Consumer) newPartition(gen *kafka.Generation, id int, start int64, commitMu *sync.Mutex) *partition {
	return &partition{lanes: c.newLanes(), gen: gen, topic: c.opts.RequestTopic, id: id, start: start,
		commitMu: commitMu, committed: -1}
}

// run fetches until the generation ends, then drains. Work runs under its own
// context so a revoked partition can still finish what it started; that
// context is cancelled when the drain times out.
func (p *partition) run(genCtx context.Context) {
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

	commitDone := make(chan struct{})
	go p.commitLoop(genCtx, commitDone)

	for {
		m, err := r.FetchMessage(genCtx)
		if err != nil {
			if genCtx.Err() != nil {
				break
			}
			log.Warn("fetch", "err", err)
			if !sleep(genCtx, 200*time.Millisecond) {
				break
			}
			continue
		}
		if p.admit(genCtx, workCtx, m) != nil {
			break // not dispatched, so not tracked: it is redelivered
		}
		p.c.consumed()
	}
	closeReader(r)

	// Drain: let in-flight work finish, bounded, then hand back the rest.
	drained := p.drained()
	select {
	case <-drained:
	case <-time.After(p.c.opts.ShutdownTimeout):
		log.Warn("drain timed out; handing back in-flight intents", "in_flight", p.tracker.inFlight())
		cancelWork()
		<-drained
	}
	<-commitDone
	p.commit(log) // final commit after the drain
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
