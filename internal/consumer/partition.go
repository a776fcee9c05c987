package consumer

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/internal/wxapi"
)

// partition works through one assigned partition for one generation.
type partition struct {
	c       *Consumer
	gen     *kafka.Generation
	topic   string
	id      int
	start   int64
	tracker *tracker
	slots   chan struct{} // one per message being worked on
	calls   chan struct{} // one per WeChat Pay request on the wire (wxapi.WithCallSlots)

	reader *kafka.Reader

	jobs chan lane // lanes to start, served by one worker per slot

	commitMu *sync.Mutex // shared by a generation's partitions; nil: not shared

	mu        sync.Mutex
	lanes     map[string][]kafka.Message // per key: queued behind the running one
	wg        sync.WaitGroup             // running lanes
	committed int64
}

// lane is the messages of one key in one partition, run in order.
type lane struct {
	ctx context.Context
	key string
	m   kafka.Message // the first; later ones queue in partition.lanes
}

// IntentsPerPartition is how many messages of a partition are worked on at
// once for maxInFlight WeChat Pay requests on the wire: a quarter more, so
// that while some intents are claimed, stored and published others keep
// every request slot busy.
func IntentsPerPartition(maxInFlight int) int { return maxInFlight + maxInFlight/4 + 1 }

func (c *Consumer) newPartition(gen *kafka.Generation, id int, start int64) *partition {
	n := IntentsPerPartition(c.opts.MaxInFlight)
	return &partition{
		c: c, gen: gen, topic: c.opts.RequestTopic, id: id, start: start,
		tracker: newTracker(), slots: make(chan struct{}, n), calls: make(chan struct{}, c.opts.MaxInFlight),
		jobs:  make(chan lane, n),
		lanes: make(map[string][]kafka.Message), committed: -1,
	}
}

// startWorkers starts the goroutines that run lanes; stop ends them once
// every lane is done. Long-lived workers keep their grown stacks: a
// goroutine per intent would grow a fresh stack through the TLS, HTTP and
// RSA call chain every time.
func (p *partition) startWorkers() (stop func()) {
	var wg sync.WaitGroup
	for range cap(p.slots) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l := range p.jobs {
				p.run1(l)
			}
		}()
	}
	return func() {
		p.wg.Wait()
		close(p.jobs)
		wg.Wait()
	}
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
	workCtx = wxapi.WithCallSlots(workCtx, p.calls)
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
		select {
		case p.slots <- struct{}{}:
		case <-genCtx.Done():
		}
		if genCtx.Err() != nil {
			break // not dispatched, so not tracked: it is redelivered
		}
		p.c.stats.Consumed.Add(1)
		p.c.opts.Metrics.Consumed.Inc()
		p.c.opts.Metrics.InFlight.Inc()
		p.tracker.add(m.Offset)
		p.dispatch(workCtx, m)
	}
	closeReader(r)

	// Drain: let in-flight work finish, bounded, then hand back the rest.
	drained := make(chan struct{})
	go func() { p.wg.Wait(); close(drained) }()
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

// dispatch starts m at once unless a message of the same key is running, in
// which case m queues behind it: one key stays in order.
func (p *partition) dispatch(ctx context.Context, m kafka.Message) {
	key := string(m.Key)
	if key == "" {
		// Keyless messages (always invalid: the key is out_contract_code) must
		// not queue behind each other.
		key = "\x00" + strconv.FormatInt(m.Offset, 10)
	}
	p.mu.Lock()
	if q, running := p.lanes[key]; running {
		p.lanes[key] = append(q, m)
		p.mu.Unlock()
		return
	}
	p.lanes[key] = nil
	p.mu.Unlock()
	p.wg.Add(1)
	// Never blocks: a lane holds at least one slot, and jobs has room for
	// as many lanes as there are slots.
	p.jobs <- lane{ctx: ctx, key: key, m: m}
}

// run1 processes a lane's first message, then whatever queued behind it for
// the same key.
func (p *partition) run1(l lane) {
	ctx, key, m := l.ctx, l.key, l.m
	defer p.wg.Done()
	for {
		if p.c.handle(ctx, m) {
			p.tracker.done(m.Offset)
		}
		p.c.opts.Metrics.InFlight.Dec()
		<-p.slots
		p.mu.Lock()
		q := p.lanes[key]
		if len(q) == 0 || ctx.Err() != nil {
			// On cancellation the queued messages stay unfinished (and so
			// uncommitted): their slots are freed, they are redelivered later.
			for range q {
				p.c.opts.Metrics.InFlight.Dec()
				<-p.slots
			}
			delete(p.lanes, key)
			p.mu.Unlock()
			return
		}
		m, p.lanes[key] = q[0], q[1:]
		p.mu.Unlock()
	}
}

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

// commit commits the lowest unfinished offset if it moved.
func (p *partition) commit(log interface {
	Warn(string, ...any)
}) {
	off, ok := p.tracker.committable()
	if !ok || off <= p.committed || p.gen == nil { // a replay commits nothing
		return
	}
	if p.commitMu != nil {
		p.commitMu.Lock()
		defer p.commitMu.Unlock()
	}
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
