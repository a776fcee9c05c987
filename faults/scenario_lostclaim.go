package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// delInFlight deletes a dedupe record only while it is in flight, so that a
// record finished between the scan and the delete keeps its outcome (losing
// a finished record is another fault than losing a claim).
var delInFlight = redis.NewScript(`
if redis.call('TYPE', KEYS[1]).ok == 'hash' and redis.call('HGET', KEYS[1], 'state') == 'in_flight' then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// lostClaimScenario: claims lost mid-call. With calls in flight at 1 s
// latency, the records of contracts claimed in flight are deleted, several
// rounds: the worker finds its claim gone (Extend or Complete), claims again
// and gets a fresh claim, and only its own mark of the call it sent makes it
// query first rather than terminate a contract it terminated itself and
// report it already_terminated.
func lostClaimScenario(ctx context.Context, r *runCtx) error {
	const rounds = 8
	if _, err := r.begin(ctx, 300, `{"latency":"1s"}`); err != nil {
		return err
	}
	pub := r.publishAsync(ctx, 20, 100*time.Millisecond)
	if _, err := r.waitOwner(ctx); err != nil {
		return err
	}
	deleted := make(map[string]bool) // dedupe keys deleted in flight
	n := 0
	for round := 1; round <= rounds && r.progress() < 0.9; round++ {
		k, err := r.deleteInFlight(ctx, deleted)
		if err != nil {
			return err
		}
		n += k
		r.mark(fmt.Sprintf("records deleted #%d", round))
		r.notef("round %d at %.1f%% answered: %d in-flight records deleted", round, r.progress()*100, k)
		if !sleep(ctx, 700*time.Millisecond) {
			return ctx.Err()
		}
	}
	if n == 0 {
		r.probs.add("scenario", "no record was in flight when deleted: the scenario proves nothing")
	}
	if err := r.drained(ctx, pub); err != nil {
		return err
	}

	// What the workers whose claims were lost did: a query after their
	// terminate call (the mark kept), their terminate calls, and whether any
	// reported its own termination as already_terminated.
	codes := make(map[string]bool)
	for key := range deleted {
		codes[strings.TrimSuffix(strings.TrimPrefix(key, r.prefix+"{"), "}")] = true
	}
	queried, terms := 0, 0
	for code := range codes {
		ins := r.w.byCode[code]
		if len(ins) == 0 {
			continue
		}
		// Queried first: the call after the contract's first terminate is a
		// query, not another terminate.
		tl := r.s.proxy.timelineOf(ins[0].simKey)
		first := -1
		for i, c := range tl {
			if c.op == "terminate" {
				terms++
				if first < 0 {
					first = i
				}
			}
		}
		if first >= 0 && first+1 < len(tl) && tl[first+1].op == "query" {
			queried++
		}
	}
	wrongAlready := 0
	r.col.mu.Lock()
	for _, rec := range r.col.results {
		if rec.res == nil || !codes[rec.res.OutContractCode] || !rec.res.AlreadyTerminated {
			continue
		}
		if in := r.w.byReq[rec.res.RequestID]; in != nil && in.primary && in.expect == expectOurs {
			wrongAlready++
		}
	}
	r.col.mu.Unlock()
	if wrongAlready > 0 {
		r.probs.add("lost claim", "%d events of contracts whose claim was lost report our own termination already_terminated: the worker forgot the call it sent", wrongAlready)
	}
	r.notef("%d records deleted in flight (%d contracts) over %d rounds: %d terminate calls to them, %d queried before calling again, %d wrongly already_terminated",
		n, len(codes), len(r.marks), terms, queried, wrongAlready)
	r.figure("deleted in flight", fmt.Sprint(n))
	r.figure("queried first", fmt.Sprint(queried))
	r.figure("term calls of those", fmt.Sprint(terms))
	r.figure("wrong already_terminated", fmt.Sprint(wrongAlready))
	return nil
}

// deleteInFlight deletes the scenario's dedupe records that are in flight
// (SCAN MATCH on its prefix, then a delete that checks the state), adds
// their keys to deleted and returns how many it deleted.
func (r *runCtx) deleteInFlight(ctx context.Context, deleted map[string]bool) (int, error) {
	rdb := r.s.rdb
	var keys []string
	iter := rdb.Scan(ctx, 0, r.prefix+"*", 500).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return 0, fmt.Errorf("scan records: %w", err)
	}
	n := 0
	for _, k := range keys {
		v, err := delInFlight.Run(ctx, rdb, []string{k}).Int()
		if err != nil {
			return n, fmt.Errorf("delete record %s: %w", k, err)
		}
		if v == 1 {
			n++
			deleted[k] = true
		}
	}
	return n, nil
}
