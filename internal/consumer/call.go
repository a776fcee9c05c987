package consumer

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/wxapi"
)

// call is the call policy: it resolves a claimed intent against WeChat Pay
// through client (the merchant's decorated Terminator, client.go). It
// queries first when the outcome of an earlier attempt is unknown (takenOver:
// a dead owner may have called), terminates, retries transient failures
// with backoff, and waits out systemic faults (the gate decorator holds the
// calls; their time does not count against the retry budget).
//
// sent reports whether a call may have reached WeChat Pay, so the claim must
// not be released. err is non-nil only when ctx ended first.
func (c *Consumer) call(ctx context.Context, in *intent, client Terminator, takenOver bool) (r event.Result, sent bool, err error) {
	req := wxapi.Request{
		API: wxapi.API(in.API), OutContractCode: in.OutContractCode, PlanID: in.PlanID, ContractID: in.ContractID,
		SubMchID: in.SubMchID, AppID: in.AppID, SpAppID: in.SpAppID, SubAppID: in.SubAppID, Remark: in.Remark,
	}
	attempts := 0
	unknown := takenOver
	b := c.opts.Retry.backoff()
	var last *wxapi.Error
	for {
		var res *event.Result
		var werr error
		if unknown {
			// An earlier attempt (ours, or a dead owner's) may have terminated
			// the contract: look before terminating again.
			ct, qerr := client.Query(ctx, req)
			switch {
			case qerr == nil && ct.Terminated():
				// Terminated before we called only if nobody of ours may have.
				t := event.Terminated(in.Intent, in.src, contract(ct), attempts, attempts == 0 && !takenOver, c.opts.Now())
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
			ct, terr := client.Terminate(ctx, req)
			if terr == nil {
				t := event.Terminated(in.Intent, in.src, contract(ct), attempts, false, c.opts.Now())
				res = &t
			} else {
				werr = terr
				rr, ok, qerr := c.permanent(ctx, client, req, in, terr, attempts)
				switch {
				case ok:
					res = &rr
				case qerr != nil:
					werr, unknown = qerr, true
				}
			}
		}
		if res != nil {
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
		if wxapi.Classify(werr) == wxapi.Systemic {
			b.Reset() // time held by a systemic fault does not count against the retry budget
			continue
		}
		d := b.NextBackOff()
		if d == backoff.Stop {
			return exhausted(in, werr, last, unknown, attempts, c.opts.Now()), sent, nil
		}
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
func (c *Consumer) permanent(ctx context.Context, client Terminator, req wxapi.Request, in *intent, err error, attempts int) (r event.Result, ok bool, qerr error) {
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
		ct, qerr := client.Query(ctx, req)
		switch {
		case qerr == nil && ct.Terminated():
			return event.Terminated(in.Intent, in.src, contract(ct), attempts, attempts == 1, c.opts.Now()), true, nil
		case qerr != nil && wxapi.Classify(qerr) != wxapi.Permanent:
			return event.Result{}, false, qerr
		}
	}
	return event.Failed(in.RequestID, in.OutContractCode, in.API, in.MchID, in.src, f, attempts, c.opts.Now()), true, nil
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
