package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/dedupe"
)

// stateAbsent is the state of a contract without a record.
const stateAbsent = "absent"

// target is one thing asked about: a contract, and optionally one of its
// requests. A request id alone cannot be looked up (records are keyed by
// contract), so a request is named code/request_id: out_contract_code is
// letters and digits only (schemas/intent.v1.json), so the first / splits.
type target struct {
	code, requestID string
}

// codePattern is the schema's out_contract_code pattern.
var codePattern = regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)

func parseTarget(s string) (target, error) {
	code, req, _ := strings.Cut(s, "/")
	if !codePattern.MatchString(code) {
		return target{}, fmt.Errorf("%q: want out_contract_code or out_contract_code/request_id (the code is 1 to 64 letters and digits)", s)
	}
	if strings.Contains(s, "/") && req == "" {
		return target{}, fmt.Errorf("%q: empty request_id after /", s)
	}
	return target{code, req}, nil
}

// report is what status says about one target; -json prints it as is.
type report struct {
	OutContractCode string `json:"out_contract_code"`
	RequestID       string `json:"request_id,omitempty"` // the request asked about
	// Found: the record exists and, for a request, something answers it or
	// it is the request in flight.
	Found bool   `json:"found"`
	State string `json:"state"` // in_flight, done, or absent
	Owner string `json:"owner,omitempty"`
	// LeaseUntil and LeaseLeftMs describe the current or last claim's
	// lease; LeaseLeftMs is negative once it expired.
	LeaseUntil    *time.Time `json:"lease_until,omitempty"`
	LeaseLeftMs   int64      `json:"lease_left_ms,omitempty"`
	LeaseLive     bool       `json:"lease_live"`
	LastRequestID string     `json:"last_request_id,omitempty"` // the request claimed last
	TakenOver     bool       `json:"taken_over"`
	// UnknownRequestID is the request whose failure may have reached
	// WeChat Pay: the next claim queries first.
	UnknownRequestID string    `json:"unknown_request_id,omitempty"`
	Attempts         int       `json:"attempts"`
	TTLMs            int64     `json:"ttl_ms,omitempty"` // until Redis drops the record
	Outcomes         []outcome `json:"outcomes,omitempty"`
	Answer           *answer   `json:"answer,omitempty"` // for RequestID
	WeChat           *live     `json:"wechat,omitempty"` // with -query
	Error            string    `json:"error,omitempty"`
}

// outcome is one stored outcome, decoded.
type outcome struct {
	RequestID         string     `json:"request_id"`
	Kind              string     `json:"kind"` // terminated, failed, unknown
	EventType         string     `json:"event_type,omitempty"`
	Reason            string     `json:"reason,omitempty"`
	AlreadyTerminated bool       `json:"already_terminated,omitempty"`
	OccurredAt        *time.Time `json:"occurred_at,omitempty"`
	Published         bool       `json:"published"`
	// Undecodable holds why the stored event could not be read.
	Undecodable string `json:"undecodable,omitempty"`

	result *event.Result
}

// answer is what answers the request asked about.
type answer struct {
	// Own: the request's own outcome; else derived from the termination
	// FromRequestID recorded (the request is answered already terminated).
	Own           bool   `json:"own"`
	FromRequestID string `json:"from_request_id"`
	EventType     string `json:"event_type,omitempty"`
	Reason        string `json:"reason,omitempty"`
	Published     bool   `json:"published"`
}

// run reads every target's record and, with -query, WeChat Pay's state.
// An error here (Redis unreachable, bad merchant settings) stops the
// command; an error about one target goes into its report.
func run(ctx context.Context, c *config) ([]report, error) {
	rdb, err := c.redis.Client()
	if err != nil {
		return nil, err
	}
	defer rdb.Close()
	store := dedupe.New(rdb, dedupe.Options{Prefix: c.dedupePrefix})
	var q *querier
	if c.query {
		if q, err = newQuerier(&c.merchants); err != nil {
			return nil, err
		}
		defer q.close()
	}
	now := time.Now()
	out := make([]report, 0, len(c.targets))
	for _, t := range c.targets {
		rctx, cancel := context.WithTimeout(ctx, c.timeout)
		r, recs := lookup(rctx, store, t, now)
		cancel()
		if q != nil && r.Error == "" && r.State != stateAbsent {
			qctx, cancel := context.WithTimeout(ctx, c.timeout)
			r.WeChat = q.query(qctx, &r, recs)
			cancel()
		}
		out = append(out, r)
	}
	return out, nil
}

// lookup reads one target's record into a report.
func lookup(ctx context.Context, store *dedupe.Store, t target, now time.Time) (report, []outcome) {
	r := report{OutContractCode: t.code, RequestID: t.requestID, State: stateAbsent}
	rec, err := store.Get(ctx, t.code)
	if errors.Is(err, dedupe.ErrNotFound) {
		return r, nil
	}
	if err != nil {
		r.Error = err.Error()
		return r, nil
	}
	ttl, err := store.TTL(ctx, t.code)
	switch {
	case errors.Is(err, dedupe.ErrNotFound): // expired between the two reads
		return r, nil
	case err != nil:
		r.Error = err.Error()
		return r, nil
	}
	r.State, r.Owner, r.LastRequestID = rec.State, rec.Owner, rec.RequestID
	r.TakenOver, r.UnknownRequestID, r.Attempts, r.TTLMs = rec.TakenOver, rec.Unknown, rec.Attempts, ttl.Milliseconds()
	if !rec.LeaseUntil.IsZero() {
		until := rec.LeaseUntil.UTC()
		r.LeaseUntil, r.LeaseLeftMs = &until, until.Sub(now).Milliseconds()
		r.LeaseLive = rec.State == dedupe.StateInFlight && until.After(now)
	}
	for _, o := range rec.Outcomes {
		r.Outcomes = append(r.Outcomes, decodeOutcome(o))
	}
	r.Found = t.requestID == ""
	if t.requestID != "" {
		if a, ok := rec.Answer(t.requestID); ok {
			r.Found = true
			r.Answer = &answer{Own: a.Own, FromRequestID: a.RequestID, Published: a.Published}
			if o := decodeOutcome(dedupe.Outcome{Event: a.Event}); o.result != nil {
				r.Answer.EventType, r.Answer.Reason = o.EventType, o.Reason
			}
		} else if rec.State == dedupe.StateInFlight && rec.RequestID == t.requestID {
			r.Found = true // being worked on: no answer yet
		}
	}
	return r, r.Outcomes
}

func decodeOutcome(o dedupe.Outcome) outcome {
	out := outcome{RequestID: o.RequestID, Kind: o.Kind, Published: o.Published}
	var res event.Result
	if err := json.Unmarshal(o.Event, &res); err != nil {
		out.Undecodable = err.Error()
		return out
	}
	out.result = &res
	out.EventType, out.Reason, out.AlreadyTerminated = res.EventType, res.Reason, res.AlreadyTerminated
	if !res.OccurredAt.IsZero() {
		at := res.OccurredAt.UTC()
		out.OccurredAt = &at
	}
	return out
}
