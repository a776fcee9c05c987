package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/dedupe"
)

// drainScenario: SIGTERM to one of two members with calls in flight at 1 s
// latency. The member must drain: answer what it started, release or
// finish every claim, commit, and leave the group so that the other member
// takes its partitions over at once, not after a session timeout.
func drainScenario(ctx context.Context, r *runCtx) error {
	const sessionTimeout = 6 * time.Second // consumerArgs' -session-timeout
	r.setup(r.s.cfg.small / 2)
	if err := r.s.simFaults(ctx, `{"latency":"1s"}`); err != nil {
		return err
	}
	c1, err := r.startConsumer("-shutdown-timeout", "15s")
	if err != nil {
		return err
	}
	if err := r.waitReady(ctx, c1, 60*time.Second); err != nil {
		return err
	}
	// Paced over about 11 s, so that work is still arriving when c1 gets
	// SIGTERM on a fast machine too.
	pub := r.publishAsync(ctx, 10, 200*time.Millisecond)
	// c1 works alone first: the claims in flight now tell its owner tokens.
	c1Owner, err := r.waitOwner(ctx)
	if err != nil {
		return err
	}
	c2, err := r.startConsumer()
	if err != nil {
		return err
	}
	if err := r.waitReady(ctx, c2, 60*time.Second); err != nil {
		return err
	}
	if err := r.waitProgress(ctx, 0.3); err != nil {
		return err
	}
	// SIGTERM only with work of c1's in flight (up to 10 s more): the drain
	// is what the scenario is about.
	inFlight := c1.metric(ctx, r.s.http, "wxterm_in_flight")
	for deadline := time.Now().Add(10 * time.Second); inFlight == 0 && time.Now().Before(deadline); {
		if !sleep(ctx, 20*time.Millisecond) {
			return ctx.Err()
		}
		inFlight = c1.metric(ctx, r.s.http, "wxterm_in_flight")
	}
	start := time.Now()
	graceful := c1.Stop(40 * time.Second)
	exit := time.Since(start)
	exitedAt := time.Now()
	r.mark("sigterm")
	claims, err := r.claimsOf(ctx, c1Owner)
	if err != nil {
		return err
	}
	if err := r.waitSoleMember(ctx, 30*time.Second); err != nil {
		return err
	}
	takeover := time.Since(exitedAt)
	switch {
	case !graceful:
		r.probs.add("shutdown", "%s did not exit within 40s of SIGTERM", c1.Name)
	case c1.Err() != nil:
		r.probs.add("shutdown", "%s exited with %v after SIGTERM, want status 0: %s", c1.Name, c1.Err(), firstLines(c1.tailFrom("panic:", 6)))
	}
	if inFlight == 0 {
		r.probs.add("drain", "no intent in flight at SIGTERM: the scenario proves nothing")
	}
	if claims > 0 {
		r.probs.add("drain", "%d claims of %s still held in Redis after it exited; want 0 (finished or released)", claims, c1.Name)
	}
	if takeover >= sessionTimeout {
		r.probs.add("drain", "%s took %.1fs after %s exited to hold every partition; want less than the session timeout (%s): did %s leave the group?",
			c2.Name, takeover.Seconds(), c1.Name, sessionTimeout, c1.Name)
	}
	if err := r.drained(ctx, pub); err != nil {
		return err
	}
	again := r.answeredAgain()
	if again > 0 {
		r.probs.add("drain", "%d requests answered more often than published: finished offsets were redelivered", again)
	}
	r.notef("SIGTERM to %s with %.0f intents in flight: exited in %.1fs, %d claims left, %s held every partition %.1fs after, %d redelivered",
		c1.Name, inFlight, exit.Seconds(), claims, c2.Name, takeover.Seconds(), again)
	r.figure("exit", fmt.Sprintf("%.1fs", exit.Seconds()))
	r.figure("in flight", fmt.Sprintf("%.0f", inFlight))
	r.figure("claims left", fmt.Sprint(claims))
	r.figure("redelivered", fmt.Sprint(again))
	r.figure("takeover", fmt.Sprintf("%.1fs", takeover.Seconds()))
	return nil
}

// waitOwner waits until some claim is in flight and returns its owner's
// instance: the part of the owner token before its sequence number.
func (r *runCtx) waitOwner(ctx context.Context) (string, error) {
	store := dedupe.New(r.s.rdb, dedupe.Options{Prefix: r.prefix})
	for {
		recs, err := store.GetMany(ctx, r.codes())
		if err != nil {
			return "", fmt.Errorf("read claims: %w", err)
		}
		for _, rec := range recs {
			if rec.State == dedupe.StateInFlight && rec.Owner != "" {
				i := strings.LastIndexByte(rec.Owner, '-')
				return rec.Owner[:i+1], nil
			}
		}
		if !sleep(ctx, 50*time.Millisecond) {
			return "", fmt.Errorf("%w waiting for a claim in flight", errTimeout)
		}
	}
}

// claimsOf counts the records still claimed by the instance owner.
func (r *runCtx) claimsOf(ctx context.Context, owner string) (int, error) {
	store := dedupe.New(r.s.rdb, dedupe.Options{Prefix: r.prefix})
	recs, err := store.GetMany(ctx, r.codes())
	if err != nil {
		return 0, fmt.Errorf("read claims: %w", err)
	}
	n := 0
	for _, rec := range recs {
		if rec.State == dedupe.StateInFlight && strings.HasPrefix(rec.Owner, owner) {
			n++
		}
	}
	return n, nil
}

func (r *runCtx) codes() []string {
	codes := make([]string, 0, len(r.w.byCode))
	for c := range r.w.byCode {
		codes = append(codes, c)
	}
	return codes
}

// waitSoleMember waits until the group is stable with one member holding
// every partition of the request topic.
func (r *runCtx) waitSoleMember(ctx context.Context, d time.Duration) error {
	start := time.Now()
	var last string
	for {
		res, err := r.s.kc.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{r.group}})
		if err == nil && len(res.Groups) == 1 {
			g := res.Groups[0]
			last = fmt.Sprintf("state %s, %d members", g.GroupState, len(g.Members))
			if g.GroupState == "Stable" && len(g.Members) == 1 {
				n := 0
				for _, t := range g.Members[0].MemberAssignments.Topics {
					if t.Topic == r.reqTopic {
						n += len(t.Partitions)
					}
				}
				if n == r.s.cfg.partitions {
					return nil
				}
			}
		}
		if time.Since(start) > d || !sleep(ctx, 50*time.Millisecond) {
			return fmt.Errorf("%w: no sole member held every partition within %s (%s; %v)", errTimeout, d, last, err)
		}
	}
}

// answeredAgain counts the requests with more result events than messages
// published for them, and the undecodable messages dead-lettered more than
// once: offsets finished before and delivered again.
func (r *runCtx) answeredAgain() int {
	published := make(map[string]int)
	byRaw := make(map[string]string)
	for _, in := range r.w.intents {
		byRaw[string(in.raw)] = in.reqID
	}
	for _, m := range r.w.msgs {
		if id, ok := byRaw[string(m.Value)]; ok {
			published[id]++
		}
	}
	r.col.mu.Lock()
	events := make(map[string]int)
	for _, rec := range r.col.results {
		if rec.res != nil {
			events[rec.res.RequestID]++
		}
	}
	dead := make(map[string]int)
	for _, rec := range r.col.dlq {
		src := header(rec.msg.Headers, event.HeaderDLQSourcePartition) + "@" + header(rec.msg.Headers, event.HeaderDLQSourceOffset)
		if dead[src]++; dead[src] == 2 {
			r.notef("dead letter of %s repeated at %s", src, rec.at.Format("15:04:05.0"))
		}
	}
	r.col.mu.Unlock()
	n := 0
	for id, e := range events {
		if e > published[id] {
			n++
		}
	}
	for _, d := range dead {
		if d > 1 {
			n++
		}
	}
	return n
}
