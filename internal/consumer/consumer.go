// Package consumer is the termination job: it reads intents from the request
// topic with a kafka-go consumer group, claims each contract in the dedupe
// store, calls WeChat Pay through a Terminator, publishes the result event and
// commits the intent's offset only after Kafka acknowledged the result.
//
// Partitions run concurrently; within a partition, messages of different keys
// run concurrently, with up to Options.MaxInFlight WeChat Pay calls in
// flight, while one key stays in order, and each partition commits up to its
// lowest unfinished offset.
//
// One file per stage: the path of one message starts at handle (intake.go)
// and reads top to bottom through claim.go, call.go and publish.go;
// docs/development.md lists every file.
package consumer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
)

// Consumer runs the job. Create it with New, run it with Run; Ready and Stats
// are safe to call from other goroutines.
type Consumer struct {
	opts     Options
	instance string // prefix of this process's dedupe owner tokens
	seq      atomic.Uint64
	pub      *publisher
	client   *kafka.Client // heartbeats while draining, LeaveGroup
	gates    *gates
	stats    Stats

	merchants map[string]*merchant
	apis      map[event.API]bool

	joined   atomic.Bool // a generation is running
	leaving  atomic.Bool // Run is leaving the group
	storeErr atomic.Pointer[error]
	faults   outputFaults // publish.go: topics whose refusals hold a partition
}

// New checks opts and builds a Consumer. The caller owns opts.Store's client.
func New(opts Options) (*Consumer, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	transport := opts.Transport
	if transport == nil {
		transport = kafka.DefaultTransport
	}
	gs := newGates(opts.SystemicProbeInterval, opts.Now, opts.Metrics, opts.Logger)
	merchants := make(map[string]*merchant, len(opts.Merchants))
	for id, m := range opts.Merchants {
		merchants[id] = newMerchant(id, m, newLimiter(opts.RateLimit, opts.Now), gs, opts.Metrics)
	}
	apis := make(map[event.API]bool)
	for _, a := range opts.APIs {
		apis[a] = true
	}
	return &Consumer{
		opts:      opts,
		merchants: merchants,
		apis:      apis,
		instance:  hex.EncodeToString(id[:]),
		gates:     gs,
		pub:       newPublisher(opts.Brokers, transport, 10*time.Second),
		client:    &kafka.Client{Addr: kafka.TCP(opts.Brokers...), Transport: transport, Timeout: 10 * time.Second},
		faults:    outputFaults{gauge: opts.Metrics.OutputFault},
	}, nil
}

// Stats returns the live counters.
func (c *Consumer) Stats() *Stats { return &c.stats }

// Ready reports why the consumer cannot make progress, or nil: it has not
// joined the group, the dedupe store is unreachable, or a systemic WeChat Pay
// fault holds all calls.
func (c *Consumer) Ready() error {
	if err := c.gates.err(); err != nil {
		return fmt.Errorf("wechat pay calls held by a systemic fault: %w", err)
	}
	if err := c.faults.err(); err != nil {
		return err
	}
	if p := c.storeErr.Load(); p != nil {
		return fmt.Errorf("dedupe store unreachable: %w", *p)
	}
	if !c.joined.Load() {
		return errors.New("not in a consumer group generation")
	}
	return nil
}

// Run consumes until ctx is done, then stops fetching, finishes or hands back
// in-flight work within Options.ShutdownTimeout, commits every partition and
// leaves the group; it returns only then. The member stays in the group
// while it drains: the generation is held open (kafka-go heartbeats while it
// runs) and, should it end meanwhile because another member joined,
// keepAlive heartbeats until the final commits are made.
func (c *Consumer) Run(ctx context.Context) error {
	log := c.opts.Logger
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                c.opts.GroupID,
		Brokers:           c.opts.Brokers,
		Dialer:            c.opts.Dialer,
		Topics:            c.topics(), // notification.go
		StartOffset:       kafka.FirstOffset,
		SessionTimeout:    c.opts.SessionTimeout,
		HeartbeatInterval: c.opts.HeartbeatInterval,
		// The coordinator waits this long for a draining member to rejoin;
		// until then it accepts the member's heartbeats and commits.
		RebalanceTimeout: c.opts.ShutdownTimeout + 5*time.Second,
		JoinGroupBackoff: time.Second,
		Logger:           kafka.LoggerFunc(func(string, ...any) {}),
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			level := slog.LevelWarn
			if c.leaving.Load() {
				level = slog.LevelDebug // kafka-go's rejoin after our LeaveGroup fails by design
			}
			log.Log(context.Background(), level, "kafka group", "detail", fmt.Sprintf(msg, args...))
		}),
	})
	if err != nil {
		return fmt.Errorf("consumer: join group %s: %w", c.opts.GroupID, err)
	}
	var last *generation
	for {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				break
			}
			log.Warn("consumer group: next generation", "err", err)
			if !sleep(ctx, time.Second) {
				break
			}
			continue
		}
		c.joined.Store(true)
		last = c.startGeneration(ctx, gen)
	}
	c.joined.Store(false)
	c.leave(group, last)
	return nil
}

// owner returns a dedupe owner token unique to one claim.
func (c *Consumer) owner() string {
	return fmt.Sprintf("%s-%d", c.instance, c.seq.Add(1))
}

// sleep waits d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
