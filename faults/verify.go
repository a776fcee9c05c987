package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/tracing"
)

// figures are what a scenario measured.
type figures struct {
	intents, msgs           int // distinct request_ids; messages published
	events, dupEvents       int // result events read back; repeats of an event_id
	failedEvents            int // terminate-failed events for valid intents
	dlq                     int // dead letters
	maxTerminations         int // most effective terminations of one contract
	termCalls, queries      int // terminate and query requests the simulator received
	maxCalls, multiCall     int // most terminate requests for one contract; contracts with more than one
	refused                 int // terminate calls that reached a contract known to be terminated (refused)
	lateApplied             int // refused ones explained by a late-applied earlier call of unknown outcome
	takenOver, takenOverMax int // taken-over contracts checked; their most terminate requests
	// wrong outcomes and second terminates (refused) by API.
	wrongBy, refusedBy map[event.API]int
}

// verify checks everything the scenario published against what came out:
// the result and dead-letter topics, the dedupe records and the simulator's
// counters. It is the same for every scenario.
func (r *runCtx) verify(ctx context.Context) figures {
	if restore, ok := simSwaps.LoadAndDelete(r); ok {
		defer restore.(func())() // after the checks, which read the scenario's own simulator
	}
	w, p := r.w, r.probs
	f := figures{wrongBy: make(map[event.API]int), refusedBy: make(map[event.API]int)}
	if w == nil {
		return f
	}
	f.intents, f.msgs = len(w.byReq), len(w.msgs)
	if err := r.col.catchUp(ctx, 30*time.Second); err != nil {
		p.add("read back", "%v", err)
	}
	r.col.stop()

	// Result events: one event_id per request_id, none missing, none stray,
	// each well formed and with the stable id of its outcome.
	type seen struct {
		n      int
		res    resultFields
		copies []received
	}
	events := make(map[string]map[string]*seen) // request_id → event_id → event
	for _, rec := range r.col.results {
		f.events++
		m := rec.msg
		where := fmt.Sprintf("%s/%d@%d", m.Topic, m.Partition, m.Offset)
		if rec.res == nil {
			p.add("malformed event", "%s: %v", where, rec.derr)
			continue
		}
		if err := event.ValidateResult(m.Value); err != nil {
			p.add("malformed event", "%s fails schemas/result.v1.json: %v", where, err)
		}
		ev := *rec.res
		if ev.EventID != event.EventID(ev.RequestID, ev.OutContractCode, ev.EventType) {
			p.add("unstable event id", "%s: request %s %s has event_id %s", where, ev.RequestID, ev.EventType, ev.EventID)
		}
		if h := header(m.Headers, event.HeaderEventType); h != ev.EventType {
			p.add("malformed event", "%s: header event_type %q, body %q", where, h, ev.EventType)
		}
		if string(m.Key) != ev.OutContractCode {
			p.add("malformed event", "%s: key %q, out_contract_code %q", where, m.Key, ev.OutContractCode)
		}
		if w.byReq[ev.RequestID] == nil {
			p.add("stray event", "%s: request_id %q was never published", where, ev.RequestID)
			continue
		}
		if ev.Replayed && !r.replay {
			p.add("malformed event", "%s: replayed outside a replay", where)
		}
		byID := events[ev.RequestID]
		if byID == nil {
			byID = make(map[string]*seen)
			events[ev.RequestID] = byID
		}
		if s := byID[ev.EventID]; s != nil {
			s.n++
			s.copies = append(s.copies, rec)
			f.dupEvents++
		} else {
			byID[ev.EventID] = &seen{n: 1, res: ev, copies: []received{rec}}
		}
	}
	// Where the repeats come from: a fault between two copies (a redelivery
	// after a crash or a rebalance), or none (a producer retry).
	var repeats strings.Builder
	straddle, identical := 0, 0
	for _, in := range w.intents {
		for _, s := range events[in.reqID] {
			if s.n < 2 {
				continue
			}
			first, lastCopy := s.copies[0], s.copies[len(s.copies)-1]
			var across []string
			for _, mk := range r.marks {
				if mk.at.After(first.at.Add(-30*time.Second)) && mk.at.Before(lastCopy.at) {
					across = append(across, mk.what)
				}
			}
			if len(across) > 0 {
				straddle++
			}
			same := string(first.msg.Value) == string(lastCopy.msg.Value)
			if same {
				identical++
			}
			fmt.Fprintf(&repeats, "%s %s copies=%d first=%s p%d@%d last=+%.2fs p%d@%d identical=%v across=%v\n", in.reqID, s.res.EventType, s.n,
				first.at.Format("15:04:05.000"), first.msg.Partition, first.msg.Offset, lastCopy.at.Sub(first.at).Seconds(),
				lastCopy.msg.Partition, lastCopy.msg.Offset, same, across)
		}
	}
	if repeats.Len() > 0 {
		path := filepath.Join(r.s.logDir, fmt.Sprintf("%02d-%s-repeats.txt", r.idx, r.name))
		_ = os.WriteFile(path, []byte(repeats.String()), 0o644)
		r.notef("repeated events: %d event_ids published more than once, %d of them across a fault, %d byte-identical (the stored outcome published again); list in %s",
			strings.Count(repeats.String(), "\n"), straddle, identical, path)
	}
	for _, in := range w.intents {
		byID := events[in.reqID]
		switch {
		case len(byID) == 0:
			p.add("missing event", "request %s (%s) has no result event", in.reqID, in.code)
			continue
		case len(byID) > 1:
			var ids []string
			for id, s := range byID {
				ids = append(ids, fmt.Sprintf("%s %s", s.res.EventType, id))
			}
			slices.Sort(ids)
			p.add("two outcomes", "request %s has %d event_ids: %v", in.reqID, len(byID), ids)
			continue
		}
		var ev resultFields
		for _, s := range byID {
			ev = s.res
		}
		wrong := func(format string, args ...any) {
			f.wrongBy[in.api]++
			p.add("wrong outcome", format, args...)
		}
		switch {
		case !in.valid:
			if ev.EventType != event.TypeFailed || ev.Reason != event.ReasonInvalidRequest {
				wrong("invalid request %s answered %s reason %q, want terminate-failed invalid_request", in.reqID, ev.EventType, ev.Reason)
			}
		case in.expect == expectMissing:
			if ev.EventType != event.TypeFailed || ev.Reason != event.ReasonNotFound {
				wrong("request %s (%s, %s, no such contract) answered %s reason %q, want terminate-failed not_found", in.reqID, in.code, in.api, ev.EventType, ev.Reason)
			}
		case ev.EventType != event.TypeTerminated:
			f.failedEvents++
			wrong("request %s (%s) answered %s reason %q, want contract-terminated", in.reqID, in.code, ev.EventType, ev.Reason)
		case in.expect == expectUser:
			if !ev.AlreadyTerminated || (!in.primary && ev.Attempts != 0) {
				wrong("request %s (%s, %s, terminated by its user) answered already_terminated %v attempts %d, want already_terminated true", in.reqID, in.code, in.api, ev.AlreadyTerminated, ev.Attempts)
			}
		case in.primary && ev.AlreadyTerminated:
			// Nobody else terminates the suite's contracts: "already
			// terminated" means a terminate reached a contract one of ours
			// had terminated.
			p.add("second terminate", "request %s (%s): already_terminated on the contract's first request", in.reqID, in.code)
		case !in.primary && (!ev.AlreadyTerminated || ev.Attempts != 0):
			wrong("second request %s (%s): already_terminated %v attempts %d, want true and 0 (no call)", in.reqID, in.code, ev.AlreadyTerminated, ev.Attempts)
		case in.primary && r.takenOver[in.simKey] && ev.Attempts != 0:
			p.add("second terminate", "taken-over request %s (%s): attempts %d, want 0 (resolved by a query)", in.reqID, in.code, ev.Attempts)
		}
	}

	// Dead letters: every undecodable message, and nothing else.
	garbage := make(map[string]bool)
	for _, g := range w.garbage {
		garbage[string(g)] = true
	}
	dead := make(map[string]bool)
	for _, rec := range r.col.dlq {
		f.dlq++
		m := rec.msg
		if !garbage[string(m.Value)] {
			p.add("stray dead letter", "%s/%d@%d: %.60q", m.Topic, m.Partition, m.Offset, m.Value)
		}
		if header(m.Headers, event.HeaderDLQError) == "" || header(m.Headers, event.HeaderDLQSourceTopic) != r.reqTopic {
			p.add("malformed dead letter", "%s/%d@%d lacks dlq_error or dlq_source_topic", m.Topic, m.Partition, m.Offset)
		}
		dead[string(m.Value)] = true
	}
	for g := range garbage {
		if !dead[g] {
			p.add("missing dead letter", "%.60q", g)
		}
	}

	// Dedupe records: done, terminated, holding the outcome of the contract's
	// first request, with every request of the contract marked published.
	var codes []string
	for code := range w.byCode {
		codes = append(codes, code)
	}
	slices.Sort(codes)
	store := dedupe.New(r.s.rdb, dedupe.Options{Prefix: r.prefix})
	recs, err := store.GetMany(ctx, codes)
	if err != nil {
		p.add("dedupe record", "reading records: %v", err)
	}
	for _, rec := range recs {
		ins := w.byCode[rec.Code]
		first := ins[0]
		if !first.valid {
			if rec.Exists() {
				p.add("dedupe record", "invalid request %s has a record (%s)", first.reqID, rec.State)
			}
			continue
		}
		if first.expect == expectMissing {
			// No termination: each request keeps its own not_found. It may be
			// stored as unknown: a not-found query after a call that may have
			// been sent does not settle the contract's state (it may name the
			// contract with other parameters), so the next request queries
			// first; the event published is still not_found.
			for _, in := range ins {
				if a, ok := rec.Answer(in.reqID); !ok || !a.Own || (a.Kind != dedupe.KindFailed && a.Kind != dedupe.KindUnknown) || !a.Published {
					p.add("dedupe record", "%s (no such contract): request %s answered by own=%v kind=%q published=%v %s, want its own published failure", rec.Code, in.reqID, a.Own, a.Kind, a.Published, a.Event)
				}
			}
			continue
		}
		if rec.State != dedupe.StateDone || rec.Kind != dedupe.KindTerminated {
			p.add("dedupe record", "%s: state %q kind %q, want done terminated", rec.Code, rec.State, rec.Kind)
			continue
		}
		if rec.OutcomeRequestID != first.reqID {
			p.add("dedupe record", "%s: outcome of %s, want its first request %s", rec.Code, rec.OutcomeRequestID, first.reqID)
		}
		var stored resultFields
		if err := json.Unmarshal(rec.Outcome, &stored); err != nil {
			p.add("dedupe record", "%s: stored outcome unreadable: %v", rec.Code, err)
		} else if byID := events[rec.OutcomeRequestID]; byID[stored.EventID] == nil {
			p.add("dedupe record", "%s: stored event_id %s was not published for %s", rec.Code, stored.EventID, rec.OutcomeRequestID)
		}
		for _, in := range ins {
			if !rec.Published[in.reqID] {
				p.add("dedupe record", "%s: pub:%s not set", rec.Code, in.reqID)
			}
		}
	}

	// The simulator: every valid contract terminated exactly once, no call
	// for an invalid intent.
	counts, err := r.s.simCounts(ctx, nil)
	if err != nil {
		p.add("simulator", "counts: %v", err)
		return f
	}
	f.queries = counts.QueryCalls - r.counts0.QueryCalls
	refused := r.s.proxy.refusedSnapshot()
	var timelines strings.Builder
	sampled := 0
	timeline := func(code, key, why string) string {
		var b strings.Builder
		for _, c := range r.s.proxy.timelineOf(key) {
			fmt.Fprintf(&b, "\n    %s", c)
		}
		fmt.Fprintf(&timelines, "%s (%s): %s%s\n", code, key, why, b.String())
		return b.String()
	}
	for code, ins := range w.byCode {
		key := ins[0].simKey
		calls, terms := counts.Calls[key], counts.Terminations[key]
		f.termCalls += calls
		f.maxCalls = max(f.maxCalls, calls)
		f.maxTerminations = max(f.maxTerminations, terms)
		if calls > 1 {
			f.multiCall++
		}
		if !ins[0].valid {
			if calls != 0 {
				p.add("call for invalid intent", "%s: %d terminate calls", code, calls)
			}
			continue
		}
		switch ins[0].expect {
		case expectMissing:
			if terms != 0 {
				p.add("terminated twice", "%s (%s, no such contract): %d terminations", code, ins[0].api, terms)
			}
			continue
		case expectUser:
			// The one refusal that tells the consumer the contract is
			// terminated is expected; any further terminate is a second one.
			if n := refused[key]; n > 1 {
				f.refused += n - 1
				f.refusedBy[ins[0].api] += n - 1
				p.add("second terminate", "%s (%s, terminated by its user): %d terminate calls refused; its calls:%s", code, ins[0].api, n, timeline(code, key, "terminated by its user, refused more than once"))
			}
			if terms != 0 {
				p.add("terminated twice", "%s (%s, terminated by its user): %d terminations by us", code, ins[0].api, terms)
			}
			continue
		}
		if n := refused[key]; n > 0 {
			tlCalls := r.s.proxy.timelineOf(key)
			bad := 0
			for _, c := range tlCalls {
				if c.op == "terminate" && strings.HasSuffix(c.outcome, "(already terminated)") && !judgeRefusal(tlCalls, c) {
					bad++
				}
			}
			f.refused += bad
			f.refusedBy[ins[0].api] += bad
			f.lateApplied += n - bad
			if bad > 0 {
				tl := timeline(code, key, "terminate after termination")
				p.add("second terminate", "%s (%s): %d terminate calls reached it when it was known to be terminated, or without a query after an unanswered call (WeChat Pay refused them); its calls:%s", code, ins[0].api, bad, tl)
			} else {
				timeline(code, key, "refused terminate explained by a late-applied call whose outcome was unknown")
			}
		} else if calls > 1 && sampled < 20 {
			sampled++
			timeline(code, key, "more than one terminate call")
		}
		switch {
		case terms > 1:
			p.add("terminated twice", "%s (%s): %d effective terminations in %d calls", code, ins[0].api, terms, calls)
		case terms == 0:
			p.add("never terminated", "%s (%s): %d calls, none effective", code, ins[0].api, calls)
		}
		if r.strictKeys[key] && calls != 1 {
			p.add("second terminate", "%s (%s): %d terminate calls, want exactly 1", code, ins[0].api, calls)
		}
		if r.takenOver[key] {
			f.takenOver++
			f.takenOverMax = max(f.takenOverMax, calls)
		}
	}
	if f.lateApplied > 0 {
		r.notef("%d terminate calls were refused as already terminated because an earlier call had timed out, was applied by WeChat Pay after the caller gave up, and a query in between still found the contract effective: the caller resolved each with a query (contract-terminated), and no contract was terminated twice", f.lateApplied)
	}
	if timelines.Len() > 0 {
		path := filepath.Join(r.s.logDir, fmt.Sprintf("%02d-%s-calls.txt", r.idx, r.name))
		_ = os.WriteFile(path, []byte(timelines.String()), 0o644)
		r.notef("call timelines of contracts called more than once (up to 20, and every one called after its termination): %s", path)
	}
	var byAPI []string
	for _, api := range event.APIs {
		byAPI = append(byAPI, fmt.Sprintf("%s %d/%d", api, f.wrongBy[api], f.refusedBy[api]))
	}
	r.notef("wrong outcomes / second terminates by API: %s", strings.Join(byAPI, ", "))
	r.notef("checked %d events (%d repeats of an event_id), %d dead letters, %d dedupe records, %d contracts in the simulator: %d terminate calls (max %d per contract, %d contracts with more than one, %d after the contract was terminated), %d queries",
		f.events, f.dupEvents, f.dlq, len(recs), len(w.byCode), f.termCalls, f.maxCalls, f.multiCall, f.refused, f.queries)
	return f
}

// header is the first value of header key in hs, or "".
func header(hs []kafka.Header, key string) string { return tracing.Headers(hs).Get(key) }
