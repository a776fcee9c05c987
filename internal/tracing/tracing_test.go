package tracing

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

const (
	intentTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	intentSpanID  = "00f067aa0ba902b7"
	intentParent  = "00-" + intentTraceID + "-" + intentSpanID + "-01"
)

func intentMessage() kafka.Message {
	return kafka.Message{Topic: "requests", Partition: 2, Offset: 41, Headers: []kafka.Header{
		{Key: "source", Value: []byte("billing")},
		{Key: "traceparent", Value: []byte(intentParent)},
		{Key: "tracestate", Value: []byte("vendor=x")},
	}}
}

func TestHeadersCarrier(t *testing.T) {
	h := Headers{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}, {Key: "a", Value: []byte("3")}}
	if got := h.Get("a"); got != "1" {
		t.Errorf("Get(a): got %q; want 1 (the first)", got)
	}
	if got := h.Get("missing"); got != "" {
		t.Errorf("Get(missing): got %q; want empty", got)
	}
	orig := slices.Clone(h)
	c := h
	c.Set("a", "4")
	if got, want := c.Keys(), []string{"b", "a"}; !slices.Equal(got, want) || c.Get("a") != "4" {
		t.Errorf("after Set(a, 4): got keys %v a=%q; want %v a=4", got, c.Get("a"), want)
	}
	if string(h[0].Value) != string(orig[0].Value) || len(h) != len(orig) {
		t.Errorf("Set changed the original headers: got %v; want %v", h, orig)
	}
}

// attrs flattens a span's attributes.
func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	out := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		out[kv.Key] = kv.Value
	}
	return out
}

func TestTraceContinuesFromIntentToResult(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tr := NewWithProvider(tp)
	if !tr.Enabled() {
		t.Fatal("tracer on an SDK provider reports disabled")
	}

	ctx, process := tr.StartProcess(context.Background(), intentMessage())
	cctx, claim := tr.StartClaim(ctx, "c1", "r1")
	End(claim, nil)
	_ = cctx
	_, call := tr.StartCall(ctx, "papay_partner", "terminate", 1)
	EndCall(call, 500, "SYSTEM_ERROR", errors.New("wxapi: terminate: 500 SYSTEM_ERROR"))
	_, call = tr.StartCall(ctx, "papay_partner", "terminate", 2)
	EndCall(call, 204, "", nil)
	_, store := tr.StartStore(ctx, "complete")
	End(store, nil)
	pctx, publish := tr.StartPublish(ctx, "results")
	out := tr.Inject(pctx, []kafka.Header{{Key: "event_type", Value: []byte("contract-terminated")}})
	End(publish, nil)
	End(process, nil)

	spans := rec.Ended()
	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()] = append(byName[s.Name()], s)
		if got := s.SpanContext().TraceID().String(); got != intentTraceID {
			t.Errorf("span %s: trace id %s; want the intent's %s", s.Name(), got, intentTraceID)
		}
	}
	for name, n := range map[string]int{SpanProcess: 1, SpanClaim: 1, SpanCall: 2, SpanStore: 1, SpanPublish: 1} {
		if len(byName[name]) != n {
			t.Fatalf("got %d %s spans; want %d (all: %v)", len(byName[name]), name, n, byName)
		}
	}
	root := byName[SpanProcess][0]
	if got := root.Parent().SpanID().String(); got != intentSpanID || !root.Parent().IsRemote() {
		t.Errorf("process span's parent: got %s (remote %v); want the intent's %s, remote", got, root.Parent().IsRemote(), intentSpanID)
	}
	if got := root.SpanKind(); got != trace.SpanKindConsumer {
		t.Errorf("process span kind: got %v; want consumer", got)
	}
	for _, s := range spans {
		if s != root && s.Parent().SpanID() != root.SpanContext().SpanID() {
			t.Errorf("span %s: parent %s; want the process span %s", s.Name(), s.Parent().SpanID(), root.SpanContext().SpanID())
		}
	}
	for i, want := range []struct {
		attempt, status int64
		code            string
		failed          bool
	}{{1, 500, "SYSTEM_ERROR", true}, {2, 204, "", false}} {
		a := attrs(byName[SpanCall][i])
		if a[AttrAttempt].AsInt64() != want.attempt || a[AttrHTTPStatus].AsInt64() != want.status ||
			a[AttrWeChatCode].AsString() != want.code || a[AttrAPI].AsString() != "papay_partner" || a[AttrOp].AsString() != "terminate" {
			t.Errorf("call %d attributes: got %v; want attempt %d status %d code %q api papay_partner op terminate", i, a, want.attempt, want.status, want.code)
		}
		if failed := byName[SpanCall][i].Status().Code.String() == "Error"; failed != want.failed {
			t.Errorf("call %d: got failed %v; want %v", i, failed, want.failed)
		}
	}
	h := Headers(out)
	wantParent := "00-" + intentTraceID + "-" + byName[SpanPublish][0].SpanContext().SpanID().String() + "-01"
	if got := h.Get("traceparent"); got != wantParent {
		t.Errorf("result traceparent: got %q; want %q (the intent's trace, the publish span)", got, wantParent)
	}
	if got := h.Get("tracestate"); got != "vendor=x" {
		t.Errorf("result tracestate: got %q; want vendor=x", got)
	}
	if got := h.Get("event_type"); got != "contract-terminated" {
		t.Errorf("Inject lost the other headers: event_type %q", got)
	}
}

func TestOffPassesTheTraceContextThrough(t *testing.T) {
	tr := NewWithProvider(noop.NewTracerProvider())
	if tr.Enabled() {
		t.Fatal("tracer on the no-op provider reports enabled")
	}
	ctx, process := tr.StartProcess(context.Background(), intentMessage())
	ctx, claim := tr.StartClaim(ctx, "c1", "r1")
	End(claim, nil)
	pctx, publish := tr.StartPublish(ctx, "results")
	out := tr.Inject(pctx, nil)
	End(publish, nil)
	End(process, nil)
	h := Headers(out)
	if got := h.Get("traceparent"); got != intentParent {
		t.Errorf("result traceparent with tracing off: got %q; want the intent's %q", got, intentParent)
	}
	// No trace context in: none out.
	if got := tr.Inject(context.Background(), nil); len(got) != 0 {
		t.Errorf("Inject without a trace: got %v; want no headers", got)
	}
}

func TestExportEnabledFromEnvironment(t *testing.T) {
	for _, c := range []struct {
		name    string
		env     map[string]string
		want    bool
		wantErr bool
	}{
		{"nothing set", nil, false, false},
		{"endpoint", map[string]string{envEndpoint: "http://collector:4318"}, true, false},
		{"traces endpoint", map[string]string{envTracesEndpoint: "http://collector:4318/v1/traces"}, true, false},
		{"exporter otlp", map[string]string{envExporter: "otlp"}, true, false},
		{"exporter none wins", map[string]string{envExporter: "none", envEndpoint: "http://c:4318"}, false, false},
		{"sdk disabled wins", map[string]string{envSDKDisabled: "true", envExporter: "otlp"}, false, false},
		{"http/protobuf", map[string]string{envExporter: "otlp", envProtocol: "http/protobuf"}, true, false},
		{"grpc refused", map[string]string{envExporter: "otlp", envProtocol: "grpc"}, false, true},
		{"traces protocol wins", map[string]string{envExporter: "otlp", envProtocol: "grpc", envTracesProtocol: "http/protobuf"}, true, false},
		{"zipkin refused", map[string]string{envExporter: "zipkin"}, false, true},
		// OTEL_TRACES_EXPORTER is a comma-separated list (review of issue 15:
		// "otlp,none" was refused as a whole).
		{"list with otlp", map[string]string{envExporter: "otlp, none"}, true, false},
		{"list none", map[string]string{envExporter: "none,", envEndpoint: "http://c:4318"}, false, false},
		{"console refused", map[string]string{envExporter: "otlp,console"}, false, true},
		{"unknown in a list refused", map[string]string{envExporter: "none,zipkin"}, false, true},
	} {
		got, err := exportEnabled(func(k string) string { return c.env[k] })
		if got != c.want || (err != nil) != c.wantErr {
			t.Errorf("%s: got %v, %v; want %v, error %v", c.name, got, err, c.want, c.wantErr)
		}
	}
}

func TestNewIsOffByDefault(t *testing.T) {
	for _, k := range []string{envSDKDisabled, envExporter, envEndpoint, envTracesEndpoint, envProtocol, envTracesProtocol} {
		t.Setenv(k, "")
	}
	tr, err := New(context.Background(), "test")
	if err != nil || tr.Enabled() {
		t.Fatalf("New with no OTEL_* set: got enabled %v, %v; want a no-op tracer", tr != nil && tr.Enabled(), err)
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown of the no-op tracer: %v", err)
	}
}

func TestNewExportsOverOTLPHTTP(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	t.Setenv(envExporter, "")
	t.Setenv(envSDKDisabled, "")
	t.Setenv(envEndpoint, srv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "wxterm-test")

	tr, err := New(context.Background(), "test")
	if err != nil || !tr.Enabled() {
		t.Fatalf("New with an OTLP endpoint: got enabled %v, %v; want an exporting tracer", tr != nil && tr.Enabled(), err)
	}
	_, span := tr.StartProcess(context.Background(), intentMessage())
	End(span, nil)
	if err := tr.Shutdown(context.Background()); err != nil { // flushes
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 || !strings.HasPrefix(got[0], "POST /v1/traces application/x-protobuf") {
		t.Errorf("collector received %q; want a POST /v1/traces of protobuf", got)
	}
}

// benchSpans is the per-intent tracing work of the consumer: extract, five
// spans (two call attempts), inject.
func benchSpans(b *testing.B, tr *Tracer) {
	m := intentMessage()
	out := []kafka.Header{{Key: "event_type", Value: []byte("contract-terminated")}}
	b.ReportAllocs()
	for b.Loop() {
		ctx, process := tr.StartProcess(context.Background(), m)
		_, claim := tr.StartClaim(ctx, "c1", "r1")
		End(claim, nil)
		for attempt := 1; attempt <= 2; attempt++ {
			_, call := tr.StartCall(ctx, "papay_partner", "terminate", attempt)
			EndCall(call, 204, "", nil)
		}
		_, store := tr.StartStore(ctx, "complete")
		End(store, nil)
		pctx, publish := tr.StartPublish(ctx, "results")
		_ = tr.Inject(pctx, out)
		End(publish, nil)
		End(process, nil)
	}
}

// BenchmarkOff is the cost per intent with tracing off (the default): the
// trace context is still passed through.
func BenchmarkOff(b *testing.B) { benchSpans(b, NewWithProvider(noop.NewTracerProvider())) }

// BenchmarkOn records every span in an SDK provider with no exporter: the
// cost of the spans themselves, without the batch export.
func BenchmarkOn(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	defer tp.Shutdown(context.Background())
	benchSpans(b, NewWithProvider(tp))
}
