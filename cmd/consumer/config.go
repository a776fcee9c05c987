package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/peterbourgon/ff/v3"

	"github.com/wxterm/wxterm/internal/consumer"
	"github.com/wxterm/wxterm/internal/wxapi"
)

// envPrefix: every flag -some-name is also read from WXTERM_SOME_NAME.
const envPrefix = "WXTERM"

// config is every setting; each is a flag, and WXTERM_<FLAG_NAME> fills it
// from the environment.
type config struct {
	brokers                        string
	group, requests, results, dlq  string
	kafkaTLS                       tlsFiles
	kafkaSASL, kafkaUser, kafkaPwd string

	redisAddrs, redisUser, redisPwd string
	redisDB                         int
	redisTLS                        tlsFiles
	dedupePrefix                    string
	dedupeTTL, lease                time.Duration

	opts consumer.Options

	mchID, certSerial, keyFile    string
	pubKeyID, pubKeyFile          string
	merchantsFile                 string
	allowedAPIs, allowedSubMchIDs string
	baseURL, backupURL, globalURL string
	wxTimeout                     time.Duration

	replay replayConfig

	httpAddr                    string
	logLevel, logFormat         string
	embedded, demo, keepRunning bool
	kafkaPort                   int
}

// tlsFiles configures TLS to a server; enabled with no files means the
// system roots and no client certificate.
type tlsFiles struct {
	enabled                   bool
	caFile, certFile, keyFile string
	serverName                string
}

// replayConfig selects a range of the request topic to reprocess outside
// the consumer group (see replay.go).
type replayConfig struct {
	enabled        bool
	from, to       string // RFC 3339 timestamps
	offsets        string // "partition:start-end,…"
	dryRun, reemit bool
}

// newFlagSet declares every flag into c. The Helm chart test walks it to
// check that the chart sets only settings the consumer reads.
func newFlagSet(c *config, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("consumer", flag.ContinueOnError)
	fs.SetOutput(stderr)

	fs.StringVar(&c.brokers, "brokers", "127.0.0.1:9092", "Kafka bootstrap brokers, comma-separated")
	fs.StringVar(&c.group, "group", "contract-terminator", "Kafka consumer group")
	fs.StringVar(&c.requests, "request-topic", "contract-termination.requested", "topic of termination intents")
	fs.StringVar(&c.results, "result-topic", "contract-termination.results", "topic of result events")
	fs.StringVar(&c.dlq, "dlq-topic", "contract-termination.dlq", "dead-letter topic for undecodable intents")
	tlsFlags(fs, "kafka", &c.kafkaTLS)
	fs.StringVar(&c.kafkaSASL, "kafka-sasl-mechanism", "", "Kafka SASL mechanism: plain, scram-sha-256 or scram-sha-512 (empty: none)")
	fs.StringVar(&c.kafkaUser, "kafka-sasl-username", "", "Kafka SASL user")
	fs.StringVar(&c.kafkaPwd, "kafka-sasl-password", "", "Kafka SASL password (prefer the environment variable)")

	fs.StringVar(&c.redisAddrs, "redis-addrs", "127.0.0.1:6379", "Redis address; several (comma-separated) mean a Redis Cluster")
	fs.StringVar(&c.redisUser, "redis-username", "", "Redis ACL user")
	fs.StringVar(&c.redisPwd, "redis-password", "", "Redis password (prefer the environment variable)")
	fs.IntVar(&c.redisDB, "redis-db", 0, "Redis database (not with a Cluster)")
	tlsFlags(fs, "redis", &c.redisTLS)
	fs.StringVar(&c.dedupePrefix, "dedupe-prefix", "wxterm:contract:", "key prefix of the dedupe records")
	fs.DurationVar(&c.dedupeTTL, "dedupe-ttl", 30*24*time.Hour, "how long a dedupe record lives; keep it at least the request topic's retention")
	fs.DurationVar(&c.lease, "lease", 30*time.Second, "how long a claim on a contract stays exclusive without renewal")

	fs.IntVar(&c.opts.MaxInFlight, "max-in-flight", 64, "WeChat Pay requests on the wire per partition; a quarter more intents are worked on at once (bounds memory)")
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
	fs.Float64Var(&c.opts.RateLimit, "rate-limit", 0, "WeChat Pay calls per second per merchant (0: unlimited); halved for a while on FREQUENCY_LIMITED")

	fs.StringVar(&c.mchID, "mchid", "", "merchant id (商户号)")
	fs.StringVar(&c.certSerial, "mch-cert-serial", "", "merchant API certificate serial number")
	fs.StringVar(&c.keyFile, "mch-private-key-file", "", "PEM file of the merchant API private key")
	fs.StringVar(&c.pubKeyID, "wechatpay-public-key-id", "", "WeChat Pay public key id (PUB_KEY_ID_…)")
	fs.StringVar(&c.pubKeyFile, "wechatpay-public-key-file", "", "PEM file of the WeChat Pay public key")
	fs.StringVar(&c.merchantsFile, "merchants-file", "", "JSON file of several merchants (replaces -mchid and its key flags); see README")
	fs.StringVar(&c.allowedAPIs, "allowed-apis", "credit_repayment,papay_partner,papay_direct,global_papay", "APIs this deployment may call, comma-separated")
	fs.StringVar(&c.allowedSubMchIDs, "allowed-sub-mchids", "", "sub-merchants -mchid may act for, comma-separated (empty: any)")
	fs.StringVar(&c.baseURL, "wechatpay-base-url", wxapi.DefaultBaseURL, "WeChat Pay main domain")
	fs.StringVar(&c.backupURL, "wechatpay-backup-url", wxapi.DefaultBackupURL, "WeChat Pay backup domain, tried on network failures")
	fs.StringVar(&c.globalURL, "wechatpay-global-url", wxapi.DefaultGlobalBaseURL, "WeChat Pay cross-border domain (global_papay)")
	fs.DurationVar(&c.wxTimeout, "wechatpay-timeout", wxapi.DefaultTimeout, "timeout of one WeChat Pay HTTP call")

	fs.BoolVar(&c.replay.enabled, "replay", false, "replay mode: reprocess a range of the request topic outside the group, then exit")
	fs.StringVar(&c.replay.from, "replay-from", "", "replay: first timestamp (RFC 3339), inclusive")
	fs.StringVar(&c.replay.to, "replay-to", "", "replay: last timestamp (RFC 3339), exclusive (empty: now)")
	fs.StringVar(&c.replay.offsets, "replay-offsets", "", "replay: partition offset ranges instead of timestamps, e.g. 0:100-200,3:0-50 (end exclusive)")
	fs.BoolVar(&c.replay.dryRun, "replay-dry-run", false, "replay: only report how many messages the range holds per partition")
	fs.BoolVar(&c.replay.reemit, "replay-reemit", false, "replay: re-publish the stored result of intents already done, marked replayed")

	fs.StringVar(&c.httpAddr, "http-addr", ":8080", "address of /healthz, /readyz and /metrics")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "json", "json or text")
	fs.BoolVar(&c.embedded, "embedded", false, "run on in-process Kafka, Redis and WeChat Pay simulator (ignores their flags)")
	fs.BoolVar(&c.demo, "demo", false, "embedded, publish the example intents, print each result, exit when all are answered")
	fs.BoolVar(&c.keepRunning, "keep-running", false, "with -demo: keep running after the examples so more can be published with the producer")
	fs.IntVar(&c.kafkaPort, "embedded-kafka-port", 9092, "port of the embedded Kafka on 127.0.0.1 (0: any)")
	return fs
}

func tlsFlags(fs *flag.FlagSet, name string, t *tlsFiles) {
	fs.BoolVar(&t.enabled, name+"-tls", false, "connect to "+name+" over TLS")
	fs.StringVar(&t.caFile, name+"-tls-ca-file", "", "PEM CA bundle to verify "+name+" (empty: system roots)")
	fs.StringVar(&t.certFile, name+"-tls-cert-file", "", "PEM client certificate for "+name+" (mutual TLS)")
	fs.StringVar(&t.keyFile, name+"-tls-key-file", "", "PEM client key for "+name+" (mutual TLS)")
	fs.StringVar(&t.serverName, name+"-tls-server-name", "", "server name to verify in "+name+"'s certificate (empty: the host dialled)")
}

func parse(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := newFlagSet(c, stderr)
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix(envPrefix)); err != nil {
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
