package consumer

// Tracing (Options.Tracer, internal/tracing): one span per intent that
// continues the trace of its message's traceparent header, with children for
// the claim, each WeChat Pay attempt, the store and the publish (publish.go
// injects the context into the answer's headers). Off, no span is started
// and the call middleware is a pass-through; the intent's trace context
// still reaches its result's headers.

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/tracing"
	"github.com/wxterm/wxterm/internal/wxapi"
)

// W3C trace context header names (www.w3.org/TR/trace-context), as Kafka
// headers: a reduced result keeps them from the full form.
const (
	traceParent = "traceparent"
	traceState  = "tracestate"
)

// callTrace is what the call middleware needs from an intent's trace: the
// tracer and the attempts made so far, per operation.
type callTrace struct {
	tracer           *tracing.Tracer
	terminate, query atomic.Int32
}

type callTraceKey struct{}

// startProcess starts the span of one intent's message. With tracing off it
// only extracts the message's trace context, for the result's headers.
func (c *Consumer) startProcess(ctx context.Context, m kafka.Message) (context.Context, trace.Span) {
	ctx, span := c.opts.Tracer.StartProcess(ctx, m)
	if c.opts.Tracer.Enabled() {
		ctx = context.WithValue(ctx, callTraceKey{}, &callTrace{tracer: c.opts.Tracer})
	}
	return ctx, span
}

// endProcess ends an intent's span; an intent not finished (its context
// ended first) is marked so.
func endProcess(span trace.Span, finished bool) {
	var err error
	if !finished {
		err = errUnfinished
	}
	tracing.End(span, err)
}

var errUnfinished = errors.New("intent not finished: it will be redelivered")

// traceCall is the middleware that gives each WeChat Pay attempt a span:
// API, operation, attempt number, HTTP status and WeChat Pay's error code.
// It finds the tracer in the intent's context: none (tracing off), no span.
func traceCall(op string, next callFunc) callFunc {
	return func(ctx context.Context, r wxapi.Request) (*wxapi.Contract, error) {
		ct, _ := ctx.Value(callTraceKey{}).(*callTrace)
		if ct == nil {
			return next(ctx, r)
		}
		n := &ct.terminate
		if op == opQuery {
			n = &ct.query
		}
		sctx, span := ct.tracer.StartCall(ctx, string(r.API), op, int(n.Add(1)))
		contract, err := next(sctx, r)
		status, code := answerStatus(contract), ""
		var we *wxapi.Error
		switch {
		case err == nil:
		case errors.As(err, &we):
			status, code = we.HTTPStatus, we.Code
		default:
			status = 0
		}
		tracing.EndCall(span, status, code, err)
		return contract, err
	}
}

// answerStatus is the HTTP status of the answer a successful call decoded
// (global_papay terminate answers 204), 200 when the Terminator does not say
// (a test double).
func answerStatus(ct *wxapi.Contract) int {
	if ct == nil || ct.HTTPStatus == 0 {
		return http.StatusOK
	}
	return ct.HTTPStatus
}

// Store operations of the wxterm.store spans (docs/operators.md lists them).
const (
	storeComplete          = "complete"
	storeMarkPublished     = "mark_published"
	storeRecordTermination = "record_termination"
)

// tracedStore runs one store operation, retries included, in a
// wxterm.store span.
func tracedStore[T any](ctx context.Context, c *Consumer, op string, fn func(context.Context) (T, error)) (T, error) {
	sctx, span := c.opts.Tracer.StartStore(ctx, op)
	v, err := fn(sctx)
	tracing.End(span, err)
	return v, err
}

// tracedClaim is claim (claim.go) in a span.
func (c *Consumer) tracedClaim(ctx context.Context, in *intent) (dedupe.Claim, string, error) {
	sctx, span := c.opts.Tracer.StartClaim(ctx, in.OutContractCode, in.RequestID)
	cl, owner, err := c.claim(sctx, in)
	tracing.End(span, err)
	return cl, owner, err
}

// tracedComplete is complete (claim.go) in a span.
func (c *Consumer) tracedComplete(ctx context.Context, in *intent, owner, kind string, r event.Result) ([]byte, error) {
	sctx, span := c.opts.Tracer.StartStore(ctx, storeComplete)
	b, err := c.complete(sctx, in, owner, kind, r)
	tracing.End(span, err)
	return b, err
}
