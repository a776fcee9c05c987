package batch

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Every item is sent once, in batches no larger than take allows, and
// concurrent adds share batches.
func TestQueue(t *testing.T) {
	var mu sync.Mutex
	seen := make(map[int]int)
	var batches, largest atomic.Int64
	var open, peak atomic.Int64
	q := New(3, func(b []int) {
		if n := open.Add(1); n > peak.Load() {
			peak.Store(n)
		}
		defer open.Add(-1)
		batches.Add(1)
		if n := int64(len(b)); n > largest.Load() {
			largest.Store(n)
		}
		time.Sleep(time.Millisecond) // a round trip
		mu.Lock()
		for _, v := range b {
			seen[v]++
		}
		mu.Unlock()
	}, func(w []int) int { return min(len(w), 7) })
	const n = 2000
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { q.Add(i) })
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		done := len(seen) == n
		mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range n {
		if seen[i] != 1 {
			t.Errorf("item %d sent %d times; want once", i, seen[i])
		}
	}
	if l := largest.Load(); l > 7 {
		t.Errorf("a batch of %d; want at most 7", l)
	}
	if b := batches.Load(); b >= n {
		t.Errorf("%d items in %d batches; want them shared", n, b)
	}
	if p := peak.Load(); p > 3 {
		t.Errorf("%d batches in flight at once; want at most 3", p)
	}
}

// After the sender has lingered and ended, the next Add starts it again.
func TestQueueRestartsAfterLinger(t *testing.T) {
	got := make(chan int, 2)
	q := New(1, func(b []int) {
		for _, v := range b {
			got <- v
		}
	}, nil)
	q.Add(1)
	if v := <-got; v != 1 {
		t.Fatalf("got %d; want 1", v)
	}
	time.Sleep(linger + 200*time.Millisecond)
	q.mu.Lock()
	running := q.running
	q.mu.Unlock()
	if running != 0 {
		t.Errorf("sender still running %v after the queue emptied; want it ended", linger+200*time.Millisecond)
	}
	q.Add(2)
	select {
	case v := <-got:
		if v != 2 {
			t.Fatalf("got %d; want 2", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("item added after the sender ended was never sent")
	}
}
