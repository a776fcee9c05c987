package consumer

import (
	"context"
	"errors"
	"log/slog"
	"strconv"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
)

// intent is one valid intent on its way through the consumer: the decoded
// message, where it came from and the merchant that acts on it.
type intent struct {
	event.Intent
	src event.Source
	mch *merchant
	log *slog.Logger
}

// handle takes one message to its end and reports whether it is finished (its
// answer, if any, durable in Kafka, so its offset may be committed). It
// returns false only when ctx is done first: the message is then redelivered
// and the dedupe record makes that harmless. calls bounds the partition's
// WeChat Pay calls in flight.
//
// Every stage below follows one convention: a nil error means the stage is
// finished; errLostClaim means start again from the claim; any other error
// means ctx ended and the message stays unfinished.
func (c *Consumer) handle(ctx context.Context, m kafka.Message, calls semaphore) (finished bool) {
	ctx, span := c.startProcess(ctx, m) // trace.go
	defer func() { endProcess(span, finished) }()
	if c.isNotification(m) {
		return c.handleNotification(ctx, m) // notification.go
	}
	in, refusal := c.intake(m) // intake.go: decode, validate, allow
	if refusal != nil {
		return c.publish(ctx, *refusal) == nil // publish.go
	}
	// The message's own terminate calls, remembered across lost claims: a
	// record lost mid-call (evicted, deleted, lost in a failover) answers
	// the next claim Claimed, and only this worker knows a call may have
	// reached WeChat Pay.
	var mark sentMark
	for {
		err := c.resolve(ctx, in, calls, &mark)
		if errors.Is(err, errLostClaim) && ctx.Err() == nil {
			in.log.Warn("claim lost to another worker; claiming again")
			continue
		}
		if err != nil && ctx.Err() == nil {
			in.log.Error("resolve", "err", err) // unreachable by design: every error path retries until ctx is done
		}
		return err == nil
	}
}

// resolve takes a valid intent through the dedupe state machine: claim the
// contract, answer from the record if it was answered before, else call
// WeChat Pay under the claim, store the outcome and publish it. mark is
// what this worker sent under earlier claims of the same message.
func (c *Consumer) resolve(ctx context.Context, in *intent, calls semaphore, mark *sentMark) error {
	cl, owner, err := c.tracedClaim(ctx, in) // claim.go, in a span (trace.go)
	if err != nil {
		return err
	}
	if answered(cl) {
		return c.answerFromRecord(ctx, in, cl) // claim.go
	}
	r, v, err := c.callClaimed(ctx, in, owner, cl, calls, mark) // claim.go → call.go
	if err != nil {
		return err
	}
	b, err := c.tracedComplete(ctx, in, owner, outcomeKind(r, v), r) // claim.go: store before publishing
	if err != nil {
		return err
	}
	return c.publish(ctx, output{result: &r, encoded: b, claimed: true}) // publish.go
}

// intake decodes and validates m and finds the merchant that acts on it. A
// message that cannot be acted on comes back as its answer instead: a
// terminate-failed result (invalid_request, not_allowed), or a dead letter
// when not even its request can be identified.
func (c *Consumer) intake(m kafka.Message) (*intent, *output) {
	src := event.Source{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}
	in, err := decode(m)
	if err != nil {
		return nil, c.reject(m, src, err)
	}
	mch, why := c.allowed(in)
	if why != "" {
		r := event.Failed(in.RequestID, in.OutContractCode, in.API, in.MchID, src,
			event.Failure{Reason: event.ReasonNotAllowed, Detail: why}, 0, c.opts.Now())
		return nil, &output{result: &r}
	}
	log := c.opts.Logger.With("request_id", in.RequestID, "out_contract_code", in.OutContractCode)
	return &intent{Intent: in, src: src, mch: mch, log: log}, nil
}

// decode decodes and validates an intent message.
func decode(m kafka.Message) (event.Intent, error) {
	in, err := event.DecodeIntent(m.Value)
	if err == nil && len(m.Key) > 0 && string(m.Key) != in.OutContractCode {
		// A key other than the contract code would put one contract on two
		// partitions and break its ordering.
		err = &event.InvalidError{Detail: "message key does not match out_contract_code"}
	}
	return in, err
}

// allowed finds the merchant that acts on in, or says why this deployment
// may not act on it.
func (c *Consumer) allowed(in event.Intent) (*merchant, string) {
	id := in.MchID
	if id == "" {
		id = c.opts.DefaultMerchant
	}
	m := c.merchants[id]
	switch {
	case m == nil:
		return nil, "this deployment holds no keys for merchant " + strconv.Quote(id)
	case !c.apis[in.API]:
		return nil, "api " + string(in.API) + " is not enabled in this deployment"
	case m.subs != nil && in.SubMchID != "" && !m.subs[in.SubMchID]:
		return nil, "sub-merchant " + in.SubMchID + " is not on merchant " + id + "'s allowlist"
	}
	return m, ""
}

// reject answers a message that failed validation: a terminate-failed event
// if its request and contract can be identified, else a dead letter.
func (c *Consumer) reject(m kafka.Message, src event.Source, cause error) *output {
	detail := invalidDetail(cause)
	if req, code, ok := event.Identify(m.Value, m.Key); ok {
		r := event.Failed(req, code, "", "", src, event.Failure{Reason: event.ReasonInvalidRequest, Detail: detail}, 0, c.opts.Now())
		return &output{result: &r}
	}
	return &output{deadLetter: &kafka.Message{
		Topic: c.opts.DLQTopic,
		Key:   m.Key,
		Value: m.Value,
		Headers: append(append([]kafka.Header(nil), m.Headers...),
			kafka.Header{Key: event.HeaderDLQError, Value: []byte(detail)},
			kafka.Header{Key: event.HeaderDLQSourceTopic, Value: []byte(m.Topic)},
			kafka.Header{Key: event.HeaderDLQSourcePartition, Value: []byte(strconv.Itoa(m.Partition))},
			kafka.Header{Key: event.HeaderDLQSourceOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
		),
	}}
}

// invalidDetail is what a result or dead letter says about a validation
// failure.
func invalidDetail(err error) string {
	var ie *event.InvalidError
	if errors.As(err, &ie) {
		return ie.Detail
	}
	return err.Error()
}
