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
	"github.com/peterbourgon/ff/v3"
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

// config is every setting; each is a flag, and WXTERM_<FLAG_NAME> fills it
// from the environment.
type config struct {
	brokers                         string
	group, requests, results, dlq   string
	redisAddrs, redisUser, redisPwd string
	redisDB                         int
	dedupePrefix                    string
	dedupeTTL, lease                time.Duration
	opts                            consumer.Options
	mchID, certSerial, keyFile      string
	pubKeyID, pubKeyFile            string
	baseURL, backupURL, globalURL   string
	wxTimeout                       time.Duration
	httpAddr                        string
	logLevel, logFormat             string
	embedded, demo, keepRunning     bool
	kafkaPort                       int
}

func parse(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("consumer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{}
	fs.StringVar(&c.brokers, "brokers", "127.0.0.1:9092", "Kafka bootstrap brokers, comma-separated")
	fs.StringVar(&c.group, "group", "contract-terminator", "Kafka consumer group")
	fs.StringVar(&c.requests, "request-topic", "contract-termination.requested", "topic of termination intents")
	fs.StringVar(&c.results, "result-topic", "contract-termination.results", "topic of result events")
	fs.StringVar(&c.dlq, "dlq-topic", "contract-termination.dlq", "dead-letter topic for undecodable intents")
	fs.IntVar(&c.opts.MaxInFlight, "max-in-flight", 64, "intents worked on at once per partition (bounds memory)")
	fs.DurationVar(&c.opts.CommitInterval, "commit-interval", 200*time.Millisecond, "how often finished offsets are committed")
	fs.DurationVar(&c.opts.ShutdownTimeout, "shutdown-timeout", 20*time.Second, "how long a stop or revocation waits for in-flight intents")
	fs.DurationVar(&c.opts.SessionTimeout, "session-timeout", 10*time.Second, "consumer group session timeout")
	fs.DurationVar(&c.opts.HeartbeatInterval, "heartbeat-interval", 3*time.Second, "consumer group heartbeat interval")
	fs.DurationVar(&c.opts.Retry.Initial, "retry-initial", 200*time.Millisecond, "first backoff after a transient WeChat Pay failure")
	fs.DurationVar(&c.opts.Retry.Max, "retry-max", 10*time.Second, "longest backoff between attempts")
	fs.DurationVar(&c.opts.Retry.MaxElapsed, "retry-max-elapsed", 2*time.Minute, "retry budget; then the intent fails with reason=retries_exhausted")
	fs.Float64Var(&c.opts.Retry.Multiplier, "retry-multiplier", 2, "backoff growth factor")
	fs.Float64Var(&c.opts.Retry.Jitter, "retry-jitter", 0.5, "backoff randomization factor, 0..1")
	fs.DurationVar(&c.opts.SystemicProbeInterval, "systemic-probe-interval", 5*time.Second, "while a systemic fault holds calls, how often one is tried")
	fs.StringVar(&c.redisAddrs, "redis-addrs", "127.0.0.1:6379", "Redis address; several (comma-separated) mean a Redis Cluster")
	fs.StringVar(&c.redisUser, "redis-username", "", "Redis ACL user")
	fs.StringVar(&c.redisPwd, "redis-password", "", "Redis password (prefer the environment variable)")
	fs.IntVar(&c.redisDB, "redis-db", 0, "Redis database (not with a Cluster)")
	fs.StringVar(&c.dedupePrefix, "dedupe-prefix", "wxterm:contract:", "key prefix of the dedupe records")
	fs.DurationVar(&c.dedupeTTL, "dedupe-ttl", 30*24*time.Hour, "how long a dedupe record lives; keep it at least the request topic's retention")
	fs.DurationVar(&c.lease, "lease", 30*time.Second, "how long a claim on a contract stays exclusive without renewal")
	fs.StringVar(&c.mchID, "mchid", "", "merchant id (商户号)")
	fs.StringVar(&c.certSerial, "mch-cert-serial", "", "merchant API certificate serial number")
	fs.StringVar(&c.keyFile, "mch-private-key-file", "", "PEM file of the merchant API private key")
	fs.StringVar(&c.pubKeyID, "wechatpay-public-key-id", "", "WeChat Pay public key id (PUB_KEY_ID_…)")
	fs.StringVar(&c.pubKeyFile, "wechatpay-public-key-file", "", "PEM file of the WeChat Pay public key")
	fs.StringVar(&c.baseURL, "wechatpay-base-url", wxapi.DefaultBaseURL, "WeChat Pay main domain")
	fs.StringVar(&c.backupURL, "wechatpay-backup-url", wxapi.DefaultBackupURL, "WeChat Pay backup domain, tried on network failures")
	fs.StringVar(&c.globalURL, "wechatpay-global-url", wxapi.DefaultGlobalBaseURL, "WeChat Pay cross-border domain (global_papay)")
	fs.DurationVar(&c.wxTimeout, "wechatpay-timeout", wxapi.DefaultTimeout, "timeout of one WeChat Pay HTTP call")
	fs.StringVar(&c.httpAddr, "http-addr", ":8080", "address of /healthz and /readyz")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "json", "json or text")
	fs.BoolVar(&c.embedded, "embedded", false, "run on in-process Kafka, Redis and WeChat Pay simulator (ignores their flags)")
	fs.BoolVar(&c.demo, "demo", false, "embedded, publish the example intents, print each result, exit when all are answered")
	fs.BoolVar(&c.keepRunning, "keep-running", false, "with -demo: keep running after the examples so more can be published with the producer")
	fs.IntVar(&c.kafkaPort, "embedded-kafka-port", 9092, "port of the embedded Kafka on 127.0.0.1 (0: any)")
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix("WXTERM")); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if c.demo {
		c.embedded = true
	}
	return c, nil
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
