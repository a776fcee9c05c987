package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/dedupe"
)

// errLostClaim means another worker took the contract over while this one
// worked on it: start again from the claim.
var errLostClaim = errors.New("claim lost")

// errLeaseUnconfirmed cancels the work of a worker whose lease no Extend
// (nor the claim) confirmed for a whole lease: Redis is away or too slow to
// answer, and another worker may have taken the contract over. No further
// call starts (bound checks the work context last, slots.go); the worker
// claims again, its sentMark keeping what it may have sent.
var errLeaseUnconfirmed = errors.New("lease unconfirmed: no renewal succeeded for a whole lease")

// claim takes in's contract in the dedupe store under a fresh owner token,
// waiting while another worker's live lease holds it (a replica that still
// has the partition, or a replay): waiting rather than committing past it.
func (c *Consumer) claim(ctx context.Context, in *intent) (dedupe.Claim, string, error) {
	owner := c.owner()
	start := time.Now()
	for {
		cl, err := retryStore(ctx, c, func() (dedupe.Claim, error) {
			return c.opts.Store.Claim(ctx, in.OutContractCode, in.RequestID, owner)
		})
		if err != nil {
			return cl, owner, err
		}
		if cl.Status != dedupe.Busy {
			c.opts.Metrics.observeStage(stageClaim, start)
			return cl, owner, nil
		}
		wait := time.Until(cl.LeaseUntil)
		wait = min(max(wait, 50*time.Millisecond), time.Second)
		if !sleep(ctx, wait) {
			return cl, owner, ctx.Err()
		}
	}
}

// answered reports whether the record already answers the claim's request
// (Done) or its contract (Terminated), so no call is made.
func answered(cl dedupe.Claim) bool {
	return cl.Status == dedupe.Done || cl.Status == dedupe.Terminated
}

// answerFromRecord answers an intent from its dedupe record: nothing when
// the answer was published, else the stored outcome (the previous worker
// died between storing and publishing) or, for a contract another request
// terminated, a contract-terminated event derived from it.
func (c *Consumer) answerFromRecord(ctx context.Context, in *intent, cl dedupe.Claim) error {
	if cl.Published {
		c.duplicate()
		return nil
	}
	hit := hitTerminatedOther
	if cl.Status == dedupe.Done {
		hit = hitUnpublished
	}
	c.opts.Metrics.DedupeHits.WithLabelValues(hit).Inc()
	var r event.Result
	if err := json.Unmarshal(cl.Outcome, &r); err != nil {
		return c.publish(ctx, c.unreadableOutcome(in, fmt.Errorf("stored outcome of %s unreadable: %w", in.OutContractCode, err)))
	}
	if cl.Status == dedupe.Done {
		if r.OutContractCode != in.OutContractCode || r.RequestID != in.RequestID {
			return c.publish(ctx, c.unreadableOutcome(in, fmt.Errorf("stored outcome of %s answers request %s, not %s", in.OutContractCode, r.RequestID, in.RequestID)))
		}
		return c.publish(ctx, output{result: &r, encoded: cl.Outcome, claimed: true})
	}
	if r.Contract == nil {
		return c.publish(ctx, c.unreadableOutcome(in, fmt.Errorf("stored outcome of %s lacks the contract", in.OutContractCode)))
	}
	t := event.Terminated(in.Intent, in.src, *r.Contract, 0, true, c.opts.Now())
	return c.publish(ctx, output{result: &t, claimed: true})
}

// callClaimed runs the call policy (call.go) while this worker owns the
// contract, keeping its lease alive. When the call does not finish (ctx
// ended: a shutdown, or a drain that timed out) it hands the claim back, so
// the next owner takes over at once and queries first (Release leaves the
// claim TakenOver), even if a call of ours may have reached WeChat Pay: the
// call was abandoned with ctx, so waiting out the lease would only hold the
// contract up to a lease longer (the partition, reassigned after a
// rebalance, waited Busy for it). mark carries this worker's own calls
// across claims it lost: after one may have been sent it queries first,
// even when the record was lost and the claim answers Claimed.
func (c *Consumer) callClaimed(ctx context.Context, in *intent, owner string, cl dedupe.Claim, calls semaphore, mark *sentMark) (event.Result, verdict, error) {
	workCtx, cancelWork := context.WithCancelCause(ctx)
	stopLease := c.keepLease(workCtx, cancelWork, in.OutContractCode, owner, cl.LeaseUntil)
	r, v, err := c.call(workCtx, in, in.mch.caller(calls), cl.Status == dedupe.TakenOver, mark)
	stopLease()
	cancelWork(nil)
	if err == nil {
		return r, v, nil
	}
	switch cause := context.Cause(workCtx); {
	case ctx.Err() != nil:
	case cause == errLostClaim:
		return r, v, errLostClaim
	case cause == errLeaseUnconfirmed:
		// Not released: Redis is unreachable, and whoever claims next,
		// this worker included, finds the lease run out and queries first.
		in.log.Warn("lease unconfirmed: calls stopped; claiming again", "err", cause)
		return r, v, fmt.Errorf("%w: %w", errLostClaim, cause)
	}
	rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = c.opts.Store.Release(rctx, in.OutContractCode, owner)
	cancel()
	return r, v, err
}

// outcomeKind is the dedupe kind r is stored as: a failure whose call may
// have terminated the contract is KindUnknown, so that the contract's next
// owner, for any request, queries before terminating.
func outcomeKind(r event.Result, v verdict) string {
	switch {
	case r.EventType == event.TypeTerminated:
		return dedupe.KindTerminated
	case v.unknown:
		return dedupe.KindUnknown
	}
	return dedupe.KindFailed
}

// complete stores r as the claim's outcome (of kind, see outcomeKind) and
// returns its encoding. The outcome is stored before it is published: a
// crash between the two leaves a record that the next delivery publishes
// without calling WeChat Pay. A record lost meanwhile (dedupe.ErrRecordLost)
// or taken over answers errLostClaim: claim again.
func (c *Consumer) complete(ctx context.Context, in *intent, owner, kind string, r event.Result) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode outcome of %s: %w", in.OutContractCode, err)
	}
	start := time.Now()
	_, err = retryStore(ctx, c, func() (struct{}, error) {
		return struct{}{}, c.opts.Store.Complete(ctx, in.OutContractCode, in.RequestID, owner, kind, b)
	})
	c.opts.Metrics.observeStage(stageStore, start)
	if errors.Is(err, dedupe.ErrNotOwner) {
		return nil, errLostClaim
	}
	return b, err
}

// markPublished records that the answer to a request is durable in Kafka.
// The offset may be committed even if marking fails: a later duplicate
// would republish the same event_id.
func (c *Consumer) markPublished(ctx context.Context, code, requestID string) {
	start := time.Now()
	_, _ = tracedStore(ctx, c, storeMarkPublished, func(ctx context.Context) (struct{}, error) { // trace.go
		return retryStore(ctx, c, func() (struct{}, error) {
			err := c.opts.Store.MarkPublished(ctx, code, requestID)
			if errors.Is(err, dedupe.ErrNotFound) {
				return struct{}{}, nil // expired record: nothing to mark
			}
			return struct{}{}, err
		})
	})
	c.opts.Metrics.observeStage(stageMark, start)
}

// keepLease extends the claim every third of the lease until stop is
// called; if the claim is lost it cancels the work with errLostClaim. A
// timer rather than a goroutine per intent: most intents finish long before
// the first renewal.
//
// An Extend that fails otherwise (Redis away) is tried again at the next
// renewal, but the lease it did not renew runs out: once a whole lease has
// passed since the last confirmation (the claim, whose lease ends at until,
// or the sending of the last successful Extend), another worker may take
// the contract over, so the work is cancelled with errLeaseUnconfirmed. A
// timer of its own does it, since an Extend to an unreachable Redis may
// block longer than the lease.
func (c *Consumer) keepLease(ctx context.Context, cancel context.CancelCauseFunc, code, owner string, until time.Time) (stop func()) {
	lease := c.opts.Store.Lease()
	every := lease / 3
	if d := time.Until(until); d <= 0 || d > lease {
		until = time.Now().Add(lease) // a store clock unlike ours (tests): the lease from now
	}
	expiry := time.AfterFunc(time.Until(until), func() { cancel(errLeaseUnconfirmed) })
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	t = time.AfterFunc(every, func() {
		sent := time.Now()
		err := c.opts.Store.Extend(ctx, code, owner)
		if errors.Is(err, dedupe.ErrNotOwner) {
			cancel(errLostClaim)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		if err == nil {
			expiry.Reset(time.Until(sent.Add(lease)))
		}
		t.Reset(every)
	})
	return func() {
		mu.Lock()
		stopped = true
		t.Stop()
		expiry.Stop()
		mu.Unlock()
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
		if err == nil || errors.Is(err, dedupe.ErrNotOwner) || errors.Is(err, dedupe.ErrNotFound) ||
			errors.Is(err, dedupe.ErrInvalidArgument) { // refused for good: retrying cannot help
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
