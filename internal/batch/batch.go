// Package batch turns calls from concurrent goroutines into batches with no
// linger: while the batches in flight are being sent, what arrives waits
// and leaves in the next. A lone item is sent at once; under load each send
// carries many.
package batch

import (
	"sync"
	"time"
)

// Queue hands the items added to it to its send function, in batches,
// from at most a set number of goroutines at once. A sending goroutine
// stays a while after the queue empties, so that a steady flow keeps its
// goroutines, and their grown stacks, rather than starting one per burst.
type Queue[T any] struct {
	send    func([]T)     // sends a batch; the items' owners learn the outcome through them
	take    func([]T) int // how many of the waiting items (at least one) the next batch takes
	senders int           // batches in flight at most

	mu      sync.Mutex
	waiting []T
	running int // sending goroutines
	idle    int // of them, waiting for items
	kick    chan struct{}
}

// linger is how long the sending goroutine waits for more before it ends.
const linger = time.Second

// New returns a Queue that sends with send, up to senders batches at once
// (at least one), taking batches of take(waiting) items; a nil take takes
// every waiting item.
func New[T any](senders int, send func([]T), take func([]T) int) *Queue[T] {
	if take == nil {
		take = func(w []T) int { return len(w) }
	}
	return &Queue[T]{send: send, take: take, senders: max(senders, 1), kick: make(chan struct{}, 1)}
}

// Add queues v for the next batch. It starts a sender if none is idle and
// fewer than the limit are sending; otherwise a sender takes v when it is
// free.
func (q *Queue[T]) Add(v T) {
	q.mu.Lock()
	q.waiting = append(q.waiting, v)
	start := q.idle == 0 && q.running < q.senders
	if start {
		q.running++
	}
	q.mu.Unlock()
	if start {
		go q.loop()
		return
	}
	select {
	case q.kick <- struct{}{}:
	default: // a kick is pending already
	}
}

func (q *Queue[T]) loop() {
	idle := time.NewTimer(linger)
	defer idle.Stop()
	for {
		q.mu.Lock()
		if len(q.waiting) == 0 {
			q.idle++
			q.mu.Unlock()
			idle.Reset(linger)
			select {
			case <-q.kick:
				q.mu.Lock()
				q.idle--
				q.mu.Unlock()
				continue
			case <-idle.C:
				q.mu.Lock()
				q.idle--
				if len(q.waiting) == 0 {
					q.running--
					q.mu.Unlock()
					return
				}
				q.mu.Unlock()
				continue
			}
		}
		n := min(max(q.take(q.waiting), 1), len(q.waiting))
		batch := q.waiting[:n:n]
		q.waiting = q.waiting[n:]
		if len(q.waiting) == 0 {
			q.waiting = nil // let the backing array go
		}
		q.mu.Unlock()
		q.send(batch)
	}
}
