package consumer

import (
	"testing"
	"time"
)

func TestLimiterBacksOffAndRecovers(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLimiter(100, func() time.Time { return now })
	steps := []struct {
		do   func()
		want float64
	}{
		{func() {}, 100},
		{l.throttled, 50},
		{l.throttled, 50}, // within a second: the same burst
		{func() { now = now.Add(2 * time.Second); l.throttled() }, 25},
		{func() { now = now.Add(2 * time.Second); l.throttled() }, 12.5},
		{func() { now = now.Add(2 * time.Second); l.throttled() }, 12.5},                       // floor: an eighth
		{func() { now = now.Add(time.Second); l.mu.Lock(); l.recover(); l.mu.Unlock() }, 12.5}, // not yet quiet
		{func() { now = now.Add(5 * time.Second); l.mu.Lock(); l.recover(); l.mu.Unlock() }, 22.5},
	}
	for i, s := range steps {
		s.do()
		if got := l.limit(); got != s.want {
			t.Errorf("step %d: got %v qps; want %v", i, got, s.want)
		}
	}
	for range 20 {
		now = now.Add(5 * time.Second)
		l.mu.Lock()
		l.recover()
		l.mu.Unlock()
	}
	if got := l.limit(); got != 100 {
		t.Errorf("after a quiet minute: got %v qps; want back to 100", got)
	}
	var none *limiter
	if err := none.wait(t.Context()); err != nil || none.limit() != 0 {
		t.Errorf("nil limiter must not wait")
	}
}
