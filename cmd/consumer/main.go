// Command consumer is the contract-termination service: it consumes
// termination intents from Kafka, terminates each contract once through
// WeChat Pay, and publishes the result events. The local run on in-process
// stand-ins is cmd/demo.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxterm/wxterm/internal/cli"
	"github.com/wxterm/wxterm/internal/consumer"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/opshttp"
)

func main() {
	cli.Exit("consumer", runMain(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parse(args, stderr)
	if err != nil {
		return err
	}
	if os.Getenv("GOGC") == "" {
		// RSA signing allocates big numbers per call; collecting less often
		// trades a little memory (well inside the limits) for CPU.
		debug.SetGCPercent(200)
	}
	s, err := build(ctx, c, stderr)
	if err != nil {
		return err
	}
	defer s.close()
	if c.replay.enabled {
		return runReplay(ctx, c, s.cons, stdout)
	}
	return s.run(ctx, c.httpAddr)
}

// service is the parts main builds from the configuration.
type service struct {
	log   *slog.Logger
	cons  *consumer.Consumer
	reg   *prometheus.Registry
	close func()
	what  []any // what the start-up log line says
}

// build makes the parts: logger, Kafka security, Redis and the dedupe
// store, the WeChat Pay clients, the metrics and the consumer.
func build(ctx context.Context, c *config, stderr io.Writer) (*service, error) {
	log, err := cli.NewLogger(c.logLevel, c.logFormat, stderr)
	if err != nil {
		return nil, err
	}
	opts := c.opts
	if opts.Dialer, opts.Transport, err = kafkaSecurity(c); err != nil {
		return nil, err
	}
	rdb, err := redisClient(c)
	if err != nil {
		return nil, err
	}
	s := &service{log: log, close: func() { _ = rdb.Close() }}
	if opts.Merchants, opts.DefaultMerchant, err = buildMerchants(c); err != nil {
		s.close()
		return nil, err
	}
	s.close = func() { closeMerchants(opts.Merchants); _ = rdb.Close() }
	store := dedupe.New(rdb, dedupe.Options{Prefix: c.dedupePrefix, TTL: c.dedupeTTL, Lease: c.lease})
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = store.Load(lctx)
	cancel()
	if err != nil {
		s.close()
		return nil, fmt.Errorf("redis %s: %w", c.redis.Addrs, err)
	}
	if err := checkDurability(ctx, c, store, log); err != nil {
		s.close()
		return nil, err
	}
	s.reg = opshttp.NewRegistry()
	opts.Store, opts.Logger, opts.Metrics = store, log, consumer.NewMetrics(s.reg)
	if opts.Tracer, err = startTracing(ctx, s); err != nil { // wiring.go: off unless OTEL_* says so
		s.close()
		return nil, err
	}
	if s.cons, err = consumer.New(opts); err != nil {
		s.close()
		return nil, err
	}
	opshttp.RegisterReady(s.reg, s.cons)
	s.what = []any{"brokers", strings.Join(opts.Brokers, ","), "group", opts.GroupID, "request_topic", opts.RequestTopic}
	return s, nil
}

// run runs the actors until one ends, then stops the others: the consumer,
// the HTTP server of /healthz, /readyz and /metrics, and the signal handler.
func (s *service) run(ctx context.Context, httpAddr string) error {
	var g run.Group
	{ // the consumer: stops fetching, drains, commits and leaves the group
		cctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return s.cons.Run(cctx) }, func(error) { cancel() })
	}
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return fmt.Errorf("-http-addr: %w", err)
	}
	{ // the HTTP server
		g.Add(opshttp.Actor(ln, opshttp.Handler(s.cons, s.reg)))
	}
	{ // SIGINT and SIGTERM
		g.Add(run.SignalHandler(ctx, syscall.SIGINT, syscall.SIGTERM))
	}
	s.log.Info("consumer started", append(s.what, "http", ln.Addr().String())...)
	err = g.Run()
	var sig *run.SignalError
	switch {
	case errors.As(err, &sig):
		s.log.Info("stopped", "signal", sig.Signal.String())
		return nil
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return nil // stopped by the caller
	}
	return err
}

// signalContext is ctx cancelled on SIGINT or SIGTERM.
func signalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
}
