package dedupe

import (
	"context"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/wxterm/wxterm/internal/batch"
)

// batcher sends the scripts that concurrent callers run as pipelines: while
// the pipelines in flight (up to pipelinesInFlight) are on the wire the next
// calls wait and then leave together.
// A lone call leaves at once; under load one round trip (one write and one
// read system call on each side) serves many intents. Calls on one contract
// never overlap (each waits for its answer before the next), so sharing a
// pipeline does not reorder them.
type batcher struct {
	rdb   redis.UniversalClient
	queue *batch.Queue[*batchCall]
	trips atomic.Int64 // round trips (pipelines and lone calls) sent
}

type batchCall struct {
	sc   *redis.Script
	keys []string
	args []any
	cmd  *redis.Cmd
	done chan struct{}
}

const (
	// maxPipeline bounds the commands of one pipeline.
	maxPipeline = 256
	// pipelinesInFlight: more than one, so that a pipeline stuck on one
	// slow or unreachable node (a Cluster shard, a connection that went
	// silent) does not hold up every other call until it times out.
	pipelinesInFlight = 4
)

func newBatcher(rdb redis.UniversalClient) *batcher {
	b := &batcher{rdb: rdb}
	b.queue = batch.New(pipelinesInFlight, b.exec, func(w []*batchCall) int { return min(len(w), maxPipeline) })
	return b
}

// run runs sc like Script.Run, in the next pipeline.
func (b *batcher) run(ctx context.Context, sc *redis.Script, keys []string, args ...any) *redis.Cmd {
	c := &batchCall{sc: sc, keys: keys, args: args, done: make(chan struct{})}
	b.queue.Add(c)
	select {
	case <-c.done:
		return c.cmd
	case <-ctx.Done():
		// The script may still run; every script is safe to repeat or to
		// find refused, and the caller retries or gives up as for a timeout.
		cmd := redis.NewCmd(ctx)
		cmd.SetErr(ctx.Err())
		return cmd
	}
}

// exec sends batch as one pipeline of EVALSHA. The client's own timeouts
// bound it: it serves many callers, so no caller's context does. A script
// missing from the server's cache (a restart, a failover, SCRIPT FLUSH) is
// then run again alone through Script.Run, whose EVAL fallback go-redis has
// only outside pipelines (redis/go-redis#3228).
func (b *batcher) exec(batch []*batchCall) {
	ctx := context.Background()
	b.trips.Add(1)
	if len(batch) == 1 {
		c := batch[0]
		c.cmd = c.sc.Run(ctx, b.rdb, c.keys, c.args...)
		close(c.done)
		return
	}
	pipe := b.rdb.Pipeline()
	for _, c := range batch {
		c.cmd = pipe.EvalSha(ctx, c.sc.Hash(), c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	for _, c := range batch {
		if redis.HasErrorPrefix(c.cmd.Err(), "NOSCRIPT") {
			c.cmd = c.sc.Run(ctx, b.rdb, c.keys, c.args...)
		}
		close(c.done)
	}
}
