package main

import (
	"context"
	"time"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/merchants"
	"github.com/wxterm/wxterm/internal/wxapi"
)

// Verdicts: whether the record and WeChat Pay agree.
const (
	verdictAgree     = "AGREE"
	verdictDisagree  = "DISAGREE"
	verdictUnsettled = "UNSETTLED" // a call in flight, or WeChat's termination pending
)

// stateNotFound is WeChat Pay's answer for a contract it does not have.
const stateNotFound = "not_found"

// live is WeChat Pay's word on a contract, and the verdict.
type live struct {
	MchID           string     `json:"mchid,omitempty"`
	API             string     `json:"api,omitempty"`
	State           string     `json:"state,omitempty"` // effective, terminated, pending, invalid, unknown, not_found
	RawState        string     `json:"contract_state,omitempty"`
	TerminationMode string     `json:"termination_mode,omitempty"`
	TerminatedAt    *time.Time `json:"terminated_at,omitempty"`
	Verdict         string     `json:"verdict,omitempty"`
	Why             string     `json:"why,omitempty"`
	// Error: the query could not be made or failed.
	Error string `json:"error,omitempty"`
}

// querier asks WeChat Pay with the merchants' clients.
type querier struct {
	clients map[string]*wxapi.Client
	def     string
	all     []merchants.Merchant
}

func newQuerier(f *merchants.Flags) (*querier, error) {
	ms, def, err := f.Clients()
	if err != nil {
		return nil, err
	}
	q := &querier{clients: make(map[string]*wxapi.Client, len(ms)), def: def, all: ms}
	for _, m := range ms {
		q.clients[m.MchID] = m.Client
	}
	return q, nil
}

func (q *querier) close() { merchants.Close(q.all) }

// query asks WeChat Pay about r's contract and compares. The query's
// identifiers come from the stored events: the API and merchant from any,
// plan_id, contract_id and the sub-merchant and app ids from the
// termination's contract (a record of failures only names no plan_id, so a
// papay or global_papay contract without a termination cannot be queried).
func (q *querier) query(ctx context.Context, r *report, outs []outcome) *live {
	req, mchID := wxapi.Request{OutContractCode: r.OutContractCode}, ""
	for _, o := range outs {
		res := o.result
		if res == nil {
			continue
		}
		if req.API == "" {
			req.API, mchID = wxapi.API(res.API), res.MchID
		}
		if c := res.Contract; c != nil && o.Kind == dedupe.KindTerminated {
			req.API, mchID = wxapi.API(res.API), res.MchID
			req.PlanID, req.ContractID, req.SubMchID = c.PlanID, c.ContractID, c.SubMchID
			req.AppID, req.SpAppID, req.SubAppID = c.AppID, c.SpAppID, c.SubAppID
		}
	}
	if mchID == "" {
		mchID = q.def
	}
	l := &live{MchID: mchID, API: string(req.API)}
	client, ok := q.clients[mchID]
	switch {
	case req.API == "":
		l.Error = "cannot query: the record names no API (no stored event)"
		return l
	case !ok:
		l.Error = "cannot query: merchant " + mchID + " is not configured"
		return l
	}
	ct, err := client.Query(ctx, req)
	switch {
	case wxapi.IsNotFound(err):
		l.State = stateNotFound
	case err != nil:
		l.Error = "query: " + err.Error()
		return l
	default:
		l.State, l.RawState, l.TerminationMode = string(ct.Status), ct.ContractState, string(ct.TerminationMode)
		if !ct.TerminatedAt.IsZero() {
			at := ct.TerminatedAt.UTC()
			l.TerminatedAt = &at
		}
	}
	l.Verdict, l.Why = compare(r, outs, l.State, l.TerminationMode)
	return l
}

// compare says whether the record (r, outs) and WeChat Pay's state (and
// termination mode) agree.
func compare(r *report, outs []outcome, state, mode string) (verdict, why string) {
	terminated, unknown, lastReason := false, r.UnknownRequestID != "", ""
	for _, o := range outs {
		if o.Kind == dedupe.KindTerminated {
			terminated = true
		} else if o.Kind == dedupe.KindUnknown {
			unknown = true
		}
		if o.Kind != dedupe.KindTerminated && o.result != nil && o.result.EventType == event.TypeFailed {
			lastReason = o.result.Reason
		}
	}
	wxTerminated := state == string(wxapi.StatusTerminated)
	switch {
	case state == string(wxapi.StatusPending), state == string(wxapi.StatusUnknown):
		return verdictUnsettled, "WeChat Pay's state is " + state + ": query again later"
	case terminated && wxTerminated:
		return verdictAgree, "both say terminated"
	case terminated:
		return verdictDisagree, "the record holds a termination; WeChat Pay says " + state
	case r.State == dedupe.StateInFlight:
		return verdictUnsettled, "a request is in flight; WeChat Pay says " + state
	case wxTerminated && unknown && (mode == string(wxapi.ModeMerchant) || mode == ""):
		// Retries ran out after a call that may have reached WeChat Pay
		// (the unknown mark): a merchant termination is most likely that
		// call. The next request for the contract queries first and
		// publishes the termination.
		return verdictUnsettled, "the record holds an unknown failure (a call that may have reached WeChat Pay); WeChat Pay says terminated by the merchant: likely our own call. The next request for the contract queries first and records the termination"
	case wxTerminated && unknown:
		return verdictDisagree, "the record holds an unknown failure; WeChat Pay says terminated by " + mode + " (another party)"
	case wxTerminated:
		return verdictDisagree, "the record holds no termination; WeChat Pay says terminated (by another party, or a lost record)"
	case state == stateNotFound && lastReason != event.ReasonNotFound:
		return verdictDisagree, "the last failure is " + lastReason + "; WeChat Pay has no such contract"
	case state != stateNotFound && lastReason == event.ReasonNotFound:
		return verdictDisagree, "the record says not_found; WeChat Pay says " + state
	}
	return verdictAgree, "not terminated; WeChat Pay says " + state
}
