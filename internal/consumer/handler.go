package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/wxapi"
)

// errLostClaim means another worker took the contract over while this one
// worked on it: start again from the claim.
var errLostClaim = errors.New("claim lost")

// handle takes one message to its end and reports whether it is finished (its
// result, if any, durable in Kafka, so its offset may be committed). It
// returns false only when ctx is done first: the message is then redelivered
// and the dedupe record makes that harmless.
func (c *Consumer) handle(ctx context.Context, m kafka.Message) bool {
	src := event.Source{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}
	in, err := event.DecodeIntent(m.Value)
	if err == nil && len(m.Key) > 0 && string(m.Key) != in.OutContractCode {
		// A key other than the contract code would put one contract on two
		// partitions and break its ordering.
		err = &event.InvalidError{Detail: "message key does not match out_contract_code"}
	}
	if err != nil {
		return c.reject(ctx, m, src, err)
	}
	log := c.opts.Logger.With("request_id", in.RequestID, "out_contract_code", in.OutContractCode)
	mch, why := c.allowed(in)
	if why != "" {
		r := event.Failed(in.RequestID, in.OutContractCode, in.API, in.MchID, src,
			event.Failure{Reason: event.ReasonNotAllowed, Detail: why}, 0, c.opts.Now())
		return c.publish(ctx, r, nil) == nil
	}
	for {
		done, err := c.process(ctx, in, src, mch, log)
		if errors.Is(err, errLostClaim) {
			log.Warn("claim lost to another worker; claiming again")
			continue
		}
		if err != nil && ctx.Err() == nil {
			log.Error("process", "err", err) // unreachable by design: every error path retries until ctx is done
		}
		return done
	}
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

// reject answers an intent that failed validation: a terminate-failed event
// if its request and contract can be identified, else a dead letter.
func (c *Consumer) reject(ctx context.Context, m kafka.Message, src event.Source, cause error) bool {
	detail := cause.Error()
	var ie *event.InvalidError
	if errors.As(cause, &ie) {
		detail = ie.Detail
	}
	if req, code, ok := event.Identify(m.Value, m.Key); ok {
		r := event.Failed(req, code, "", "", src, event.Failure{Reason: event.ReasonInvalidRequest, Detail: detail}, 0, c.opts.Now())
		return c.publish(ctx, r, nil) == nil
	}
	dl := kafka.Message{
		Topic: c.opts.DLQTopic,
		Key:   m.Key,
		Value: m.Value,
		Headers: append(append([]kafka.Header(nil), m.Headers...),
			kafka.Header{Key: "dlq_error", Value: []byte(detail)},
			kafka.Header{Key: "dlq_source_topic", Value: []byte(m.Topic)},
			kafka.Header{Key: "dlq_source_partition", Value: []byte(strconv.Itoa(m.Partition))},
			kafka.Header{Key: "dlq_source_offset", Value: []byte(strconv.FormatInt(m.Offset, 10))},
		),
	}
	if err := c.write(ctx, dl); err != nil {
		return false
	}
	c.stats.DeadLetter.Add(1)
	c.opts.Metrics.DeadLetters.Inc()
	return true
}

// process runs the dedupe state machine for one valid intent.
func (c *Consumer) process(ctx context.Context, in event.Intent, src event.Source, mch *merchant, log interface {
	Warn(string, ...any)
	Error(string, ...any)
}) (bool, error) {
	owner := c.owner()
	var cl dedupe.Claim
	start := time.Now()
	for {
		var err error
		cl, err = retryStore(ctx, c, func() (dedupe.Claim, error) {
			return c.opts.Store.Claim(ctx, in.OutContractCode, in.RequestID, owner)
		})
		if err != nil {
			return false, err
		}
		if cl.Status != dedupe.Busy {
			c.opts.Metrics.observeStage(stageClaim, start)
			break
		}
		// Another worker holds a live lease (a replica that still has the
		// partition, or a replay): wait for it rather than commit past it.
		wait := time.Until(cl.LeaseUntil)
		wait = min(max(wait, 50*time.Millisecond), time.Second)
		if !sleep(ctx, wait) {
			return false, ctx.Err()
		}
	}

	switch cl.Status {
	case dedupe.Done:
		if cl.Published {
			c.duplicate("duplicate")
			return true, nil
		}
		c.opts.Metrics.DedupeHits.WithLabelValues("unpublished").Inc()
		// Stored but not published: the previous worker died in between.
		return c.publishStored(ctx, in, cl.Outcome)
	case dedupe.Terminated:
		if cl.Published {
			c.duplicate("duplicate")
			return true, nil
		}
		c.opts.Metrics.DedupeHits.WithLabelValues("terminated_other").Inc()
		var prev event.Result
		if err := json.Unmarshal(cl.Outcome, &prev); err != nil || prev.Contract == nil {
			return false, fmt.Errorf("stored outcome of %s unreadable: %v", in.OutContractCode, err)
		}
		r := event.Terminated(in, src, *prev.Contract, 0, true, c.opts.Now())
		return c.publish(ctx, r, &in) == nil, nil
	}

	// Claimed or TakenOver: this worker owns the contract.
	workCtx, cancelWork := context.WithCancelCause(ctx)
	stopLease := c.keepLease(workCtx, cancelWork, in.OutContractCode, owner)
	r, sent, err := c.call(workCtx, in, src, mch, cl.Status == dedupe.TakenOver)
	stopLease()
	cancelWork(nil)
	if err != nil {
		if context.Cause(workCtx) == errLostClaim && ctx.Err() == nil {
			return false, errLostClaim
		}
		// Stopping: hand the claim back unless a call may be in flight, in
		// which case the lease runs out and the next owner queries first.
		if !sent {
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = c.opts.Store.Release(rctx, in.OutContractCode, owner)
			cancel()
		}
		return false, err
	}

	b, err := json.Marshal(r)
	if err != nil {
		return false, err
	}
	kind := dedupe.KindFailed
	if r.EventType == event.TypeTerminated {
		kind = dedupe.KindTerminated
	}
	// Store the outcome before publishing: a crash between the two leaves a
	// record that the next delivery publishes without calling WeChat Pay.
	start = time.Now()
	_, err = retryStore(ctx, c, func() (struct{}, error) {
		return struct{}{}, c.opts.Store.Complete(ctx, in.OutContractCode, in.RequestID, owner, kind, b)
	})
	c.opts.Metrics.observeStage(stageStore, start)
	if errors.Is(err, dedupe.ErrNotOwner) {
		return false, errLostClaim
	}
	if err != nil {
		return false, err
	}
	return c.publishRaw(ctx, &r, b)
}

// keepLease extends the claim every third of the lease until stop is
// called; if the claim is lost it cancels the work with errLostClaim. A
// timer rather than a goroutine per intent: most intents finish long before
// the first renewal.
func (c *Consumer) keepLease(ctx context.Context, cancel context.CancelCauseFunc, code, owner string) (stop func()) {
	every := c.opts.Store.Lease() / 3
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	t = time.AfterFunc(every, func() {
		err := c.opts.Store.Extend(ctx, code, owner)
		if errors.Is(err, dedupe.ErrNotOwner) {
			cancel(errLostClaim)
			return
		}
		// Other errors: Redis is away; the next renewal tries again, and
		// Complete refuses if the lease was lost meanwhile.
		mu.Lock()
		if !stopped {
			t.Reset(every)
		}
		mu.Unlock()
	})
	return func() {
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
	}
}

// call resolves the intent against WeChat Pay: it queries first when the
// outcome of an earlier attempt is unknown, terminates, retries transient
// failures with backoff, and holds on systemic faults. sent reports whether a
// call may have reached WeChat Pay (so the claim must not be released).
func (c *Consumer) call(ctx context.Context, in event.Intent, src event.Source, mch *merchant, unknown bool) (r event.Result, sent bool, err error) {
	req := wxapi.Request{
		API: wxapi.API(in.API), OutContractCode: in.OutContractCode, PlanID: in.PlanID, ContractID: in.ContractID,
		SubMchID: in.SubMchID, AppID: in.AppID, SpAppID: in.SpAppID, SubAppID: in.SubAppID, Remark: in.Remark,
	}
	attempts := 0
	takenOver := unknown
	b := c.opts.Retry.backoff()
	var last *wxapi.Error
	for {
		if err := c.gate.enter(ctx); err != nil {
			return r, sent, err
		}
		var res *event.Result
		var werr error
		if unknown {
			// An earlier attempt (ours, or a dead owner's) may have terminated
			// the contract: look before terminating again.
			ct, qerr := c.query(ctx, mch, req)
			switch {
			case qerr == nil && ct.Terminated():
				// Terminated before we called only if nobody of ours may have.
				t := event.Terminated(in, src, contract(ct), attempts, attempts == 0 && !takenOver, c.opts.Now())
				res = &t
			case qerr == nil, wxapi.Classify(qerr) == wxapi.Permanent:
				unknown = false // effective, or not found: terminating is safe (a 404 answers then)
				continue
			default:
				werr = qerr
			}
		} else {
			attempts++
			sent = true
			ct, terr := c.terminate(ctx, mch, req)
			if terr == nil {
				t := event.Terminated(in, src, contract(ct), attempts, false, c.opts.Now())
				res = &t
			} else {
				werr = terr
				rr, ok, qerr := c.permanent(ctx, mch, req, in, src, terr, attempts)
				switch {
				case ok:
					res = &rr
				case qerr != nil:
					werr, unknown = qerr, true
				}
			}
		}
		if res != nil {
			c.reopened()
			return *res, sent, nil
		}
		if ctx.Err() != nil {
			return r, sent, ctx.Err()
		}
		var we *wxapi.Error
		if errors.As(werr, &we) {
			last = we
			if we.Sent {
				unknown = true
			}
		}
		switch wxapi.Classify(werr) {
		case wxapi.Systemic:
			if c.gate.trip(werr) {
				c.opts.Metrics.Systemic.Set(1)
				c.opts.Logger.Error("systemic WeChat Pay fault: holding all calls until it clears", "err", werr,
					"request_id", in.RequestID, "out_contract_code", in.OutContractCode)
			}
			b.Reset() // time held by a systemic fault does not count against the retry budget
			continue
		case wxapi.Permanent:
			// WeChat Pay judged the request, so it accepted our signature. A
			// transient failure proves nothing of the kind: the gate stays.
			c.reopened()
		}
		d := b.NextBackOff()
		if d == backoff.Stop {
			detail := werr.Error()
			if unknown {
				detail = "outcome unknown: an attempt may have reached WeChat Pay (a new intent for this contract finds out); " + detail
			}
			f := event.Failure{Reason: event.ReasonRetriesExhausted, Retryable: true, Detail: detail}
			if last != nil {
				f.ErrorCode, f.ErrorMessage, f.HTTPStatus = last.Code, last.Message, last.HTTPStatus
			}
			return event.Failed(in.RequestID, in.OutContractCode, in.API, in.MchID, src, f, attempts, c.opts.Now()), sent, nil
		}
		c.stats.Retries.Add(1)
		c.opts.Metrics.Retries.WithLabelValues(string(in.API)).Inc()
		if !sleep(ctx, d) {
			return r, sent, ctx.Err()
		}
	}
}

// permanent turns a permanent terminate failure into its result. Refusals
// that may mean "already terminated" are checked with a query, since the
// contract may have been terminated by the user or an earlier request.
// ok is false for failures that are not permanent.
//
// When that query itself fails transiently, the refusal cannot be judged
// yet: ok is false and qerr is the query's failure, to be retried like any
// other (the contract is queried again first).
func (c *Consumer) permanent(ctx context.Context, mch *merchant, req wxapi.Request, in event.Intent, src event.Source, err error, attempts int) (r event.Result, ok bool, qerr error) {
	var we *wxapi.Error
	if wxapi.Classify(err) != wxapi.Permanent || !errors.As(err, &we) {
		return event.Result{}, false, nil
	}
	f := event.Failure{Reason: event.ReasonRejected, ErrorCode: we.Code, ErrorMessage: we.Message, HTTPStatus: we.HTTPStatus}
	switch {
	case we.HTTPStatus == 404:
		f.Reason = event.ReasonNotFound
	case we.Code == "PARAM_ERROR" || errors.Is(err, wxapi.ErrInvalidRequest):
		// The request itself is wrong: answering at once.
	default:
		ct, qerr := c.query(ctx, mch, req)
		switch {
		case qerr == nil && ct.Terminated():
			return event.Terminated(in, src, contract(ct), attempts, attempts == 1, c.opts.Now()), true, nil
		case qerr != nil && wxapi.Classify(qerr) != wxapi.Permanent:
			return event.Result{}, false, qerr
		}
	}
	return event.Failed(in.RequestID, in.OutContractCode, in.API, in.MchID, src, f, attempts, c.opts.Now()), true, nil
}

// reopened records that WeChat Pay answered normally: a systemic hold ends.
func (c *Consumer) reopened() {
	if c.gate.ok() {
		c.opts.Metrics.Systemic.Set(0)
		c.opts.Logger.Info("systemic WeChat Pay fault cleared: calls resume")
	}
}

// terminate and query call WeChat Pay at the merchant's pace and measure it.
func (c *Consumer) terminate(ctx context.Context, m *merchant, req wxapi.Request) (*wxapi.Contract, error) {
	if err := m.limiter.wait(ctx); err != nil {
		return nil, err
	}
	c.stats.Calls.Add(1)
	start := time.Now()
	ct, err := m.client.Terminate(ctx, req)
	c.observe(m, req.API, "terminate", start, err)
	return ct, err
}

func (c *Consumer) query(ctx context.Context, m *merchant, req wxapi.Request) (*wxapi.Contract, error) {
	if err := m.limiter.wait(ctx); err != nil {
		return nil, err
	}
	c.stats.Queries.Add(1)
	start := time.Now()
	ct, err := m.client.Query(ctx, req)
	c.observe(m, req.API, "query", start, err)
	return ct, err
}

func (c *Consumer) observe(m *merchant, api wxapi.API, op string, start time.Time, err error) {
	c.opts.Metrics.observeCall(api, op, start, err)
	if wxapi.IsFrequencyLimited(err) {
		m.limiter.throttled()
	}
}

func contract(ct *wxapi.Contract) event.Contract {
	if ct == nil {
		return event.Contract{}
	}
	display := ct.DisplayName
	if display == "" {
		display = ct.ContractDisplayAccount
	}
	sp := ct.SpMchID
	if sp == "" {
		sp = ct.MchID
	}
	return event.Contract{
		ContractID: ct.ContractID, PlanID: ct.PlanID, OutContractCode: ct.OutContractCode, DisplayName: display,
		SpMchID: sp, SubMchID: ct.SubMchID, AppID: ct.AppID, SpAppID: ct.SpAppID, SubAppID: ct.SubAppID,
		ContractState: ct.State(), ContractSignedTime: ct.ContractSignedTime, ContractTerminatedTime: ct.ContractTerminatedTime,
		ContractTerminationMode: ct.ContractTerminationMode, ContractTerminationRemark: ct.ContractTerminationRemark,
		RepaymentDay: ct.RepaymentDay,
	}
}

// publishStored publishes an outcome stored by a worker that died before
// publishing it.
func (c *Consumer) publishStored(ctx context.Context, in event.Intent, stored []byte) (bool, error) {
	var r event.Result
	if err := json.Unmarshal(stored, &r); err != nil {
		return false, fmt.Errorf("stored outcome of %s unreadable: %w", in.OutContractCode, err)
	}
	if r.OutContractCode != in.OutContractCode || r.RequestID != in.RequestID {
		return false, fmt.Errorf("stored outcome of %s answers request %s, not %s", in.OutContractCode, r.RequestID, in.RequestID)
	}
	return c.publishRaw(ctx, &r, stored)
}

// publish encodes r, publishes it, and if it answers an intent with a dedupe
// record (in != nil), marks it published.
func (c *Consumer) publish(ctx context.Context, r event.Result, in *event.Intent) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if in == nil {
		if err := c.write(ctx, c.result(r.EventType, r.OutContractCode, b)); err != nil {
			return err
		}
		c.count(&r)
		return nil
	}
	_, err = c.publishRaw(ctx, &r, b)
	return err
}

// publishRaw publishes r, encoded as b, and marks it published.
func (c *Consumer) publishRaw(ctx context.Context, r *event.Result, b []byte) (bool, error) {
	code, requestID := r.OutContractCode, r.RequestID
	start := time.Now()
	if err := c.write(ctx, c.result(r.EventType, code, b)); err != nil {
		return false, err
	}
	c.opts.Metrics.observeStage(stagePublish, start)
	c.count(r)
	start = time.Now()
	// The result is durable in Kafka, so the offset may be committed even if
	// marking fails: a later duplicate would republish the same event_id.
	_, _ = retryStore(ctx, c, func() (struct{}, error) {
		err := c.opts.Store.MarkPublished(ctx, code, requestID)
		if errors.Is(err, dedupe.ErrNotFound) {
			return struct{}{}, nil // expired record: nothing to mark
		}
		return struct{}{}, err
	})
	c.opts.Metrics.observeStage(stageMark, start)
	return true, nil
}

func (c *Consumer) result(eventType, code string, b []byte) kafka.Message {
	return kafka.Message{
		Topic:   c.opts.ResultTopic,
		Key:     []byte(code),
		Value:   b,
		Headers: []kafka.Header{{Key: event.HeaderEventType, Value: []byte(eventType)}},
	}
}

// count records a published result.
func (c *Consumer) count(r *event.Result) {
	if r.EventType == event.TypeTerminated {
		c.stats.Terminated.Add(1)
	} else {
		c.stats.Failed.Add(1)
	}
	c.opts.Metrics.Outcomes.WithLabelValues(string(r.API), r.EventType, r.Reason).Inc()
}

func (c *Consumer) duplicate(status string) {
	c.stats.Duplicates.Add(1)
	c.opts.Metrics.DedupeHits.WithLabelValues(status).Inc()
}

// write publishes m with RequiredAcks=all, retrying until Kafka acknowledges
// it or ctx is done.
func (c *Consumer) write(ctx context.Context, m kafka.Message) error {
	b := c.opts.Retry.backoff()
	b.MaxElapsedTime = 0 // never give up on publishing: the intent is not done until it is
	for {
		err := c.pub.write(ctx, m)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.opts.Logger.Warn("publish", "topic", m.Topic, "out_contract_code", string(m.Key), "err", err)
		if !sleep(ctx, b.NextBackOff()) {
			return ctx.Err()
		}
	}
}

// retryStore runs a dedupe store operation until it succeeds, fails with a
// store verdict (ErrNotOwner, ErrNotFound), or ctx is done. While Redis is
// unreachable nothing proceeds: no claim, no call, no commit.
func retryStore[T any](ctx context.Context, c *Consumer, op func() (T, error)) (T, error) {
	b := c.opts.Retry.backoff()
	b.MaxElapsedTime = 0
	for {
		v, err := op()
		if err == nil || errors.Is(err, dedupe.ErrNotOwner) || errors.Is(err, dedupe.ErrNotFound) {
			c.storeErr.Store(nil)
			return v, err
		}
		if ctx.Err() != nil {
			return v, ctx.Err()
		}
		c.storeErr.Store(&err)
		c.opts.Logger.Warn("dedupe store", "err", err)
		if !sleep(ctx, b.NextBackOff()) {
			return v, ctx.Err()
		}
	}
}
