package consumer

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/wxapi"
)

// sentMark is what one message's worker remembers of its own terminate
// calls across lost claims (handle keeps it for the message's life): once a
// call may have been sent, the next claim queries first even if the record
// was lost and the claim answers Claimed, and the call's time tells WeChat's
// termination by us from one before us.
type sentMark struct {
	first    time.Time // our first terminate attempt; zero if none was made
	attempts int       // terminate attempts made so far
}

// sent reports whether a terminate of ours may have reached WeChat Pay.
func (m *sentMark) sent() bool { return m.attempts > 0 }

// attempt notes a terminate attempt made at now.
func (m *sentMark) attempt(now time.Time) {
	if m.attempts == 0 {
		m.first = now
	}
	m.attempts++
}

// verdict is what call knows beyond its result.
type verdict struct {
	// unknown: the result is a failure whose effect no query settled (a call
	// may have terminated the contract): it is stored as
	// dedupe.KindUnknown, so the contract's next owner queries first.
	unknown bool
}

// errPending stands for a contract whose termination is under way at WeChat
// Pay (papay's TERMINATE_PENDING) or whose state no page documents: query it
// again later, never terminate it again, never report a failure on it
// before the retry budget ends.
var errPending = errors.New("termination pending at WeChat Pay: querying again")

// errUnconfirmed stands for a terminate WeChat Pay accepted (2xx) whose
// answer does not say the contract is terminated (seed 000's example
// answers CONTRACT_STATE_EFFECTIVE): query until a query says terminated;
// never terminate again, never publish the answer as a termination.
var errUnconfirmed = errors.New("terminate accepted but the contract does not read terminated: querying again")

// call is the call policy: it resolves a claimed intent against WeChat Pay
// through client (the merchant's decorated Terminator, client.go). It
// queries first when the outcome of an earlier attempt is unknown (takenOver:
// a dead owner may have called; mark.sent(): this worker did, under a claim
// it lost), terminates, retries transient failures with backoff, polls a
// pending termination, and waits out systemic faults (the gate decorator
// holds the calls; their time does not count against the retry budget).
//
// err is non-nil only when ctx ended first.
func (c *Consumer) call(ctx context.Context, in *intent, client Terminator, takenOver bool, mark *sentMark) (r event.Result, v verdict, err error) {
	req := wxapi.Request{
		API: wxapi.API(in.API), OutContractCode: in.OutContractCode, PlanID: in.PlanID, ContractID: in.ContractID,
		SubMchID: in.SubMchID, AppID: in.AppID, SpAppID: in.SpAppID, SubAppID: in.SubAppID, Remark: in.Remark,
	}
	// unknown: an earlier call may have terminated the contract; query
	// before terminating. pending: it is being terminated; query only.
	unknown := takenOver || mark.sent()
	unsettled := unknown // no query has told the contract's state since a call that may have been sent
	pending := false
	// accepted: WeChat answered our terminate 2xx but did not say the
	// contract is terminated: query only, as for pending.
	accepted := false
	b := c.opts.Retry.backoff()
	var last *wxapi.Error
	for {
		var res *event.Result
		var werr error
		if unknown || pending || accepted {
			ct, qerr := client.Query(ctx, req)
			unsettled = unsettled && qerr != nil
			switch {
			case qerr == nil && ct.Terminated():
				t := event.Terminated(in.Intent, in.src, contract(ct), mark.attempts, c.already(ct, mark, takenOver), c.opts.Now())
				res = &t
			case qerr == nil && ct.Pending():
				pending, werr = true, errPending
			case qerr == nil && accepted:
				werr = errUnconfirmed // effective after our accepted terminate: never terminate again
			case qerr == nil && pending:
				// Pending, then effective again: WeChat undid the termination
				// (no page says it can). Terminating again is what the intent asks.
				pending, unknown = false, false
				continue
			case qerr == nil:
				unknown = false // effective or invalid: terminating is safe
				continue
			case wxapi.IsNotFound(qerr):
				f := failure(event.ReasonNotFound, qerr)
				t := event.Failed(in.RequestID, in.OutContractCode, in.API, in.MchID, in.src, f, mark.attempts, c.opts.Now())
				res = &t
			case wxapi.Classify(qerr) == wxapi.Permanent && !pending:
				unknown = false // the terminate's own answer judges it
				continue
			default:
				werr = qerr
			}
		} else {
			mark.attempt(c.opts.Now())
			ct, terr := client.Terminate(ctx, req)
			switch {
			case terr == nil && ct.Pending():
				pending, werr = true, errPending // accepted, under way: never terminate again
			case terr == nil && !ct.Terminated():
				accepted, werr = true, errUnconfirmed
			case terr == nil:
				// The answer may say who terminated it and when (credit
				// repayment's contract_info, seed 000): judged like a query's.
				t := event.Terminated(in.Intent, in.src, contract(ct), mark.attempts, c.already(ct, mark, takenOver), c.opts.Now())
				res = &t
			default:
				werr = terr
				rr, judged, p, qerr := c.permanent(ctx, client, req, in, terr, mark, takenOver)
				switch {
				case judged:
					res = &rr
				case p:
					pending, werr = true, errPending
				case qerr != nil:
					werr, unknown = qerr, true
				}
			}
		}
		if res != nil {
			v.unknown = unknown || pending || unsettled // a failure that settled nothing keeps the next owner querying first
			return *res, v, nil
		}
		if ctx.Err() != nil {
			return r, v, ctx.Err()
		}
		var we *wxapi.Error
		if errors.As(werr, &we) {
			last = we
			if we.Sent {
				unknown, unsettled = true, true
			}
		}
		if wxapi.Classify(werr) == wxapi.Systemic {
			b.Reset() // time held by a systemic fault does not count against the retry budget
			continue
		}
		d := b.NextBackOff()
		if d == backoff.Stop {
			// A call of ours (or a dead owner's) may have terminated the
			// contract and no answer since says whether it did.
			v.unknown = unknown || pending || unsettled || accepted
			return exhausted(in, werr, last, v.unknown, mark.attempts, c.opts.Now()), v, nil
		}
		c.opts.Metrics.Retries.WithLabelValues(string(in.API)).Inc()
		if !sleep(ctx, d) {
			return r, v, ctx.Err()
		}
	}
}

// already decides from WeChat Pay's word whether a terminated contract was
// terminated before any call of ours (already_terminated):
//   - terminated by someone else than the merchant (its user, customer
//     service, the platform, the system), or in the merchant's console
//     (papay's WEPAY_WEB_TERMINATE, never an API call): already;
//   - terminated by the merchant's API when a dead owner's call (takenOver)
//     may have done it at any time: ours;
//   - when a terminate of ours was sent: ours, unless WeChat's time is
//     before our first attempt by more than Options.ClockSkew. WeChat stamps
//     the time with its own clock in whole seconds, so a clock behind ours
//     makes our own termination look earlier than our call; the price of the
//     slack is that another merchant API call landing within ClockSkew
//     before ours is reported as ours. No time (global papay's 204, credit
//     without contract_info) is ours;
//   - no call of ours: already.
//
// Our own termination is thus never reported as already_terminated.
func (c *Consumer) already(ct *wxapi.Contract, mark *sentMark, takenOver bool) bool {
	if !ct.Terminated() {
		return false
	}
	switch ct.TerminationMode {
	case wxapi.ModeUser, wxapi.ModeCustomerService, wxapi.ModePlatform, wxapi.ModeSystem:
		return true
	}
	if ct.Console() {
		return true
	}
	if takenOver {
		return false
	}
	if mark.sent() {
		return !ct.TerminatedAt.IsZero() && ct.TerminatedAt.Before(mark.first.Add(-c.opts.ClockSkew))
	}
	return true
}

// permanent judges a terminate failure that WeChat Pay's answer settles.
// judged is false for failures to retry. Refusals that may mean "already
// terminated" (wxapi.MayBeTerminated: global 403 CONTRACT_NOT_EXIST, 400
// INVALID_REQUEST, an undocumented 4xx) are checked with a query: terminated
// → contract-terminated (already_terminated by already's rule), no such
// contract → not_found, pending → pending (poll it), effective or invalid →
// rejected with the terminate's answer. When that query itself fails
// transiently, qerr is its failure, to be retried like any other (the
// contract is queried again first).
func (c *Consumer) permanent(ctx context.Context, client Terminator, req wxapi.Request, in *intent, err error, mark *sentMark, takenOver bool) (r event.Result, judged, pending bool, qerr error) {
	if wxapi.Classify(err) != wxapi.Permanent {
		return r, false, false, nil
	}
	reason := event.ReasonRejected
	switch {
	case wxapi.IsNotFound(err):
		reason = event.ReasonNotFound
	case errors.Is(err, wxapi.ErrInvalidRequest) || isCode(err, wxapi.CodeParamError):
		// The request itself is wrong: answering at once.
	case wxapi.MayBeTerminated(err):
		ct, qerr := client.Query(ctx, req)
		switch {
		case qerr == nil && ct.Terminated():
			return event.Terminated(in.Intent, in.src, contract(ct), mark.attempts, c.already(ct, mark, takenOver), c.opts.Now()), true, false, nil
		case qerr == nil && ct.Pending():
			return r, false, true, nil
		case wxapi.IsNotFound(qerr):
			reason, err = event.ReasonNotFound, qerr
		case qerr != nil && wxapi.Classify(qerr) != wxapi.Permanent:
			return r, false, false, qerr
		}
	}
	return event.Failed(in.RequestID, in.OutContractCode, in.API, in.MchID, in.src, failure(reason, err), mark.attempts, c.opts.Now()), true, false, nil
}

// failure is a terminate-failed event's failure for reason, with WeChat
// Pay's answer in err, if any.
func failure(reason string, err error) event.Failure {
	f := event.Failure{Reason: reason}
	var we *wxapi.Error
	if errors.As(err, &we) {
		f.ErrorCode, f.ErrorMessage, f.HTTPStatus = we.Code, we.Message, we.HTTPStatus
	}
	if f.ErrorCode == "" {
		f.Detail = err.Error()
	}
	return f
}

// isCode reports whether err is WeChat Pay's answer with that code.
func isCode(err error, code string) bool {
	var we *wxapi.Error
	return errors.As(err, &we) && we.Code == code
}

// exhausted is the result of an intent whose transient failures outlasted
// the retry budget; last is the last answer WeChat Pay gave, if any.
func exhausted(in *intent, werr error, last *wxapi.Error, unknown bool, attempts int, now time.Time) event.Result {
	detail := werr.Error()
	if unknown {
		detail = "outcome unknown: an attempt may have reached WeChat Pay (a new intent for this contract finds out); " + detail
	}
	f := event.Failure{Reason: event.ReasonRetriesExhausted, Retryable: true, Detail: detail}
	if last != nil {
		f.ErrorCode, f.ErrorMessage, f.HTTPStatus = last.Code, last.Message, last.HTTPStatus
	}
	return event.Failed(in.RequestID, in.OutContractCode, in.API, in.MchID, in.src, f, attempts, now)
}
