package tracing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Span names.
const (
	SpanProcess = "wxterm.process"        // one intent, from its Kafka message to its result
	SpanClaim   = "wxterm.claim"          // the dedupe claim
	SpanCall    = "wxterm.wechatpay.call" // one HTTP attempt at WeChat Pay
	SpanStore   = "wxterm.store"          // a dedupe record write
	SpanPublish = "wxterm.publish"        // the result's write to Kafka
)

// Attribute keys; the messaging and HTTP ones are OpenTelemetry's semantic
// conventions.
const (
	AttrMessagingSystem = "messaging.system"
	AttrDestination     = "messaging.destination.name"
	AttrPartition       = "messaging.destination.partition.id"
	AttrOffset          = "messaging.kafka.offset"
	AttrHTTPStatus      = "http.response.status_code"
	AttrAPI             = "wxterm.api"
	AttrOp              = "wxterm.op"
	AttrAttempt         = "wxterm.attempt"
	AttrWeChatCode      = "wxterm.wechat_code"
	AttrRequestID       = "wxterm.request_id"
	AttrOutContractCode = "wxterm.out_contract_code"
	AttrStoreOp         = "wxterm.store_op"
)

const instrumentationName = "github.com/wxterm/wxterm/internal/tracing"

// Tracer starts the consumer's spans and moves trace context in and out of
// Kafka headers. It is safe for concurrent use.
type Tracer struct {
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	enabled  bool
	shutdown func(context.Context) error
}

// NewWithProvider builds a Tracer on tp (a test's recorder, or a provider
// the program configured itself); the caller shuts tp down.
func NewWithProvider(tp trace.TracerProvider) *Tracer {
	_, isNoop := tp.(noop.TracerProvider)
	return &Tracer{
		tracer:   tp.Tracer(instrumentationName),
		prop:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		enabled:  !isNoop,
		shutdown: func(context.Context) error { return nil },
	}
}

// Standard OpenTelemetry environment variables read here; the exporter and
// SDK read the rest (OTEL_EXPORTER_OTLP_*, OTEL_TRACES_SAMPLER*, OTEL_BSP_*,
// OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) themselves.
const (
	envSDKDisabled    = "OTEL_SDK_DISABLED"
	envExporter       = "OTEL_TRACES_EXPORTER"
	envEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
)

// New configures tracing from the standard OTEL_* environment: spans are
// exported over OTLP/HTTP when OTEL_TRACES_EXPORTER lists otlp, or when it is unset
// and an OTLP endpoint is set; otherwise (the default) tracing is a no-op.
// serviceVersion goes into the resource; the service name is "wxterm"
// unless OTEL_SERVICE_NAME says otherwise. Shutdown flushes and stops.
func New(ctx context.Context, serviceVersion string) (*Tracer, error) {
	on, err := exportEnabled(os.Getenv)
	if err != nil || !on {
		return NewWithProvider(noop.NewTracerProvider()), err
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: otlp exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "wxterm"), attribute.String("service.version", serviceVersion)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(), // last: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	t := NewWithProvider(tp)
	t.shutdown = tp.Shutdown
	return t, nil
}

// exportEnabled decides from the environment whether spans are exported.
func exportEnabled(getenv func(string) string) (bool, error) {
	if disabled, _ := strconv.ParseBool(getenv(envSDKDisabled)); disabled {
		return false, nil
	}
	// A comma-separated list (opentelemetry.io/docs/specs/otel/configuration/
	// sdk-environment-variables, "Exporter Selection"): spans go over OTLP
	// when otlp is listed; none adds nothing; any other exporter is refused.
	exp := getenv(envExporter)
	otlp, listed := false, false
	for name := range strings.SplitSeq(exp, ",") {
		switch name = strings.TrimSpace(name); name {
		case "":
		case "none":
			listed = true
		case "otlp":
			otlp, listed = true, true
		case "console":
			return false, fmt.Errorf("tracing: %s=%q: the console exporter is not supported (only otlp and none)", envExporter, exp)
		default:
			return false, fmt.Errorf("tracing: %s=%q: exporter %q is not supported (only otlp and none)", envExporter, exp, name)
		}
	}
	switch {
	case listed && !otlp:
		return false, nil
	case !listed && getenv(envEndpoint) == "" && getenv(envTracesEndpoint) == "":
		return false, nil
	}
	proto := getenv(envTracesProtocol)
	if proto == "" {
		proto = getenv(envProtocol)
	}
	if proto != "" && proto != "http/protobuf" {
		return false, fmt.Errorf("tracing: OTLP protocol %q: only http/protobuf is supported", proto)
	}
	return true, nil
}

// Enabled reports whether spans are recorded (false: the no-op provider).
func (t *Tracer) Enabled() bool { return t.enabled }

// Shutdown flushes the spans not exported yet and stops the exporter.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if err := t.shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}

// Extract returns ctx with the trace context of a message's headers.
func (t *Tracer) Extract(ctx context.Context, headers []kafka.Header) context.Context {
	c := Headers(headers)
	return t.prop.Extract(ctx, &c)
}

// Inject returns headers with ctx's trace context set (replacing any there);
// headers' backing array is not modified.
func (t *Tracer) Inject(ctx context.Context, headers []kafka.Header) []kafka.Header {
	c := Headers(headers[:len(headers):len(headers)])
	t.prop.Inject(ctx, &c)
	return c
}

// StartProcess continues the trace of an intent's message (a consumer span
// whose parent is the message's traceparent, if any).
func (t *Tracer) StartProcess(ctx context.Context, m kafka.Message) (context.Context, trace.Span) {
	ctx = t.Extract(ctx, m.Headers)
	if !t.enabled {
		return ctx, trace.SpanFromContext(ctx)
	}
	return t.tracer.Start(ctx, SpanProcess, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
		attribute.String(AttrMessagingSystem, "kafka"),
		attribute.String(AttrDestination, m.Topic),
		attribute.String(AttrPartition, strconv.Itoa(m.Partition)),
		attribute.Int64(AttrOffset, m.Offset),
	))
}

// StartClaim starts the span of a dedupe claim.
func (t *Tracer) StartClaim(ctx context.Context, outContractCode, requestID string) (context.Context, trace.Span) {
	if !t.enabled {
		return ctx, trace.SpanFromContext(ctx)
	}
	return t.tracer.Start(ctx, SpanClaim, trace.WithAttributes(
		attribute.String(AttrOutContractCode, outContractCode), attribute.String(AttrRequestID, requestID)))
}

// StartCall starts the span of one WeChat Pay attempt: api names the
// endpoint family, op the operation (terminate, query).
func (t *Tracer) StartCall(ctx context.Context, api, op string, attempt int) (context.Context, trace.Span) {
	if !t.enabled {
		return ctx, trace.SpanFromContext(ctx)
	}
	return t.tracer.Start(ctx, SpanCall, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String(AttrAPI, api), attribute.String(AttrOp, op), attribute.Int(AttrAttempt, attempt)))
}

// EndCall records an attempt's HTTP status (0: none, the request failed
// before an answer), WeChat Pay's error code ("" on success) and error, and
// ends its span.
func EndCall(span trace.Span, httpStatus int, wechatCode string, err error) {
	if !span.IsRecording() {
		return
	}
	if httpStatus != 0 {
		span.SetAttributes(attribute.Int(AttrHTTPStatus, httpStatus))
	}
	if wechatCode != "" {
		span.SetAttributes(attribute.String(AttrWeChatCode, wechatCode))
	}
	End(span, err)
}

// StartStore starts the span of a dedupe record write; op names it
// (complete, fail, mark_published…).
func (t *Tracer) StartStore(ctx context.Context, op string) (context.Context, trace.Span) {
	if !t.enabled {
		return ctx, trace.SpanFromContext(ctx)
	}
	return t.tracer.Start(ctx, SpanStore, trace.WithAttributes(attribute.String(AttrStoreOp, op)))
}

// StartPublish starts the producer span of a result's write to topic; inject
// the returned context into the result's headers.
func (t *Tracer) StartPublish(ctx context.Context, topic string) (context.Context, trace.Span) {
	if !t.enabled {
		return ctx, trace.SpanFromContext(ctx)
	}
	return t.tracer.Start(ctx, SpanPublish, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
		attribute.String(AttrMessagingSystem, "kafka"), attribute.String(AttrDestination, topic)))
}

// End records err (if any) on span and ends it.
func End(span trace.Span, err error) {
	if !span.IsRecording() {
		return
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
