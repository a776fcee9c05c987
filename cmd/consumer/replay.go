package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/wxterm/wxterm/internal/consumer"
	"github.com/wxterm/wxterm/internal/offsetrange"
)

// replayRange parses the -replay-from/-to or -replay-offsets flags.
func (r replayConfig) replayRange() (consumer.ReplayRange, error) {
	var out consumer.ReplayRange
	if r.offsets != "" {
		if r.from != "" || r.to != "" {
			return out, errors.New("-replay-offsets excludes -replay-from and -replay-to")
		}
		var err error
		if out.Offsets, err = offsetrange.Parse(r.offsets); err != nil {
			return out, fmt.Errorf("-replay-offsets: %w", err)
		}
		return out, nil
	}
	if r.from == "" {
		return out, errors.New("-replay needs -replay-from (RFC 3339) or -replay-offsets")
	}
	var err error
	out.From, out.To, err = offsetrange.Window(r.from, r.to, "-replay-from", "-replay-to")
	return out, err
}

// runReplay reprocesses the chosen range outside the consumer group and
// reports what it found; with -replay-dry-run it only counts.
func runReplay(ctx context.Context, c *config, cons *consumer.Consumer, stdout io.Writer) error {
	rng, err := c.replay.replayRange()
	if err != nil {
		return err
	}
	ranges, err := cons.ResolveRange(ctx, rng)
	if err != nil {
		return err
	}
	var total int64
	fmt.Fprintf(stdout, "replay of %s:\n", c.opts.RequestTopic)
	for _, r := range ranges {
		fmt.Fprintf(stdout, "  partition %-3d offsets %d-%d  %d messages\n", r.Partition, r.Start, r.End, r.Messages())
		total += r.Messages()
	}
	fmt.Fprintf(stdout, "  total %d messages\n", total)
	if c.replay.dryRun {
		return nil
	}
	start := time.Now()
	report := func(p consumer.ReplayProgress) {
		pct := 100.0
		if p.Total > 0 {
			pct = float64(p.Read) * 100 / float64(p.Total)
		}
		state := "replaying"
		if p.Done {
			state = "replayed"
		}
		fmt.Fprintf(stdout, "%s %d/%d (%.0f%%): %d already answered (%d re-emitted, %d not re-emitted: nothing answers them, see the log), %d processed; %.1fs\n",
			state, p.Read, p.Total, pct, p.Answered, p.Reemitted, p.Skipped, p.Processed, time.Since(start).Seconds())
	}
	sctx, cancel := signalContext(ctx)
	defer cancel()
	_, err = cons.Replay(sctx, ranges, consumer.ReplayOptions{Range: rng, Reemit: c.replay.reemit, Progress: report})
	return err
}
