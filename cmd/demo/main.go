// Command demo runs the contract-termination job on in-process stand-ins
// (Kafka, Redis and a WeChat Pay simulator), so it needs nothing but Go. It
// publishes example intents, prints each result and exits 0 once every
// promise held (one result per intent, one terminate call per contract).
// The service binary, cmd/consumer, links none of the stand-ins.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/oklog/run"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/cli"
	"github.com/wxterm/wxterm/internal/consumer"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/opshttp"
)

func main() {
	cli.Exit("demo", runMain(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// config is the demo's settings; WXTERM_<FLAG_NAME> fills each from the
// environment, as for the service.
type config struct {
	embedded    bool // the stand-ins and the job only, no examples
	keepRunning bool
	kafkaPort   int
	httpAddr    string // /healthz, /readyz and /metrics, as the service serves them
}

func parse(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&c.embedded, "embedded", false, "only run the job on the stand-ins, without the examples, until stopped")
	fs.BoolVar(&c.keepRunning, "keep-running", false, "keep running after the examples so more can be published with the producer")
	fs.IntVar(&c.kafkaPort, "embedded-kafka-port", 9092, "port of the embedded Kafka on 127.0.0.1 (0: any)")
	fs.StringVar(&c.httpAddr, "http-addr", "127.0.0.1:8080", "address of /healthz, /readyz and /metrics (as the service's -http-addr)")
	if err := cli.Parse(fs, args, "WXTERM"); err != nil {
		return c, err
	}
	return c, nil
}

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parse(args, stderr)
	if err != nil {
		return err
	}
	// The demo prints results to stdout; stderr is kept for trouble.
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := consumer.DefaultOptions()
	opts.NotificationTopic = event.TopicNotifications // cmd/notify's default
	emb, err := startEmbedded(c.kafkaPort, opts, log)
	if err != nil {
		return err
	}
	defer emb.close()
	opts.Brokers = emb.brokers
	opts.Store = dedupe.New(emb.rdb, dedupe.Options{})
	opts.Merchants = map[string]consumer.Merchant{emb.mchID: {Client: emb.client}}
	opts.DefaultMerchant = emb.mchID
	opts.Logger = log
	reg := opshttp.NewRegistry()
	opts.Metrics = consumer.NewMetrics(reg)
	cons, err := consumer.New(opts)
	if err != nil {
		return err
	}
	opshttp.RegisterReady(reg, cons)
	ln, err := net.Listen("tcp", c.httpAddr)
	if err != nil {
		return fmt.Errorf("-http-addr: %w", err)
	}
	fmt.Fprintf(stdout, "embedded Kafka on %s, Redis on %s, WeChat Pay simulator on %s, /healthz /readyz /metrics on http://%s\n",
		strings.Join(emb.brokers, ","), emb.redisAddr, emb.simURL, ln.Addr())

	var g run.Group
	{ // the job
		cctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return cons.Run(cctx) }, func(error) { cancel() })
	}
	{ // /healthz, /readyz and /metrics
		g.Add(opshttp.Actor(ln, opshttp.Handler(cons, reg)))
	}
	if !c.embedded { // the examples: publish, print, verify
		d := &demo{opts: opts, emb: emb, stats: cons.Stats(), keepRunning: c.keepRunning, out: stdout}
		dctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return d.run(dctx) }, func(error) { cancel() })
	}
	{ // SIGINT and SIGTERM
		g.Add(run.SignalHandler(ctx, syscall.SIGINT, syscall.SIGTERM))
	}
	// Stopped by a signal or the caller: a clean end too.
	if err = g.Run(); errors.As(err, new(*run.SignalError)) || (ctx.Err() != nil && errors.Is(err, ctx.Err())) {
		return nil
	}
	return err
}
