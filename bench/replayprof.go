package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/wxterm/wxterm/internal/consumer"
	"github.com/wxterm/wxterm/internal/wxapi"
)

// replayInProcess runs internal/consumer's Replay over all of t's request
// topic inside the bench process, repeat times in a row, under runtime/pprof
// if cpuFile is set. It is for the profiling step only: a replay process
// ends too soon to fetch a profile from it over HTTP. The bench does nothing
// else meanwhile, so the process's CPU time is the replay's. It returns the
// messages read, the wall time and the CPU time of all the runs.
func (e *env) replayInProcess(ctx context.Context, t topics, simURL, cpuFile string, fetchMaxWait time.Duration, repeat int) (read int64, wall, cpu time.Duration, err error) {
	client, err := wxapi.New(e.keys.ClientConfig(simURL))
	if err != nil {
		return 0, 0, 0, err
	}
	// A Consumer's Replay closes its writer: one Consumer per run.
	consumers := make([]*consumer.Consumer, repeat)
	for i := range consumers {
		if consumers[i], err = consumer.New(consumer.Options{
			Brokers: e.brokers, GroupID: t.group, RequestTopic: t.requests, ResultTopic: t.results, DLQTopic: t.dlq,
			FetchMaxWait: fetchMaxWait, Store: e.store, DefaultMerchant: e.keys.MchID,
			Merchants: map[string]consumer.Merchant{e.keys.MchID: {Client: client}},
		}); err != nil {
			return 0, 0, 0, err
		}
	}
	offsets := map[int][2]int64{}
	for p := range t.partitions {
		offsets[p] = [2]int64{0, math.MaxInt32}
	}
	rng := consumer.ReplayRange{Offsets: offsets}
	ranges, err := consumers[0].ResolveRange(ctx, rng)
	if err != nil {
		return 0, 0, 0, err
	}
	if cpuFile != "" {
		f, err := os.Create(cpuFile)
		if err != nil {
			return 0, 0, 0, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 0, 0, 0, err
		}
		defer pprof.StopCPUProfile()
	}
	var r0, r1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	start := time.Now()
	for _, c := range consumers {
		prog, err := c.Replay(ctx, ranges, consumer.ReplayOptions{Range: rng})
		if err != nil {
			return read, time.Since(start), 0, fmt.Errorf("replay: %w", err)
		}
		if prog.Processed != 0 {
			return read, time.Since(start), 0, fmt.Errorf("replay processed %d intents that should have been answered", prog.Processed)
		}
		read += prog.Read
	}
	wall = time.Since(start)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	cpu = tv(r1.Utime) - tv(r0.Utime) + tv(r1.Stime) - tv(r0.Stime)
	return read, wall, cpu, nil
}
