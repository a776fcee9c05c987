package consumer

import "sync"

// tracker follows the offsets of one partition that are in flight, so the
// consumer commits only up to the lowest unfinished one: messages finish out
// of order (different keys run concurrently), but a commit covers every lower
// offset of the partition. Safe for concurrent use.
type tracker struct {
	mu      sync.Mutex
	pending map[int64]struct{} // fetched, not finished
	next    int64              // one past the highest offset fetched; -1 before the first
}

func newTracker() *tracker {
	return &tracker{pending: make(map[int64]struct{}), next: -1}
}

// add records a fetched offset. Offsets arrive in increasing order.
func (t *tracker) add(off int64) {
	t.mu.Lock()
	t.pending[off] = struct{}{}
	t.next = off + 1
	t.mu.Unlock()
}

// done records that off is finished: its result is durable in Kafka.
func (t *tracker) done(off int64) {
	t.mu.Lock()
	delete(t.pending, off)
	t.mu.Unlock()
}

// committable is the offset to commit (the next one to read after a restart):
// the lowest pending offset, or one past the highest fetched when nothing is
// pending. ok is false before anything was fetched.
func (t *tracker) committable() (off int64, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.next < 0 {
		return 0, false
	}
	off = t.next
	// The map holds at most a partition's slots' worth of entries, so a scan is cheaper than
	// keeping a heap in step with out-of-order completions.
	for p := range t.pending {
		if p < off {
			off = p
		}
	}
	return off, true
}

// inFlight is how many fetched offsets are not finished.
func (t *tracker) inFlight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

// fetched is one past the highest offset fetched; ok is false before any.
func (t *tracker) fetched() (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.next, t.next >= 0
}
