package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/cli"
	"github.com/wxterm/wxterm/internal/connflags"
	"github.com/wxterm/wxterm/internal/consumer"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/merchants"
)

// envPrefix: every flag -some-name is also read from WXTERM_SOME_NAME.
const envPrefix = "WXTERM"

// config is every setting; each is a flag, and WXTERM_<FLAG_NAME> fills it
// from the environment. The consumer's settings are bound straight into
// opts; the rest configure the parts main builds around it.
type config struct {
	opts consumer.Options

	kafka connflags.Kafka

	redis            connflags.Redis
	dedupePrefix     string
	dedupeTTL, lease time.Duration

	// redisDurability is what start-up does with the eviction policy
	// check (durabilityStrict, durabilityWarn, durabilityOff).
	redisDurability string

	merchants merchants.Flags

	replay replayConfig

	httpAddr            string
	logLevel, logFormat string
}

// defaultConfig is every setting's default, written once: the consumer's
// come from consumer.DefaultOptions, the dedupe store's from
// dedupe.DefaultOptions, WeChat Pay's from merchants.Flags.
func defaultConfig() config {
	opts := consumer.DefaultOptions()
	opts.Brokers = []string{"127.0.0.1:9092"}
	dd := dedupe.DefaultOptions()
	return config{
		opts:            opts,
		dedupePrefix:    dd.Prefix,
		dedupeTTL:       dd.TTL,
		lease:           dd.Lease,
		redisDurability: durabilityStrict,
		httpAddr:        ":8080",
		logLevel:        "info",
		logFormat:       "json",
	}
}

// replayConfig selects a range of the request topic to reprocess outside
// the consumer group (see replay.go).
type replayConfig struct {
	enabled        bool
	from, to       string // RFC 3339 timestamps
	offsets        string // "partition:start-end,…"
	dryRun, reemit bool
}

// newFlagSet declares every flag into c, each with its default from
// defaultConfig. The Helm chart test walks it to check that the chart sets
// only settings the consumer reads.
func newFlagSet(c *config, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("consumer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	d := defaultConfig()
	o, do := &c.opts, &d.opts

	fs.Var(newListFlag(&o.Brokers, do.Brokers, parseString), "brokers", "Kafka bootstrap brokers, comma-separated")
	fs.StringVar(&o.GroupID, "group", do.GroupID, "Kafka consumer group")
	fs.StringVar(&o.RequestTopic, "request-topic", do.RequestTopic, "topic of termination intents")
	fs.StringVar(&o.ResultTopic, "result-topic", do.ResultTopic, "topic of result events")
	fs.StringVar(&o.DLQTopic, "dlq-topic", do.DLQTopic, "dead-letter topic for undecodable intents")
	fs.StringVar(&o.NotificationTopic, "notification-topic", do.NotificationTopic, "topic of WeChat Pay's notifications written by cmd/notify (contract-termination.notifications); empty: not read. It must exist")
	fs.StringVar(&o.CloudEventsSource, "cloudevents-source", do.CloudEventsSource, "ce_source of the result events' CloudEvents headers (a URI-reference naming this deployment)")
	c.kafka.Register(fs)

	c.redis.Register(fs)
	fs.StringVar(&c.dedupePrefix, "dedupe-prefix", d.dedupePrefix, "key prefix of the dedupe records")
	fs.DurationVar(&c.dedupeTTL, "dedupe-ttl", d.dedupeTTL, "how long a dedupe record lives; keep it at least the request topic's retention")
	fs.DurationVar(&c.lease, "lease", d.lease, "how long a claim on a contract stays exclusive without renewal")
	c.redisDurability = d.redisDurability
	fs.Func("redis-durability-check", "start-up check of Redis's maxmemory-policy: strict (refuse an evicting policy, warn when it cannot be read), warn (warn on both) or off (default "+d.redisDurability+")",
		func(s string) error {
			if !slices.Contains(durabilityModes, s) {
				return fmt.Errorf("want one of %s", strings.Join(durabilityModes, ", "))
			}
			c.redisDurability = s
			return nil
		})

	fs.IntVar(&o.MaxInFlight, "max-in-flight", do.MaxInFlight, "WeChat Pay calls in progress per partition, each from signing to its verified answer (a call waiting for the rate limit or a systemic hold takes no place); a quarter more intents are worked on at once (bounds memory)")
	fs.DurationVar(&o.CommitInterval, "commit-interval", do.CommitInterval, "how often finished offsets are committed")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", do.ShutdownTimeout, "how long a stop or revocation waits for in-flight intents")
	fs.DurationVar(&o.SessionTimeout, "session-timeout", do.SessionTimeout, "consumer group session timeout")
	fs.DurationVar(&o.HeartbeatInterval, "heartbeat-interval", do.HeartbeatInterval, "consumer group heartbeat interval")
	fs.DurationVar(&o.Retry.Initial, "retry-initial", do.Retry.Initial, "first backoff after a transient WeChat Pay failure")
	fs.DurationVar(&o.Retry.Max, "retry-max", do.Retry.Max, "longest backoff between attempts")
	fs.DurationVar(&o.Retry.MaxElapsed, "retry-max-elapsed", do.Retry.MaxElapsed, "retry budget; then the intent fails with reason=retries_exhausted")
	fs.Float64Var(&o.Retry.Multiplier, "retry-multiplier", do.Retry.Multiplier, "backoff growth factor")
	fs.Float64Var(&o.Retry.Jitter, "retry-jitter", do.Retry.Jitter, "backoff randomization factor, 0..1 (0: no jitter)")
	fs.DurationVar(&o.ClockSkew, "clock-skew", do.ClockSkew, "how far WeChat Pay's clock may be behind ours when judging whether a merchant-API termination before our first attempt was someone else's (already_terminated)")
	fs.DurationVar(&o.SystemicProbeInterval, "systemic-probe-interval", do.SystemicProbeInterval, "while a systemic fault holds calls, how often one is tried")
	fs.Float64Var(&o.RateLimit, "rate-limit", do.RateLimit, "WeChat Pay calls per second per merchant (0: unlimited); halved for a while on FREQUENCY_LIMITED")

	c.merchants.Register(fs)
	fs.Var(newListFlag(&o.APIs, do.APIs, parseAPI), "allowed-apis", "APIs this deployment may call, comma-separated")
	fs.Var(newListFlag(&c.merchants.SubMchIDs, nil, parseString), "allowed-sub-mchids", "sub-merchants -mchid may act for, comma-separated (empty: any)")

	fs.BoolVar(&c.replay.enabled, "replay", false, "replay mode: reprocess a range of the request topic outside the group, then exit")
	fs.StringVar(&c.replay.from, "replay-from", "", "replay: first timestamp (RFC 3339), inclusive")
	fs.StringVar(&c.replay.to, "replay-to", "", "replay: last timestamp (RFC 3339), exclusive (empty: now)")
	fs.StringVar(&c.replay.offsets, "replay-offsets", "", "replay: partition offset ranges instead of timestamps, e.g. 0:100-200,3:0-50 (end exclusive)")
	fs.BoolVar(&c.replay.dryRun, "replay-dry-run", false, "replay: only report how many messages the range holds per partition")
	fs.BoolVar(&c.replay.reemit, "replay-reemit", false, "replay: re-publish the stored result of intents already done, marked replayed")

	fs.StringVar(&c.httpAddr, "http-addr", d.httpAddr, "address of /healthz, /readyz and /metrics")
	fs.StringVar(&c.logLevel, "log-level", d.logLevel, "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", d.logFormat, "json or text")
	return fs
}

// listFlag is a comma-separated flag bound into a slice; each element is
// parsed by parse. Setting it replaces the default.
type listFlag[T any] struct {
	dst   *[]T
	parse func(string) (T, error)
}

func newListFlag[T any](dst *[]T, def []T, parse func(string) (T, error)) *listFlag[T] {
	*dst = slices.Clone(def)
	return &listFlag[T]{dst: dst, parse: parse}
}

func (l *listFlag[T]) String() string {
	if l == nil || l.dst == nil {
		return ""
	}
	parts := make([]string, len(*l.dst))
	for i, v := range *l.dst {
		parts[i] = fmt.Sprint(v)
	}
	return strings.Join(parts, ",")
}

func (l *listFlag[T]) Set(s string) error {
	var out []T
	for _, p := range cli.SplitList(s) {
		v, err := l.parse(p)
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	*l.dst = out
	return nil
}

// parseString takes a list element as it is.
func parseString(s string) (string, error) { return s, nil }

// parseAPI accepts an API an intent may name.
func parseAPI(s string) (event.API, error) {
	if !slices.Contains(event.APIs, event.API(s)) {
		return "", fmt.Errorf("unknown api %q", s)
	}
	return event.API(s), nil
}

func parse(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := newFlagSet(c, stderr)
	if err := cli.Parse(fs, args, envPrefix); err != nil {
		return nil, err
	}
	// The consumer takes a zero MaxInFlight for unset; from the flag it
	// would stop every call, so it is refused here rather than replaced.
	if c.opts.MaxInFlight < 1 {
		return nil, fmt.Errorf("-max-in-flight %d: want at least 1", c.opts.MaxInFlight)
	}
	return c, nil
}
