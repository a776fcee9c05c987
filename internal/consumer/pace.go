package consumer

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/wxterm/wxterm/internal/wxapi"
)

// limiter paces one merchant's calls to WeChat Pay. It runs at the configured
// rate until WeChat answers FREQUENCY_LIMITED, then halves (down to an
// eighth), and climbs back by a tenth per quiet cooldown: WeChat's limits
// are not published per merchant, so the consumer finds them. Safe for
// concurrent use; a nil *limiter never waits.
type limiter struct {
	base     rate.Limit
	cooldown time.Duration
	now      func() time.Time

	mu        sync.Mutex
	lim       *rate.Limiter
	lastThrot time.Time
	lastRaise time.Time
}

func newLimiter(qps float64, now func() time.Time) *limiter {
	if qps <= 0 {
		return nil
	}
	burst := max(1, int(qps/10)) // a tenth of a second's worth: smooth, not bursty
	return &limiter{base: rate.Limit(qps), cooldown: 5 * time.Second, now: now, lim: rate.NewLimiter(rate.Limit(qps), burst)}
}

// wait blocks until a call may start.
func (l *limiter) wait(ctx context.Context) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	l.recover()
	lim := l.lim
	l.mu.Unlock()
	return lim.Wait(ctx)
}

// throttled slows down after a FREQUENCY_LIMITED answer.
func (l *limiter) throttled() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.lastThrot) < time.Second {
		return // one halving per second: a burst of 429s is one signal
	}
	l.lastThrot, l.lastRaise = now, now
	l.lim.SetLimitAt(now, max(l.lim.Limit()/2, l.base/8))
}

// recover raises the rate by a tenth of the base per quiet cooldown.
func (l *limiter) recover() {
	now := l.now()
	cur := l.lim.Limit()
	if cur >= l.base || now.Sub(l.lastRaise) < l.cooldown {
		return
	}
	l.lastRaise = now
	l.lim.SetLimitAt(now, min(cur+l.base/10, l.base))
}

// limit is the current rate, for tests.
func (l *limiter) limit() float64 {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return float64(l.lim.Limit())
}

// pace is the middleware that paces a merchant's calls with its limiter
// and slows it down when WeChat Pay answers FREQUENCY_LIMITED.
func pace(l *limiter) middleware {
	return func(_ string, next callFunc) callFunc {
		return func(ctx context.Context, r wxapi.Request) (*wxapi.Contract, error) {
			if err := l.wait(ctx); err != nil {
				return nil, err
			}
			ct, err := next(ctx, r)
			if wxapi.IsFrequencyLimited(err) {
				l.throttled()
			}
			return ct, err
		}
	}
}
