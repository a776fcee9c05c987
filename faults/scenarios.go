package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/wxapi"
)

// scenarios is the suite, in the order it runs.
func scenarios() []scenario {
	return []scenario{
		{"kill-9", "kill -9 of the only consumer at random moments while it works through the intents, restarted each time", killScenario},
		{"redis-outage", "Redis stopped for 20 s mid-run (writes paused and snapshotted first, so it comes back with its data), then started again", redisScenario},
		{"kafka-restart", "the Kafka broker restarted mid-run", kafkaScenario},
		{"wechat-30pct", "30% of WeChat Pay calls fail with 500, 503, 429, a timeout or a dropped connection; before the call takes effect for the first half of the run, after it for the second", wechatScenario},
		{"sigterm", "SIGTERM to the consumer mid-run (graceful shutdown with work in flight), then a successor in the same group", sigtermScenario},
		{"drain", "SIGTERM to one of two members with calls in flight at 1 s latency: it drains, releases its claims, commits and leaves, the other takes over at once", drainScenario},
		{"group-churn", "three consumers in one group; one killed with kill -9 and one added mid-run", churnScenario},
		{"dies-after-call", "workers die after their terminate call took effect but before recording it (kill -9 while WeChat holds the answer; and records left in flight by a dead owner that did call): the next owner must query, not call again", diesAfterCallScenario},
		{"lost-claim", "claims lost mid-call: at 1 s latency the dedupe records of contracts in flight are deleted, eight rounds; each worker claims again and, remembering the call it sent, queries before terminating: no second terminate, no termination of ours reported already_terminated", lostClaimScenario},
		{"systemic-sign-error", "mid-run WeChat Pay answers every call 401 SIGN_ERROR for 10 s, then recovers", systemicScenario("sign_error")},
		{"systemic-bad-signature", "mid-run WeChat Pay's response signatures stop validating for 10 s (the calls take effect), then recover", systemicScenario("bad_signature")},
		{"systemic-flaky", "mid-run for 10 s every WeChat Pay call is refused 401 SIGN_ERROR or times out, half each (a systemic fault seen through a flaky network), then recovers", systemicScenario("sign_error", "timeout")},
		{"broken-merchant", "two merchants: one's every call refused 401 SIGN_ERROR beside the healthy one, then fixed: the healthy one's rate holds, the broken one's calls stay one per probe interval", brokenMerchantScenario},
		{"notifications", "for every contract at once an intent and its user terminating it in WeChat, whose notification the simulator delivers on WeChat Pay's retry schedule (time-scaled; a quarter of deliveries refused 503); two consumers reading intents and notifications, each killed with kill -9 mid-run", notifyScenario},
		{"refused-result", "the result and dead-letter topics refuse some outputs (max.message.bytes small): oversized results and dead letters mixed with normal intents must come out reduced, nothing held or dropped", refusedScenario},
		{"documented", "WeChat Pay as documented (papay TERMINATE_PENDING for 1 s, global 403 CONTRACT_NOT_EXIST), 3,000 intents over the four APIs with contracts that do not exist and contracts their user terminated before the run, 30% transient failures (after the call took effect from half way), kill -9 of the consumer three times", documentedScenario},
		{"replay", "after a run, replay (-replay -replay-reemit) the whole request topic while the live consumer keeps running; a dry run first", replayScenario},
	}
}

// killScenario: kill -9 of the consumer, restarted each time.
func killScenario(ctx context.Context, r *runCtx) error {
	// A little latency keeps calls in flight, so that kills land mid-call.
	c, err := r.begin(ctx, r.s.cfg.intents, `{"latency":"10ms"}`)
	if err != nil {
		return err
	}
	pub := r.publishAsync(ctx, 50, 100*time.Millisecond)
	kills := r.s.cfg.kills
	// One kill at a random moment in each of kills equal slices of 5%..90%
	// of the run, so that they spread over it.
	at := make([]float64, kills)
	for i := range at {
		at[i] = 0.05 + 0.85*(float64(i)+r.rnd.Float64())/float64(kills)
	}
	for i, frac := range at {
		// Each kill interrupts work in progress: past its threshold, and once
		// the process has published results of its own.
		if err := r.waitProgress(ctx, frac); err != nil {
			return err
		}
		for c.metric(ctx, r.s.http, "wxterm_outcomes_total") < 20 {
			if err := r.crashed(); err != nil {
				return err
			}
			if !sleep(ctx, 50*time.Millisecond) {
				return fmt.Errorf("%w waiting for %s to work", errTimeout, c.Name)
			}
		}
		// A random moment: up to 300 ms later.
		if !sleep(ctx, time.Duration(r.rnd.IntN(300))*time.Millisecond) {
			return ctx.Err()
		}
		inFlight := c.metric(ctx, r.s.http, "wxterm_in_flight")
		before := r.progress()
		c.Kill()
		r.mark(fmt.Sprintf("kill -9 #%d", i+1))
		r.notef("kill -9 #%d of %s at %.1f%% answered, %.0f intents in flight", i+1, c.Name, before*100, inFlight)
		if c, err = r.startConsumer(); err != nil {
			return err
		}
	}
	if err := <-pub; err != nil {
		return err
	}
	return nil
}

// redisScenario: Redis stopped for 20 s mid-run.
func redisScenario(ctx context.Context, r *runCtx) error {
	c, err := r.begin(ctx, r.s.cfg.intents, `{"latency":"10ms"}`)
	if err != nil {
		return err
	}
	// Paced, so that intents keep arriving while Redis is away.
	pub := r.publishAsync(ctx, 20, 100*time.Millisecond)
	if err := r.waitProgress(ctx, 0.3); err != nil {
		return err
	}
	// The test server keeps no data across a restart (no persistence), and a
	// production Redis does: pause writes, snapshot, then stop it, so that it
	// comes back as it was and the scenario is about unavailability.
	rdb := r.s.rdb
	if err := rdb.Do(ctx, "CLIENT", "PAUSE", "60000", "WRITE").Err(); err != nil {
		return fmt.Errorf("redis client pause: %w", err)
	}
	keys, _ := rdb.Keys(ctx, r.prefix+"*").Result()
	if err := rdb.Save(ctx).Err(); err != nil {
		_ = rdb.Do(ctx, "CLIENT", "UNPAUSE").Err()
		return fmt.Errorf("redis save: %w", err)
	}
	at := r.progress()
	if err := r.s.ctl(ctx, r.s.cfg.redisCtl, "halt"); err != nil {
		_ = rdb.Do(ctx, "CLIENT", "UNPAUSE").Err()
		return err
	}
	down := time.Now()
	r.notef("Redis stopped at %.1f%% answered (%d records saved)", at*100, len(keys))

	// While it is down: no call to WeChat Pay (after a grace for calls whose
	// claim was made before), /readyz unready, nothing answered.
	sleep(ctx, 2*time.Second)
	c0, err := r.s.simCounts(ctx, nil)
	if err != nil {
		return err
	}
	s0 := r.col.snap()
	unready, polls := 0, 0
	var body string
	var misses []string // the polls that did not say so, for the report
	for time.Since(down) < 20*time.Second {
		st, b := r.readyState(ctx, c)
		polls++
		if st == http.StatusServiceUnavailable && strings.Contains(b, "dedupe store") {
			unready++
		} else {
			misses = append(misses, fmt.Sprintf("%.1fs after the stop: %d %q", time.Since(down).Seconds(), st, b))
		}
		body = b
		if !sleep(ctx, 500*time.Millisecond) {
			return ctx.Err()
		}
	}
	c1, err := r.s.simCounts(ctx, nil)
	if err != nil {
		return err
	}
	s1 := r.col.snap()
	if err := r.s.ctl(ctx, r.s.cfg.redisCtl, "resume"); err != nil {
		return err
	}
	r.notef("Redis started again after %.1fs down", time.Since(down).Seconds())
	calls := c1.TerminateCalls - c0.TerminateCalls + c1.QueryCalls - c0.QueryCalls
	r.notef("from 2s after the stop to the restart: %d WeChat Pay calls, %d events published, /readyz unready in %d of %d polls (%q)",
		calls, s1.results-s0.results, unready, polls, body)
	for _, m := range misses {
		r.notef("  /readyz did not say unready (dedupe store) %s", m)
	}
	if calls != 0 {
		r.probs.add("call without a claim", "%d WeChat Pay calls while Redis was down", calls)
	}
	if unready < polls-1 {
		r.probs.add("readiness", "/readyz said unready (dedupe store) in only %d of %d polls while Redis was down; the others: %s", unready, polls, strings.Join(misses, "; "))
	}
	keysAfter, _ := rdb.Keys(ctx, r.prefix+"*").Result()
	if len(keysAfter) < len(keys) {
		r.probs.add("scenario", "Redis came back with %d records, %d were saved", len(keysAfter), len(keys))
	}
	return <-pub
}

// kafkaScenario: the broker restarted mid-run.
func kafkaScenario(ctx context.Context, r *runCtx) error {
	if _, err := r.begin(ctx, r.s.cfg.intents, `{"latency":"10ms"}`); err != nil {
		return err
	}
	// Paced, so that the restart comes mid-run; the suite's producer
	// retries through the restart too.
	pub := r.publishAsync(ctx, 20, 100*time.Millisecond)
	if err := r.waitProgress(ctx, 0.3); err != nil {
		return err
	}
	at := r.progress()
	start := time.Now()
	r.mark("kafka restart")
	if err := r.s.ctl(ctx, r.s.cfg.kafkaCtl, "restart"); err != nil {
		return err
	}
	r.notef("Kafka broker restarted at %.1f%% answered; it was back after %.1fs (%.1f%% answered then)",
		at*100, time.Since(start).Seconds(), r.progress()*100)
	return <-pub
}

// wechatScenario: 30% of WeChat Pay calls fail transiently.
func wechatScenario(ctx context.Context, r *runCtx) error {
	const kinds = `"kinds":["http500","http503","http429","timeout","drop"],"hang_for":"5s"`
	if _, err := r.begin(ctx, r.s.cfg.intents, `{"rate":0.3,`+kinds+`}`); err != nil {
		return err
	}
	pub := r.publishAsync(ctx, 20, 100*time.Millisecond)
	if err := r.waitProgress(ctx, 0.5); err != nil {
		return err
	}
	if err := r.s.simFaults(ctx, `{"rate":0.3,"after_apply":true,`+kinds+`}`); err != nil {
		return err
	}
	r.notef("at %.1f%% answered: failures now strike after the call took effect (answer lost)", r.progress()*100)
	if err := <-pub; err != nil {
		return err
	}
	if err := r.waitDone(ctx); err != nil {
		return err
	}
	return r.s.simFaults(ctx, "{}")
}

// churnScenario: three consumers; one killed, one added.
func churnScenario(ctx context.Context, r *runCtx) error {
	r.setup(r.s.cfg.intents)
	if err := r.s.simFaults(ctx, `{"latency":"10ms"}`); err != nil {
		return err
	}
	cs, err := r.startReady(ctx, 3)
	if err != nil {
		return err
	}
	pub := r.publishAsync(ctx, 20, 100*time.Millisecond)
	if err := r.waitProgress(ctx, 0.25); err != nil {
		return err
	}
	cs[1].Kill()
	r.mark("kill -9")
	r.notef("kill -9 of %s at %.1f%% answered", cs[1].Name, r.progress()*100)
	if err := r.waitProgress(ctx, 0.5); err != nil {
		return err
	}
	c4, err := r.startConsumer()
	if err != nil {
		return err
	}
	r.notef("%s added at %.1f%% answered", c4.Name, r.progress()*100)
	if err := r.waitReady(ctx, c4, 60*time.Second); err != nil {
		return err
	}
	r.notef("%s joined at %.1f%% answered", c4.Name, r.progress()*100)
	return <-pub
}

// diesAfterCallScenario: the terminate call took effect, the worker died
// before recording it; the next owner must resolve it with a query.
func diesAfterCallScenario(ctx context.Context, r *runCtx) error {
	const killed, crafted = 24, 8
	r.setup(killed + crafted)
	var killSet, craftSet []*intent
	for _, in := range r.w.intents {
		if !in.valid || !in.primary {
			continue
		}
		if len(killSet) < killed {
			killSet = append(killSet, in)
		} else {
			craftSet = append(craftSet, in)
		}
	}
	craftCodes := make(map[string]bool)
	for _, in := range craftSet {
		craftCodes[in.code] = true
	}
	for _, in := range append(slices.Clone(killSet), craftSet...) {
		r.strictKeys[in.simKey] = true
		r.takenOver[in.simKey] = true
	}
	var first, later []kafka.Message
	for _, m := range r.w.msgs {
		if craftCodes[string(m.Key)] {
			later = append(later, m)
		} else {
			first = append(first, m)
		}
	}

	// 1. Every terminate takes effect, and WeChat then holds the answer: the
	// worker is mid-call, with the contract already terminated.
	if err := r.s.simFaults(ctx, `{"rate":1,"kinds":["timeout"],"after_apply":true,"hang_for":"2m"}`); err != nil {
		return err
	}
	a, err := r.startConsumer("-wechatpay-timeout", "2m")
	if err != nil {
		return err
	}
	if err := r.waitReady(ctx, a, 60*time.Second); err != nil {
		return err
	}
	if err := r.s.publish(ctx, r.reqTopic, first, 100, 10*time.Millisecond); err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		n, err := r.terminated(ctx, killSet)
		if err != nil {
			return err
		}
		if n == len(killSet) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: only %d of %d terminate calls reached WeChat Pay", errTimeout, n, len(killSet))
		}
		if !sleep(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
	a.Kill()
	r.notef("%s killed with kill -9 while its %d terminate calls had taken effect and WeChat held the answers", a.Name, len(killSet))
	if s := r.col.snap(); s.answered > 0 {
		// Only the invalid intents may have been answered.
		r.notef("%d requests (the invalid ones) were answered before the kill", s.answered)
	}
	if err := r.s.simFaults(ctx, "{}"); err != nil {
		return err
	}

	// 2. Records left in flight by a dead owner that did call WeChat Pay,
	// written as that owner wrote them: claimed, terminate called, no outcome.
	store := dedupe.New(r.s.rdb, dedupe.Options{Prefix: r.prefix, Lease: 5 * time.Second})
	deadURL, err := r.s.proxy.endpoint("dead-owner")
	if err != nil {
		return err
	}
	client, err := wxapi.New(r.s.id.ClientConfig(deadURL))
	if err != nil {
		return err
	}
	for _, in := range craftSet {
		cl, err := store.Claim(ctx, in.code, in.reqID, "dead-worker-"+r.s.runID)
		if err != nil {
			return err
		}
		if cl.Status != dedupe.Claimed {
			return fmt.Errorf("claim %s as the dead owner: %s", in.code, cl.Status)
		}
		var ev event.Intent
		if err := json.Unmarshal(in.raw, &ev); err != nil {
			return err
		}
		if _, err := client.Terminate(ctx, wxapi.Request{
			API: wxapi.API(ev.API), OutContractCode: ev.OutContractCode, PlanID: ev.PlanID, ContractID: ev.ContractID,
			SubMchID: ev.SubMchID, AppID: ev.AppID, SpAppID: ev.SpAppID, SubAppID: ev.SubAppID, Remark: ev.Remark,
		}); err != nil {
			return fmt.Errorf("terminate %s as the dead owner: %w", in.code, err)
		}
	}
	if err := r.s.publish(ctx, r.reqTopic, later, 100, 10*time.Millisecond); err != nil {
		return err
	}
	r.notef("%d more contracts claimed and terminated by a dead owner that recorded nothing; their intents published", len(craftSet))

	// 3. The next owner.
	b, err := r.startConsumer()
	if err != nil {
		return err
	}
	r.notef("%s started: it must wait out the dead owners' leases (5s), query, and record contract-terminated with no second call", b.Name)
	return nil
}

// terminated counts the intents whose contract the simulator terminated.
func (r *runCtx) terminated(ctx context.Context, ins []*intent) (int, error) {
	c, err := r.s.simCounts(ctx, nil)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, in := range ins {
		if c.Terminations[in.simKey] > 0 {
			n++
		}
	}
	return n, nil
}

// systemicScenario: a systemic fault for 10 s mid-run, made of kinds.
func systemicScenario(kinds ...string) func(ctx context.Context, r *runCtx) error {
	kind := strings.Join(kinds, "+")
	profile := mustJSON(map[string]any{"rate": 1, "kinds": kinds, "latency": "10ms", "hang_for": "5s"})
	return func(ctx context.Context, r *runCtx) error {
		r.setup(r.s.cfg.small)
		if err := r.s.simFaults(ctx, `{"latency":"10ms"}`); err != nil {
			return err
		}
		c, err := r.startConsumer()
		if err != nil {
			return err
		}
		if err := r.waitReady(ctx, c, 60*time.Second); err != nil {
			return err
		}
		// A fifth of the work is published and answered first; the fault is
		// switched on, then the rest is published: most of the run happens
		// under the fault whatever the machine's speed.
		cut := len(r.w.msgs) / 5
		if err := r.s.publish(ctx, r.reqTopic, r.w.msgs[:cut], 50, 20*time.Millisecond); err != nil {
			return err
		}
		if err := r.waitAnswered(ctx, r.w.msgs[:cut]); err != nil {
			return err
		}
		if err := r.s.simFaults(ctx, string(profile)); err != nil {
			return err
		}
		if err := r.s.publish(ctx, r.reqTopic, r.w.msgs[cut:], 200, 10*time.Millisecond); err != nil {
			return err
		}
		on := time.Now()
		at := r.progress()
		took, err := r.waitReadyz(ctx, c, http.StatusServiceUnavailable, "systemic", 10*time.Second)
		if err != nil {
			r.probs.add("readiness", "%v", err)
		} else {
			r.notef("%s on at %.1f%% answered: /readyz unready (systemic) %.1fs later", kind, at*100, took.Seconds())
		}
		// Let what was in flight settle, then watch a held consumer for 8 s.
		sleep(ctx, time.Until(on.Add(2*time.Second)))
		s0 := r.col.snap()
		c0, err := r.s.simCounts(ctx, nil)
		if err != nil {
			return err
		}
		com0, err := r.s.committed(ctx, r.group, r.reqTopic)
		if err != nil {
			return err
		}
		const hold = 8 * time.Second
		unready, polls := 0, 0
		var body string
		for time.Since(on) < 2*time.Second+hold {
			st, b := r.readyState(ctx, c)
			polls++
			if st == http.StatusServiceUnavailable && strings.Contains(b, "systemic") {
				unready++
			}
			body = b
			if !sleep(ctx, 250*time.Millisecond) {
				return ctx.Err()
			}
		}
		s1 := r.col.snap()
		c1, err := r.s.simCounts(ctx, nil)
		if err != nil {
			return err
		}
		com1, err := r.s.committed(ctx, r.group, r.reqTopic)
		if err != nil {
			return err
		}
		if err := r.s.simFaults(ctx, `{"latency":"10ms"}`); err != nil {
			return err
		}
		calls := c1.TerminateCalls - c0.TerminateCalls + c1.QueryCalls - c0.QueryCalls
		moved := 0
		for p, o := range com1 {
			if o != com0[p] {
				moved++
			}
		}
		wechat, failed := r.col.classify(r.w, s0.results, s1.results)
		r.notef("held for %s: %d events of intents that need WeChat Pay (%d terminate-failed), %d others answered from the dedupe record or invalid, %d WeChat Pay calls (one probe a second expected), %d partitions committed further, /readyz unready in %d of %d polls",
			hold, wechat, failed, s1.results-s0.results-wechat, calls, moved, unready, polls)
		if wechat > 0 || s1.failed != s0.failed {
			r.probs.add("flood", "%d result events of intents that need WeChat Pay (%d terminate-failed; %d terminate-failed in all) published while the systemic fault held", wechat, failed, s1.failed-s0.failed)
		}
		if limit := int(hold/time.Second)*2 + 4; calls > limit {
			r.probs.add("hold", "%d WeChat Pay calls in %s of hold, want at most %d (one probe a second)", calls, hold, limit)
		}
		if unready < polls {
			r.probs.add("readiness", "/readyz said unready (systemic) in %d of %d polls while held; last %q", unready, polls, body)
		}
		took, err = r.waitReadyz(ctx, c, http.StatusOK, "ready", 15*time.Second)
		if err != nil {
			r.probs.add("readiness", "after the fault cleared: %v", err)
		} else {
			r.notef("fault cleared at %.1f%% answered: /readyz ready again %.1fs later", r.progress()*100, took.Seconds())
		}
		return nil
	}
}

// replayScenario: replay an answered range while the live group runs.
func replayScenario(ctx context.Context, r *runCtx) error {
	r.replay = true
	r.setup(r.s.cfg.small / 2)
	from := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	c, err := r.startConsumer()
	if err != nil {
		return err
	}
	if err := r.waitReady(ctx, c, 60*time.Second); err != nil {
		return err
	}
	if err := r.s.publish(ctx, r.reqTopic, r.w.msgs, 200, 10*time.Millisecond); err != nil {
		return err
	}
	if err := r.waitDone(ctx); err != nil {
		return err
	}
	r.checkCommitted(ctx)
	ends, err := r.s.endOffsets(ctx, r.reqTopic)
	if err != nil {
		return err
	}
	var total int64
	for _, e := range ends {
		total += e
	}
	com0, err := r.s.committed(ctx, r.group, r.reqTopic)
	if err != nil {
		return err
	}
	c0, err := r.s.simCounts(ctx, nil)
	if err != nil {
		return err
	}

	out, err := r.runConsumerOnce(ctx, "replay-dry-run", time.Minute, "-replay", "-replay-from", from, "-replay-dry-run")
	if err != nil {
		return err
	}
	if want := fmt.Sprintf("total %d messages", total); !strings.Contains(out, want) {
		r.probs.add("replay", "dry run: want %q in its output, got %q", want, lineWith(out, "total"))
	}
	r.notef("dry run: %s", lineWith(out, "total"))
	out, err = r.runConsumerOnce(ctx, "replay", 2*time.Minute, "-replay", "-replay-from", from, "-replay-reemit")
	if err != nil {
		return err
	}
	r.notef("replay: %s", lineWith(out, "replayed"))
	c1, err := r.s.simCounts(ctx, nil)
	if err != nil {
		return err
	}
	com1, err := r.s.committed(ctx, r.group, r.reqTopic)
	if err != nil {
		return err
	}
	if n := c1.TerminateCalls - c0.TerminateCalls + c1.QueryCalls - c0.QueryCalls; n != 0 {
		r.probs.add("replay", "the replay made %d WeChat Pay calls for intents already answered", n)
	}
	for p, o := range com0 {
		if com1[p] != o {
			r.probs.add("replay", "the live group's commit of partition %d moved from %d to %d during the replay", p, o, com1[p])
		}
	}
	// Every answered request comes back re-emitted: wait until read back.
	deadline := time.Now().Add(30 * time.Second)
	for {
		missing := r.col.missingReplayed(r.w)
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			r.probs.add("replay", "%d answered requests were not re-emitted", missing)
			break
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
	return nil
}

// lineWith returns the last line of s that starts with prefix, trimmed.
func lineWith(s, prefix string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// sigtermScenario: graceful shutdown with work in flight.
func sigtermScenario(ctx context.Context, r *runCtx) error {
	c, err := r.begin(ctx, r.s.cfg.small, `{"latency":"50ms"}`)
	if err != nil {
		return err
	}
	pub := r.publishAsync(ctx, 20, 100*time.Millisecond)
	if err := r.waitProgress(ctx, 0.4); err != nil {
		return err
	}
	inFlight := c.metric(ctx, r.s.http, "wxterm_in_flight")
	at := r.progress()
	start := time.Now()
	graceful := c.Stop(30 * time.Second)
	took := time.Since(start)
	r.mark("sigterm")
	r.notef("SIGTERM to %s at %.1f%% answered with %.0f intents in flight: exited in %.1fs, %v", c.Name, at*100, inFlight, took.Seconds(), c.Err())
	switch {
	case !graceful:
		r.probs.add("shutdown", "%s did not exit within 30s of SIGTERM", c.Name)
	case c.Err() != nil:
		r.probs.add("shutdown", "%s exited with %v after SIGTERM, want status 0: %s", c.Name, c.Err(), firstLines(c.tailFrom("panic:", 6)))
	case took > 15*time.Second: // -shutdown-timeout 5s, plus leaving the group
		r.probs.add("shutdown", "%s took %.1fs to exit after SIGTERM (-shutdown-timeout 5s)", c.Name, took.Seconds())
	}
	c2, err := r.startConsumer()
	if err != nil {
		return err
	}
	start = time.Now()
	if err := r.waitDone(ctx); err != nil {
		return err
	}
	r.notef("%s answered the rest in %.1fs", c2.Name, time.Since(start).Seconds())
	return <-pub
}

// begin sets a scenario up with n intents and the simulator fault profile
// faults, and starts one consumer, ready to work.
func (r *runCtx) begin(ctx context.Context, n int, faults string) (*consumerProc, error) {
	r.setup(n)
	if err := r.s.simFaults(ctx, faults); err != nil {
		return nil, err
	}
	c, err := r.startConsumer()
	if err != nil {
		return nil, err
	}
	if err := r.waitReady(ctx, c, 60*time.Second); err != nil {
		return nil, err
	}
	return c, nil
}
