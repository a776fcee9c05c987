package consumer

import (
	"context"
	"strconv"
	"sync"

	"github.com/segmentio/kafka-go"
)

// lanes runs the messages of one partition: messages of different keys
// concurrently, those of one key in order, at most cap(slots) at once. A
// live partition and a replay both feed their messages through lanes.
type lanes struct {
	c       *Consumer
	tracker *tracker
	slots   chan struct{} // one per message being worked on
	calls   semaphore     // one per WeChat Pay call in flight

	jobs chan lane // lanes to start, served by one worker per slot

	mu     sync.Mutex
	queued map[string][]kafka.Message // per key: queued behind the running one
	wg     sync.WaitGroup             // running lanes
}

// lane is the messages of one key in one partition, run in order.
type lane struct {
	ctx context.Context
	key string
	m   kafka.Message // the first; later ones queue in lanes.queued
}

// IntentsPerPartition is how many messages of a partition are worked on at
// once for maxInFlight WeChat Pay requests on the wire: a quarter more, so
// that while some intents are claimed, stored and published others keep
// every request slot busy.
func IntentsPerPartition(maxInFlight int) int { return maxInFlight + maxInFlight/4 + 1 }

func (c *Consumer) newLanes() *lanes {
	n := IntentsPerPartition(c.opts.MaxInFlight)
	return &lanes{
		c: c, tracker: newTracker(), slots: make(chan struct{}, n), calls: make(semaphore, c.opts.MaxInFlight),
		jobs: make(chan lane, n), queued: make(map[string][]kafka.Message),
	}
}

// startWorkers starts the goroutines that run lanes; stop ends them once
// every lane is done. Long-lived workers keep their grown stacks: a
// goroutine per intent would grow a fresh stack through the TLS, HTTP and
// RSA call chain every time.
func (l *lanes) startWorkers() (stop func()) {
	var wg sync.WaitGroup
	for range cap(l.slots) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ln := range l.jobs {
				l.run(ln)
			}
		}()
	}
	return func() {
		l.wg.Wait()
		close(l.jobs)
		wg.Wait()
	}
}

// admit waits for a free slot and starts m under ctx; it returns ctx's error
// if admitCtx ends first (m is then not tracked, so it is redelivered).
func (l *lanes) admit(admitCtx, ctx context.Context, m kafka.Message) error {
	select {
	case l.slots <- struct{}{}:
	case <-admitCtx.Done():
		return admitCtx.Err()
	}
	if err := admitCtx.Err(); err != nil {
		<-l.slots
		return err
	}
	l.c.opts.Metrics.InFlight.Inc()
	l.tracker.add(m.Offset)
	l.dispatch(ctx, m)
	return nil
}

// dispatch starts m at once unless a message of the same key is running, in
// which case m queues behind it: one key stays in order.
func (l *lanes) dispatch(ctx context.Context, m kafka.Message) {
	key := string(m.Key)
	if key == "" {
		// Keyless messages (always invalid: the key is out_contract_code) must
		// not queue behind each other.
		key = "\x00" + strconv.FormatInt(m.Offset, 10)
	}
	l.mu.Lock()
	if q, running := l.queued[key]; running {
		l.queued[key] = append(q, m)
		l.mu.Unlock()
		return
	}
	l.queued[key] = nil
	l.mu.Unlock()
	l.wg.Add(1)
	// Never blocks: a lane holds at least one slot, and jobs has room for
	// as many lanes as there are slots.
	l.jobs <- lane{ctx: ctx, key: key, m: m}
}

// run handles a lane's first message, then whatever queued behind it for
// the same key.
func (l *lanes) run(ln lane) {
	ctx, key, m := ln.ctx, ln.key, ln.m
	defer l.wg.Done()
	for {
		if l.c.handle(ctx, m, l.calls) {
			l.tracker.done(m.Offset)
		}
		l.c.opts.Metrics.InFlight.Dec()
		<-l.slots
		l.mu.Lock()
		q := l.queued[key]
		if len(q) == 0 || ctx.Err() != nil {
			// On cancellation the queued messages stay unfinished (and so
			// uncommitted): their slots are freed, they are redelivered later.
			for range q {
				l.c.opts.Metrics.InFlight.Dec()
				<-l.slots
			}
			delete(l.queued, key)
			l.mu.Unlock()
			return
		}
		m, l.queued[key] = q[0], q[1:]
		l.mu.Unlock()
	}
}

// drained returns a channel closed once every lane is done.
func (l *lanes) drained() <-chan struct{} {
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	return done
}
