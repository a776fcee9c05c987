package consumer

import (
	"context"

	"github.com/wxterm/wxterm/internal/wxapi"
)

// semaphore bounds the WeChat Pay calls in flight of one partition
// (Options.MaxInFlight): a call holds one place while it runs.
type semaphore chan struct{}

// bound is the middleware that holds one of a partition's call places for
// the length of each call.
func bound(calls semaphore) middleware {
	return func(_ string, next callFunc) callFunc {
		return func(ctx context.Context, r wxapi.Request) (*wxapi.Contract, error) {
			select {
			case calls <- struct{}{}:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			defer func() { <-calls }()
			// The last moment before the call: a work context cancelled
			// meanwhile (a lease no longer confirmed, claim.go) starts none.
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			return next(ctx, r)
		}
	}
}
