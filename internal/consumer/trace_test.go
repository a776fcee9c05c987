package consumer

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding/spec"
	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/tracing"
	"github.com/wxterm/wxterm/internal/wxapi"
)

// readTopic reads n messages of a one-partition topic from its start.
func (h *harness) readTopic(topic string, n int) []kafka.Message {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: h.brokers, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	var out []kafka.Message
	for len(out) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			h.t.Fatalf("read %s: %v after %d of %d messages", topic, err, len(out), n)
		}
		out = append(out, m)
	}
	return out
}

// Issue 15 item 4: a result carries the CloudEvents Kafka binding's
// binary-mode headers, read by the CloudEvents SDK's attribute rules as a
// valid event whose id is the event_id, its body the result unchanged.
func TestResultsCarryCloudEventsHeaders(t *testing.T) {
	h := newHarness(t, harnessOpts{partitions: 1})
	opts := h.options(0)
	opts.CloudEventsSource = "urn:wxterm:test"
	h.start(opts)
	ok := newIntent(event.CreditRepayment, "CE1")
	seed(h.sim, ok)
	h.publish(ok, newIntent(event.CreditRepayment, "CE2")) // CE2 not seeded: terminate-failed
	for _, m := range h.readTopic(h.results, 2) {
		var r event.Result
		if err := json.Unmarshal(m.Value, &r); err != nil {
			t.Fatal(err)
		}
		if err := event.ValidateResult(m.Value); err != nil {
			t.Errorf("%s: body does not match the schema: %v", r.RequestID, err)
		}
		version := spec.WithPrefix("ce_").Version(headerValue(m.Headers, event.CEHeaderSpecVersion))
		if version == nil {
			t.Fatalf("%s: no supported ce_specversion in %v", r.RequestID, m.Headers)
		}
		ev := cloudevents.New(version.String())
		for _, x := range m.Headers {
			switch {
			case x.Key == event.CEHeaderContentType:
				err := version.AttributeFromKind(spec.DataContentType).Set(ev.Context, string(x.Value))
				if err != nil {
					t.Errorf("%s: content-type %q: %v", r.RequestID, x.Value, err)
				}
			case strings.HasPrefix(x.Key, "ce_"):
				if err := version.Attribute(x.Key).Set(ev.Context, string(x.Value)); err != nil {
					t.Errorf("%s: %s=%q: %v", r.RequestID, x.Key, x.Value, err)
				}
			}
		}
		if err := ev.Validate(); err != nil {
			t.Errorf("%s: not a valid CloudEvent: %v", r.RequestID, err)
		}
		wantType := map[string]string{event.TypeTerminated: event.CETypeTerminated, event.TypeFailed: event.CETypeFailed}[r.EventType]
		if ev.ID() != r.EventID || ev.Type() != wantType || ev.Source() != opts.CloudEventsSource || ev.Subject() != r.OutContractCode ||
			!ev.Time().Equal(r.OccurredAt) || ev.DataContentType() != event.CEContentType {
			t.Errorf("%s: got %v; want id %s, type %s, source %s, subject %s, time %v, application/json",
				r.RequestID, ev, r.EventID, wantType, opts.CloudEventsSource, r.OutContractCode, r.OccurredAt)
		}
		if got := headerValue(m.Headers, event.HeaderEventType); got != r.EventType {
			t.Errorf("%s: event_type header %q; want %q", r.RequestID, got, r.EventType)
		}
	}
}

// Issue 15 item 3: the intent's traceparent continues through spans for
// the intent, its claim, each WeChat Pay attempt, the store and the
// publish, into the result's headers: one trace id end to end.
func TestTraceFollowsTheIntentToItsResult(t *testing.T) {
	const (
		traceID  = "4bf92f3577b34da6a3ce929d0e0e4736"
		parentID = "00f067aa0ba902b7"
	)
	h, rec := tracedHarness(t) // trace_status_test.go
	in := newIntent(event.PapayDirect, "TRACE1")
	seed(h.sim, in)
	b, _ := json.Marshal(in)
	h.publishRaw(kafka.Message{Key: []byte(in.OutContractCode), Value: b,
		Headers: []kafka.Header{{Key: traceParent, Value: []byte("00-" + traceID + "-" + parentID + "-01")}}})

	res := h.readTopic(h.results, 1)[0]
	tpHeader := headerValue(res.Headers, traceParent)
	if parts := strings.Split(tpHeader, "-"); len(parts) != 4 || parts[1] != traceID {
		t.Fatalf("result traceparent %q; want trace id %s", tpHeader, traceID)
	}
	spans := map[string]sdktrace.ReadOnlySpan{}
	deadline := time.Now().Add(waitLong)
	for len(spans) < 5 && time.Now().Before(deadline) {
		for _, s := range rec.Ended() {
			spans[s.Name()] = s
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, name := range []string{tracing.SpanProcess, tracing.SpanClaim, tracing.SpanCall, tracing.SpanStore, tracing.SpanPublish} {
		s, ok := spans[name]
		if !ok {
			t.Errorf("no %s span; got %v", name, spans)
			continue
		}
		if got := s.SpanContext().TraceID().String(); got != traceID {
			t.Errorf("%s: trace id %s; want %s", name, got, traceID)
		}
	}
	if p, ok := spans[tracing.SpanProcess]; ok && p.Parent().SpanID().String() != parentID {
		t.Errorf("process span's parent %s; want the intent's span %s", p.Parent().SpanID(), parentID)
	}
	if p, ok := spans[tracing.SpanPublish]; ok && !strings.Contains(tpHeader, p.SpanContext().SpanID().String()) {
		t.Errorf("result traceparent %q; want the publish span %s as its parent", tpHeader, p.SpanContext().SpanID())
	}
	if c, ok := spans[tracing.SpanCall]; ok {
		attrs := map[attribute.Key]attribute.Value{}
		for _, kv := range c.Attributes() {
			attrs[kv.Key] = kv.Value
		}
		if attrs[tracing.AttrAPI].AsString() != string(in.API) || attrs[tracing.AttrOp].AsString() != opTerminate ||
			attrs[tracing.AttrAttempt].AsInt64() != 1 || attrs[tracing.AttrHTTPStatus].AsInt64() != 200 {
			t.Errorf("call span attributes %v; want api %s, op terminate, attempt 1, status 200", attrs, in.API)
		}
	}
}

// BenchmarkTracingPerIntent measures what tracing adds to one intent: the
// spans of handle (process, claim, one call attempt through the traceCall
// middleware, store, publish) and the trace context injected into the
// result's headers; off is the default no-op provider, on the SDK with a
// batch processor and an exporter that discards, as in production.
func BenchmarkTracingPerIntent(b *testing.B) {
	msg := kafka.Message{Topic: "requests", Partition: 1, Offset: 7, Headers: []kafka.Header{
		{Key: traceParent, Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")}}}
	call := traceCall(opTerminate, func(context.Context, wxapi.Request) (*wxapi.Contract, error) { return nil, nil })
	req := wxapi.Request{API: wxapi.PapayDirect, OutContractCode: "BENCH1"}
	in := &intent{Intent: event.Intent{RequestID: "req-BENCH1", OutContractCode: "BENCH1"}}
	run := func(b *testing.B, tr *tracing.Tracer) {
		c := &Consumer{opts: Options{Tracer: tr}}
		b.ReportAllocs()
		for b.Loop() {
			ctx, span := c.startProcess(context.Background(), msg)
			_, s := tr.StartClaim(ctx, in.OutContractCode, in.RequestID)
			tracing.End(s, nil)
			_, _ = call(ctx, req)
			_, s = tr.StartStore(ctx, "complete")
			tracing.End(s, nil)
			pctx, s := tr.StartPublish(ctx, "results")
			_ = tr.Inject(pctx, []kafka.Header{{Key: event.HeaderEventType, Value: []byte(event.TypeTerminated)}})
			tracing.End(s, nil)
			endProcess(span, true)
		}
	}
	b.Run("off", func(b *testing.B) { run(b, tracing.NewWithProvider(noop.NewTracerProvider())) })
	b.Run("on", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}))
		defer func() { _ = tp.Shutdown(context.Background()) }()
		run(b, tracing.NewWithProvider(tp))
	})
}

// discard is a span exporter that drops what it is given.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }
