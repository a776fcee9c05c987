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
	"strings"
	"syscall"
	"time"

	"github.com/oklog/run"
	"github.com/redis/go-redis/v9"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/wxterm/wxterm/internal/consumer"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/wxapi"
)

func main() {
	if err := runMain(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "consumer:", err)
		}
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
	logOut := stderr
	if c.demo {
		c.logLevel = "warn" // the demo prints results to stdout; keep stderr for trouble
	}
	log, err := newLogger(c, logOut)
	if err != nil {
		return err
	}

	var g run.Group
	var rdb redis.UniversalClient
	var emb *embedded
	if c.embedded {
		emb, err = startEmbedded(c, log)
		if err != nil {
			return err
		}
		defer emb.close()
		rdb = emb.rdb
		c.opts.Merchants = map[string]consumer.Terminator{emb.mchID: emb.client}
		c.opts.DefaultMerchant = emb.mchID
		fmt.Fprintf(stdout, "embedded Kafka on %s, Redis on %s, WeChat Pay simulator on %s\n", c.brokers, emb.redisAddr, emb.simURL)
	} else {
		rdb = redis.NewUniversalClient(&redis.UniversalOptions{
			Addrs: strings.Split(c.redisAddrs, ","), Username: c.redisUser, Password: c.redisPwd, DB: c.redisDB,
			ContextTimeoutEnabled: true,
		})
		defer rdb.Close()
		client, err := merchantClient(c)
		if err != nil {
			return err
		}
		c.opts.Merchants = map[string]consumer.Terminator{c.mchID: client}
		c.opts.DefaultMerchant = c.mchID
	}

	store := dedupe.New(rdb, dedupe.Options{Prefix: c.dedupePrefix, TTL: c.dedupeTTL, Lease: c.lease})
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = store.Load(lctx)
	cancel()
	if err != nil {
		return fmt.Errorf("redis %s: %w", c.redisAddrs, err)
	}
	c.opts.Brokers = strings.Split(c.brokers, ",")
	c.opts.GroupID, c.opts.RequestTopic, c.opts.ResultTopic, c.opts.DLQTopic = c.group, c.requests, c.results, c.dlq
	c.opts.Store = store
	c.opts.Logger = log
	cons, err := consumer.New(c.opts)
	if err != nil {
		return err
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
	srv := &http.Server{Handler: healthHandler(cons), ReadHeaderTimeout: 5 * time.Second}
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
	var sig run.SignalError
	if errors.As(err, &sig) {
		log.Info("stopped", "signal", sig.Signal.String())
		return nil
	}
	return err
}

func merchantClient(c *config) (*wxapi.Client, error) {
	if c.mchID == "" || c.keyFile == "" || c.pubKeyFile == "" || c.certSerial == "" || c.pubKeyID == "" {
		return nil, errors.New("WeChat Pay merchant settings missing: set -mchid, -mch-cert-serial, -mch-private-key-file, -wechatpay-public-key-id and -wechatpay-public-key-file (or run with -embedded)")
	}
	key, err := utils.LoadPrivateKeyWithPath(c.keyFile)
	if err != nil {
		return nil, fmt.Errorf("-mch-private-key-file: cannot load a private key from %s", c.keyFile) // never echo the key
	}
	pub, err := utils.LoadPublicKeyWithPath(c.pubKeyFile)
	if err != nil {
		return nil, fmt.Errorf("-wechatpay-public-key-file: cannot load a public key from %s", c.pubKeyFile)
	}
	return wxapi.New(wxapi.Config{
		MchID: c.mchID, CertSerial: c.certSerial, PrivateKey: key, PublicKeyID: c.pubKeyID, PublicKey: pub,
		BaseURL: c.baseURL, BackupURL: c.backupURL, GlobalBaseURL: c.globalURL, Timeout: c.wxTimeout,
	})
}

func healthHandler(cons *consumer.Consumer) http.Handler {
	mux := http.NewServeMux()
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
