package consumer

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/tracing"
)

// Options configures a Consumer. The service binds its flags into it,
// starting from DefaultOptions; zero values take the defaults listed on each
// field.
type Options struct {
	Brokers      []string
	Dialer       *kafka.Dialer      // TLS/SASL for the group and the readers; nil: plain TCP
	Transport    kafka.RoundTripper // TLS/SASL for the result writer; nil: kafka.DefaultTransport
	GroupID      string             // default "contract-terminator"
	RequestTopic string             // default "contract-termination.requested"
	ResultTopic  string             // default "contract-termination.results"
	DLQTopic     string             // default "contract-termination.dlq"
	// NotificationTopic is cmd/notify's topic of WeChat Pay's notifications
	// (notification.go): the group reads it too and turns each termination
	// into a result. Empty (the default): not read. The topic must exist:
	// a missing one leaves the whole group without partitions.
	NotificationTopic string

	// MaxInFlight bounds the WeChat Pay calls in flight for one partition
	// (the bound middleware, slots.go). A quarter more messages (plus one)
	// are worked on at once, so that claiming, storing and publishing
	// overlap the calls; that bounds memory. Default 64.
	MaxInFlight int
	// CommitInterval is how often finished offsets are committed. Default 200ms.
	CommitInterval time.Duration
	// ShutdownTimeout bounds how long a revoked or stopping partition waits
	// for its in-flight messages before handing them back. Default 20s.
	ShutdownTimeout time.Duration
	// FetchMaxWait bounds a fetch's long poll. Default 250ms.
	FetchMaxWait time.Duration
	// SessionTimeout and HeartbeatInterval of the group membership.
	// Defaults 10s and 3s.
	SessionTimeout, HeartbeatInterval time.Duration

	Retry RetryOptions

	// SystemicProbeInterval is how often, while a systemic fault holds all
	// work (bad signature, SIGN_ERROR), one intent is tried to see whether it
	// cleared. Default 5s.
	SystemicProbeInterval time.Duration

	// RateLimit caps WeChat Pay calls per second per merchant; 0 is no cap.
	// A FREQUENCY_LIMITED answer halves a merchant's rate for a while.
	RateLimit float64

	// Merchants maps a merchant id to its WeChat Pay client and allowlist.
	// An intent without mchid uses DefaultMerchant; one naming an absent
	// merchant, a sub-merchant outside the allowlist or an API outside APIs
	// gets reason=not_allowed and no call.
	Merchants       map[string]Merchant
	DefaultMerchant string
	APIs            []event.API // allowed APIs; empty: all

	Metrics *Metrics // default: unregistered instruments

	// Tracer starts the spans of each intent (trace.go); default: off, the
	// intent's trace context still passes through to its result's headers.
	Tracer *tracing.Tracer
	// CloudEventsSource is the ce_source of the result events; default
	// event.CEDefaultSource.
	CloudEventsSource string

	// ClockSkew is how far WeChat Pay's clock may be behind ours when a
	// merchant termination's time is compared with our first attempt (see
	// call.go, already); default 10s.
	ClockSkew time.Duration

	Store  *dedupe.Store // required
	Logger *slog.Logger  // default: discard
	Now    func() time.Time
}

// Merchant is one merchant this deployment acts for.
type Merchant struct {
	Client    Terminator
	SubMchIDs []string // sub-merchants it may act for; empty: any
}

// RetryOptions shapes the exponential backoff between attempts of a call
// that failed transiently.
type RetryOptions struct {
	Initial    time.Duration // default 200ms
	Max        time.Duration // default 10s
	MaxElapsed time.Duration // then the intent fails with retries_exhausted; default 2m
	Multiplier float64       // default 2
	// Jitter is the randomization factor, 0..1. Unlike the other fields,
	// zero is kept: it means no jitter (DefaultOptions has 0.5).
	Jitter float64
}

// DefaultOptions returns every setting's default, the one place each is
// written: the service's flags take their defaults from it, and New fills
// the zero fields of its Options from it.
func DefaultOptions() Options {
	return Options{
		GroupID:               "contract-terminator",
		RequestTopic:          event.TopicRequests,
		ResultTopic:           event.TopicResults,
		DLQTopic:              event.TopicDLQ,
		MaxInFlight:           64,
		CommitInterval:        200 * time.Millisecond,
		ShutdownTimeout:       20 * time.Second,
		FetchMaxWait:          250 * time.Millisecond,
		SessionTimeout:        10 * time.Second,
		HeartbeatInterval:     3 * time.Second,
		SystemicProbeInterval: 5 * time.Second,
		Retry: RetryOptions{
			Initial:    200 * time.Millisecond,
			Max:        10 * time.Second,
			MaxElapsed: 2 * time.Minute,
			Multiplier: 2,
			Jitter:     0.5,
		},
		ClockSkew:         10 * time.Second,
		APIs:              slices.Clone(event.APIs),
		CloudEventsSource: event.CEDefaultSource,
	}
}

// setDefaults fills o's zero fields from DefaultOptions.
func (o *Options) setDefaults() {
	d := DefaultOptions()
	orDefault(&o.GroupID, d.GroupID)
	orDefault(&o.RequestTopic, d.RequestTopic)
	orDefault(&o.ResultTopic, d.ResultTopic)
	orDefault(&o.DLQTopic, d.DLQTopic)
	orDefault(&o.MaxInFlight, d.MaxInFlight)
	orDefault(&o.CommitInterval, d.CommitInterval)
	orDefault(&o.ShutdownTimeout, d.ShutdownTimeout)
	orDefault(&o.FetchMaxWait, d.FetchMaxWait)
	orDefault(&o.SessionTimeout, d.SessionTimeout)
	orDefault(&o.HeartbeatInterval, d.HeartbeatInterval)
	orDefault(&o.SystemicProbeInterval, d.SystemicProbeInterval)
	orDefault(&o.Retry.Initial, d.Retry.Initial)
	orDefault(&o.Retry.Max, d.Retry.Max)
	orDefault(&o.Retry.MaxElapsed, d.Retry.MaxElapsed)
	orDefault(&o.Retry.Multiplier, d.Retry.Multiplier)
	orDefault(&o.ClockSkew, d.ClockSkew)
	if len(o.APIs) == 0 {
		o.APIs = d.APIs
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Tracer == nil {
		o.Tracer = tracing.NewWithProvider(noop.NewTracerProvider())
	}
	orDefault(&o.CloudEventsSource, d.CloudEventsSource)
}

func orDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

func (o *Options) validate() error {
	var errs []error
	if len(o.Brokers) == 0 {
		errs = append(errs, errors.New("no brokers"))
	}
	if o.Store == nil {
		errs = append(errs, errors.New("no dedupe store"))
	}
	if err := event.CheckCESource(o.CloudEventsSource); err != nil {
		errs = append(errs, err)
	}
	if len(o.Merchants) == 0 {
		errs = append(errs, errors.New("no merchants"))
	}
	for id, m := range o.Merchants {
		if m.Client == nil {
			errs = append(errs, fmt.Errorf("merchant %s has no client", id))
		}
	}
	if _, ok := o.Merchants[o.DefaultMerchant]; o.DefaultMerchant != "" && !ok {
		errs = append(errs, fmt.Errorf("default merchant %s is not configured", o.DefaultMerchant))
	}
	for _, a := range o.APIs {
		if !slices.Contains(event.APIs, a) {
			errs = append(errs, fmt.Errorf("unknown api %q", a))
		}
	}
	if o.MaxInFlight < 1 {
		errs = append(errs, fmt.Errorf("max in-flight %d < 1", o.MaxInFlight))
	}
	if o.Retry.Jitter < 0 || o.Retry.Jitter > 1 {
		errs = append(errs, fmt.Errorf("retry jitter %v outside 0..1", o.Retry.Jitter))
	}
	if o.Retry.Initial > o.Retry.Max {
		errs = append(errs, fmt.Errorf("retry initial interval %v > max %v", o.Retry.Initial, o.Retry.Max))
	}
	if o.RequestTopic == o.ResultTopic || o.RequestTopic == o.DLQTopic {
		errs = append(errs, errors.New("the request topic must differ from the result and dead-letter topics"))
	}
	if n := o.NotificationTopic; n != "" && (n == o.RequestTopic || n == o.ResultTopic || n == o.DLQTopic) {
		errs = append(errs, errors.New("the notification topic must differ from the request, result and dead-letter topics"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("consumer: options: %w", err)
	}
	return nil
}

func (r RetryOptions) backoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = r.Initial
	b.MaxInterval = r.Max
	b.MaxElapsedTime = r.MaxElapsed
	b.Multiplier = r.Multiplier
	b.RandomizationFactor = r.Jitter
	b.Reset()
	return b
}
