package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/tracing"
)

// output is one answer the consumer publishes, and what publishing it means.
type output struct {
	result     *event.Result  // a result event for the result topic
	encoded    []byte         // result's stored encoding, published byte for byte; nil: encode result
	deadLetter *kafka.Message // instead of a result: a message for the dead-letter topic
	claimed    bool           // answers a claimed request: mark it published in the dedupe store
	replayed   bool           // a replay's re-emit: the replay counts it, not the outcome metrics
}

// publish is the one way an answer leaves the consumer: it writes o to Kafka
// with acks=all, retrying until Kafka acknowledges it or ctx ends, counts it,
// and marks a claimed request published. nil means o, or what Kafka accepts
// in its place, is durable in Kafka.
//
// A record Kafka will never accept (refusals: too large, invalid) is not
// retried: it is replaced by a reduced form that still names the request,
// the reason and the source offset (reduce), down to a headers-only dead
// letter. Only when even that is refused, or the deployment may not write
// the topic at all, is the answer held, with the consumer unready
// (outputFaults), until Kafka accepts it or ctx ends.
func (c *Consumer) publish(ctx context.Context, o output) error {
	ctx, span := c.opts.Tracer.StartPublish(ctx, c.topicOf(o))
	msg, err := c.message(ctx, o)
	if err != nil {
		tracing.End(span, err)
		return err
	}
	start := time.Now()
	deadLettered := o.deadLetter != nil
	final := false // msg is the ladder's last step: write holds it rather than refuse it
	for step := 0; ; step++ {
		err = c.write(ctx, msg, final)
		var rf *refusedError
		if !errors.As(err, &rf) {
			break
		}
		var next kafka.Message
		next, final = c.reduce(o, msg, step, rf)
		c.opts.Logger.Error("kafka refused an answer: publishing a reduced form", "topic", msg.Topic,
			"key", truncate(string(msg.Key), 64), "step", step, "err", rf.err)
		c.opts.Metrics.Reduced.WithLabelValues(next.Topic).Inc()
		msg, deadLettered = next, next.Topic == c.opts.DLQTopic
	}
	tracing.End(span, err)
	if err != nil {
		return err
	}
	switch {
	case deadLettered:
		c.deadLettered()
	case !o.replayed:
		c.published(o.result)
	}
	if o.claimed {
		c.opts.Metrics.observeStage(stagePublish, start)
		c.markPublished(ctx, o.result.OutContractCode, o.result.RequestID)
	}
	return nil
}

func (c *Consumer) topicOf(o output) string {
	if o.deadLetter != nil {
		return o.deadLetter.Topic
	}
	return c.opts.ResultTopic
}

// message is the Kafka message of o: a result is keyed by its contract and
// carries its event type and the CloudEvents binary-mode headers (its body
// is the event unchanged); both carry ctx's trace context.
func (c *Consumer) message(ctx context.Context, o output) (kafka.Message, error) {
	if o.deadLetter != nil {
		m := *o.deadLetter
		m.Headers = c.opts.Tracer.Inject(ctx, m.Headers)
		return m, nil
	}
	b := o.encoded
	if b == nil {
		var err error
		if b, err = json.Marshal(o.result); err != nil {
			return kafka.Message{}, fmt.Errorf("encode result of %s: %w", o.result.RequestID, err)
		}
	}
	return kafka.Message{
		Topic:   c.opts.ResultTopic,
		Key:     []byte(o.result.OutContractCode),
		Value:   b,
		Headers: c.opts.Tracer.Inject(ctx, c.resultHeaders(o.result)),
	}, nil
}

// resultHeaders are a result's headers: event_type, then the CloudEvents
// attributes.
func (c *Consumer) resultHeaders(r *event.Result) []kafka.Header {
	ce, err := event.CloudEventsHeaders(*r, c.opts.CloudEventsSource)
	hs := make([]kafka.Header, 1, 1+len(ce)+2) // +2: traceparent, tracestate
	hs[0] = kafka.Header{Key: event.HeaderEventType, Value: []byte(r.EventType)}
	if err != nil {
		// Only a result no code path builds (no event_id, no time) fails:
		// publish it without the attributes rather than hold it.
		c.opts.Logger.Error("cloudevents headers", "request_id", r.RequestID, "err", err)
	}
	for _, h := range ce {
		hs = append(hs, kafka.Header{Key: h.Key, Value: []byte(h.Value)})
	}
	return hs
}

// write publishes m with RequiredAcks=all, retrying until Kafka acknowledges
// it or ctx is done: the intent is not done until its answer is durable.
// Kafka's answers are classified (refusalOf): a record it will never accept
// comes back as a *refusedError for publish to reduce, unless m is the
// final, headers-only dead letter; a configuration fault, a refused final
// dead letter, and a write failing transiently for stuckWrite, hold the
// consumer unready while retrying (holds).
func (c *Consumer) write(ctx context.Context, m kafka.Message, final bool) error {
	b := c.opts.Retry.backoff()
	b.MaxElapsedTime = 0
	held := false
	var failingSince time.Time
	defer func() {
		if held {
			c.faults.release(m.Topic)
		}
	}()
	for {
		err := c.pub.write(ctx, m)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if failingSince.IsZero() {
			failingSince = time.Now()
		}
		switch kind := refusalOf(err); {
		case kind == refusedRecord && !final:
			return &refusedError{err: err}
		case holds(kind, time.Since(failingSince)):
			c.faults.hold(m.Topic, err, !held)
			held = true
			c.opts.Logger.Error("kafka refuses the consumer's output: holding the partition until it clears", "topic", m.Topic,
				"out_contract_code", string(m.Key), "err", err)
		default:
			c.opts.Logger.Warn("publish", "topic", m.Topic, "out_contract_code", string(m.Key), "err", err)
		}
		if !sleep(ctx, b.NextBackOff()) {
			return ctx.Err()
		}
	}
}

// refusal classifies a failed write.
type refusal int

const (
	transient     refusal = iota // retry: a broker or leader away, a timeout
	refusedRecord                // this record will never be accepted: reduce it
	configFault                  // the deployment may not write here: hold, unready
)

// kafkaRefusals classifies Kafka's error codes (kafka-go's names; every code
// not listed is transient). Source: the Produce API's error codes in
// Kafka's protocol guide and org.apache.kafka.common.protocol.Errors.
var kafkaRefusals = map[kafka.Error]refusal{
	kafka.MessageSizeTooLarge:         refusedRecord, // over the topic's max.message.bytes
	kafka.RecordListTooLarge:          refusedRecord,
	kafka.InvalidRecord:               refusedRecord, // e.g. no key on a compacted topic
	kafka.InvalidTimestamp:            refusedRecord,
	kafka.UnsupportedForMessageFormat: refusedRecord,
	kafka.TopicAuthorizationFailed:    configFault,
	kafka.ClusterAuthorizationFailed:  configFault,
	kafka.SASLAuthenticationFailed:    configFault,
	kafka.InvalidTopic:                configFault,
	kafka.UnknownTopicOrPartition:     configFault, // the topic is missing (or not visible to this principal)
	kafka.InvalidRequiredAcks:         configFault,
	kafka.PolicyViolation:             configFault,
}

// stuckWrite is how long one write may fail with errors classified
// transient (a code kafkaRefusals does not list included) before it holds
// the consumer unready like a configuration fault: retrying goes on, but a
// write Kafka never takes is never silent.
const stuckWrite = time.Minute

// holds reports whether a write failing with kind, for failingFor since its
// first failure, holds the consumer unready (wxterm_output_fault).
func holds(kind refusal, failingFor time.Duration) bool {
	return kind != transient || failingFor >= stuckWrite
}

func refusalOf(err error) refusal {
	var ke kafka.Error
	if errors.As(err, &ke) {
		return kafkaRefusals[ke]
	}
	return transient
}

// refusedError is a record Kafka will never accept.
type refusedError struct{ err error }

func (e *refusedError) Error() string { return "kafka refused the record: " + e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

// Headers of a reduced output: what Kafka refused and why. A reduced dead
// letter also names the request, when known, since its body may be gone.
const (
	HeaderRefused          = "wxterm_refused"            // Kafka's refusal of the full form
	HeaderRefusedTopic     = "wxterm_refused_topic"      // the topic that refused it
	HeaderRefusedRequestID = "wxterm_refused_request_id" // the request it answers, if known
	HeaderRefusedContract  = "wxterm_refused_out_contract_code"
)

// Bounds of what a reduced output keeps.
const (
	maxReducedValue  = 256 // bytes of a dead letter's value kept in its reduced form
	maxReducedDetail = 200 // bytes of an error or detail kept
)

// reduce returns what to publish in place of m, which Kafka refused at step
// (0: the full form). The ladder:
//
//	result:      reduced result (the contract's identity, no free text; detail
//	             names the refusal) → headers-only dead letter
//	dead letter: reduced dead letter (DLQ headers, key, a prefix of the value)
//	             → headers-only dead letter
//
// A reduced dead letter always has a key (the original's, else one naming
// its source), since a compacted topic refuses a record without one. The
// headers-only dead letter is final: write holds it rather than refuse it.
func (c *Consumer) reduce(o output, m kafka.Message, step int, rf *refusedError) (msg kafka.Message, final bool) {
	why := truncate(rf.err.Error(), maxReducedDetail)
	if o.result != nil && m.Topic == c.opts.ResultTopic && step == 0 {
		r := reducedResult(*o.result, fmt.Sprintf("reduced: %s refused the full event: %s", m.Topic, why))
		if b, err := json.Marshal(r); err == nil {
			return kafka.Message{Topic: m.Topic, Key: m.Key, Value: b, Headers: c.resultHeadersKeepTrace(&r, m.Headers)}, false
		}
	}
	dl := kafka.Message{Topic: c.opts.DLQTopic, Headers: c.refusalHeaders(o, m, why), Key: deadLetterKey(o)}
	if step == 0 && m.Topic == c.opts.DLQTopic {
		if len(m.Key) > 0 {
			dl.Key = []byte(truncate(string(m.Key), maxReducedValue))
		}
		dl.Value = []byte(truncate(string(m.Value), maxReducedValue))
		return dl, false
	}
	return dl, true
}

// deadLetterKey keys a dead letter that lost its own key: the result's
// contract, or where the message came from.
func deadLetterKey(o output) []byte {
	if o.result != nil {
		return []byte(o.result.OutContractCode)
	}
	hs := o.deadLetter.Headers
	return []byte(headerValue(hs, event.HeaderDLQSourceTopic) + "/" + headerValue(hs, event.HeaderDLQSourcePartition) +
		"@" + headerValue(hs, event.HeaderDLQSourceOffset))
}

// headerValue is the first value of header key in hs, or "".
func headerValue(hs []kafka.Header, key string) string { return tracing.Headers(hs).Get(key) }

// resultHeadersKeepTrace rebuilds a result's headers for r, keeping the
// trace context already injected into old.
func (c *Consumer) resultHeadersKeepTrace(r *event.Result, old []kafka.Header) []kafka.Header {
	hs := c.resultHeaders(r)
	for _, h := range old {
		if h.Key == traceParent || h.Key == traceState {
			hs = append(hs, h)
		}
	}
	return hs
}

// refusalHeaders are the headers of a reduced dead letter: the DLQ headers
// (error, source topic, partition, offset), the refusal, and the request.
func (c *Consumer) refusalHeaders(o output, m kafka.Message, why string) []kafka.Header {
	var hs []kafka.Header
	if o.deadLetter != nil {
		for _, h := range o.deadLetter.Headers {
			switch h.Key {
			case event.HeaderDLQError, event.HeaderDLQSourceTopic, event.HeaderDLQSourcePartition, event.HeaderDLQSourceOffset:
				hs = append(hs, kafka.Header{Key: h.Key, Value: []byte(truncate(string(h.Value), maxReducedDetail))})
			}
		}
	} else {
		r := o.result
		reason := r.EventType
		if r.Reason != "" {
			reason += ": " + r.Reason
		}
		hs = append(hs,
			kafka.Header{Key: event.HeaderDLQError, Value: []byte(truncate(reason, maxReducedDetail))},
			kafka.Header{Key: event.HeaderDLQSourceTopic, Value: []byte(r.Source.Topic)},
			kafka.Header{Key: event.HeaderDLQSourcePartition, Value: []byte(strconv.Itoa(r.Source.Partition))},
			kafka.Header{Key: event.HeaderDLQSourceOffset, Value: []byte(strconv.FormatInt(r.Source.Offset, 10))},
			kafka.Header{Key: HeaderRefusedRequestID, Value: []byte(r.RequestID)},
			kafka.Header{Key: HeaderRefusedContract, Value: []byte(r.OutContractCode)},
			kafka.Header{Key: event.HeaderEventType, Value: []byte(r.EventType)},
		)
	}
	return append(hs,
		kafka.Header{Key: HeaderRefused, Value: []byte(why)},
		kafka.Header{Key: HeaderRefusedTopic, Value: []byte(m.Topic)},
	)
}

// reducedResult is r without what can make it large: the contract keeps its
// identity and state, free text (remarks, names, WeChat's message) goes;
// detail says why. Its event_id is r's: downstream still dedupes it.
func reducedResult(r event.Result, detail string) event.Result {
	if ct := r.Contract; ct != nil {
		r.Contract = &event.Contract{
			ContractID: truncate(ct.ContractID, 64), OutContractCode: truncate(ct.OutContractCode, 64),
			ContractState: truncate(ct.ContractState, 64), ContractTerminatedTime: truncate(ct.ContractTerminatedTime, 64),
			State: truncate(ct.State, 32), TerminationMode: truncate(ct.TerminationMode, 32), TerminatedAt: ct.TerminatedAt,
		}
	}
	r.ErrorMessage = ""
	r.ErrorCode = truncate(r.ErrorCode, 64)
	r.Detail = detail
	return r
}

// truncate cuts s to at most n bytes, on a UTF-8 boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// outputFaults are the topics Kafka refuses the consumer's output on in a
// way that holds a partition (a configuration fault, or a refused
// headers-only dead letter): while any write is held the consumer is
// unready.
type outputFaults struct {
	mu     sync.Mutex
	topics map[string]*heldTopic
	gauge  prometheus.Gauge
}

type heldTopic struct {
	writes int   // writes held on the topic
	last   error // the latest refusal
}

// hold records err for a held write on topic; first counts the write.
func (f *outputFaults) hold(topic string, err error, first bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.topics == nil {
		f.topics = make(map[string]*heldTopic)
	}
	h := f.topics[topic]
	if h == nil {
		h = &heldTopic{}
		f.topics[topic] = h
	}
	if first {
		h.writes++
	}
	h.last = err
	f.gauge.Set(1)
}

// release ends a held write on topic (it went through, or its context ended).
func (f *outputFaults) release(topic string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h := f.topics[topic]; h != nil {
		if h.writes--; h.writes <= 0 {
			delete(f.topics, topic)
		}
	}
	if len(f.topics) == 0 {
		f.gauge.Set(0)
	}
}

// err says which topics refuse the consumer's output, or nil.
func (f *outputFaults) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var all []error
	for topic, h := range f.topics {
		all = append(all, fmt.Errorf("%s (%d writes held): %w", topic, h.writes, h.last))
	}
	if len(all) == 0 {
		return nil
	}
	return fmt.Errorf("kafka refuses the consumer's output: %w", errors.Join(all...))
}

// unreadableOutcome is the answer to an intent whose stored outcome cannot
// be read (corrupt JSON, or an event that is not the request's): a dead
// letter of the intent naming the cause and the source offset. Nothing is
// published as the request's result, since what WeChat Pay did is unknown
// to this worker; an operator repairs or deletes the record and redrives
// the dead letter (docs/operators.md).
func (c *Consumer) unreadableOutcome(in *intent, cause error) output {
	b, _ := json.Marshal(in.Intent)
	in.log.Error("stored outcome unreadable: dead-lettering the intent", "err", cause)
	return c.unreadableDeadLetter([]byte(in.OutContractCode), b, in.src, cause)
}

// unreadableDeadLetter is the dead letter of a message (key, value, from
// src) whose stored outcome cannot be read: dlq_error names the cause.
func (c *Consumer) unreadableDeadLetter(key, value []byte, src event.Source, cause error) output {
	return output{deadLetter: &kafka.Message{
		Topic: c.opts.DLQTopic,
		Key:   key,
		Value: value,
		Headers: []kafka.Header{
			{Key: event.HeaderDLQError, Value: []byte(truncate(cause.Error(), maxReducedDetail))},
			{Key: event.HeaderDLQSourceTopic, Value: []byte(src.Topic)},
			{Key: event.HeaderDLQSourcePartition, Value: []byte(strconv.Itoa(src.Partition))},
			{Key: event.HeaderDLQSourceOffset, Value: []byte(strconv.FormatInt(src.Offset, 10))},
		},
	}}
}
