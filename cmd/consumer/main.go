// Command consumer is the contract-termination service: it consumes
// termination intents from Kafka, terminates each contract once through
// WeChat Pay, and publishes the result events.
//
// With -embedded it runs the same job on in-process Kafka, Redis and a WeChat
// Pay simulator; -demo also publishes example intents and exits once each has
// its result.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/wxterm/wxterm/internal/consumer"
	"github.com/wxterm/wxterm/internal/dedupe"
)

func main() {
	if err := runMain(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
}

func newLogger(c *config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	ho := &slog.HandlerOptions{Level: level}
	switch c.logFormat {
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	}
	return nil, fmt.Errorf("-log-format %q: want json or text", c.logFormat)
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
	if c.demo {
		c.logLevel = "warn" // the demo prints results to stdout; keep stderr for trouble
	}
	log, err := newLogger(c, stderr)
	if err != nil {
		return err
	}
	if c.opts.APIs, err = allowedAPIs(c); err != nil {
		return err
	}

	var g run.Group
	var rdb redis.UniversalClient
	var emb *embedded
	if c.embedded {
		if emb, err = startEmbedded(c, log); err != nil {
			return err
		}
		defer emb.close()
		rdb = emb.rdb
		c.redisAddrs = emb.redisAddr
		c.opts.Merchants = map[string]consumer.Merchant{emb.mchID: {Client: emb.client, SubMchIDs: splitList(c.allowedSubMchIDs)}}
		c.opts.DefaultMerchant = emb.mchID
		fmt.Fprintf(stdout, "embedded Kafka on %s, Redis on %s, WeChat Pay simulator on %s\n", c.brokers, emb.redisAddr, emb.simURL)
	} else {
		if c.opts.Dialer, c.opts.Transport, err = kafkaSecurity(c); err != nil {
			return err
		}
		if rdb, err = redisClient(c); err != nil {
			return err
		}
		defer rdb.Close()
		if c.opts.Merchants, c.opts.DefaultMerchant, err = merchants(c); err != nil {
			return err
		}
	}

	store := dedupe.New(rdb, dedupe.Options{Prefix: c.dedupePrefix, TTL: c.dedupeTTL, Lease: c.lease})
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = store.Load(lctx)
	cancel()
	if err != nil {
		return fmt.Errorf("redis %s: %w", c.redisAddrs, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	c.opts.Brokers = strings.Split(c.brokers, ",")
	c.opts.GroupID, c.opts.RequestTopic, c.opts.ResultTopic, c.opts.DLQTopic = c.group, c.requests, c.results, c.dlq
	c.opts.Store = store
	c.opts.Logger = log
	c.opts.Metrics = consumer.NewMetrics(reg)
	cons, err := consumer.New(c.opts)
	if err != nil {
		return err
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wxterm_ready", Help: "1 when /readyz answers ready."},
		func() float64 {
			if cons.Ready() == nil {
				return 1
			}
			return 0
		}))

	if c.replay.enabled {
		return runReplay(ctx, c, cons, stdout)
	}
	if c.demo {
		d := newDemo(c, emb, cons.Stats(), stdout)
		dctx, dcancel := context.WithCancel(ctx)
		g.Add(func() error { return d.run(dctx) }, func(error) { dcancel() })
	}

	cctx, ccancel := context.WithCancel(ctx)
	g.Add(func() error { return cons.Run(cctx) }, func(error) { ccancel() })

	ln, err := net.Listen("tcp", c.httpAddr)
	if err != nil {
		return fmt.Errorf("-http-addr: %w", err)
	}
	srv := &http.Server{Handler: httpHandler(cons, reg), ReadHeaderTimeout: 5 * time.Second}
	g.Add(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, func(error) {
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
	})

	g.Add(run.SignalHandler(ctx, syscall.SIGINT, syscall.SIGTERM))
	log.Info("consumer started", "brokers", c.brokers, "group", c.group, "request_topic", c.requests, "http", ln.Addr().String())
	err = g.Run()
	var sig *run.SignalError
	switch {
	case errors.As(err, &sig):
		log.Info("stopped", "signal", sig.Signal.String())
		return nil
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return nil // stopped by the caller
	}
	return err
}

func httpHandler(cons *consumer.Consumer, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := cons.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// signalContext is ctx cancelled on SIGINT or SIGTERM.
func signalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
}
