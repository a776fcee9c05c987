package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/internal/wxsim"
)

// runCtx is one scenario being run.
type runCtx struct {
	s    *suite
	name string
	idx  int
	rnd  *rand.Rand

	reqTopic, resTopic, dlqTopic, group, prefix string

	w          *workload
	col        *collector
	consumers  []*consumerProc
	nconsumers int
	counts0    wxsim.Counts // the simulator's totals when the scenario began

	// strictKeys: these simulator keys must have had exactly one terminate
	// call, not only one that took effect (where the design promises it).
	strictKeys map[string]bool
	// replay: the scenario replays, so replayed events are expected (each
	// with its request's event_id).
	replay bool
	// takenOver: these simulator keys were left in flight by a dead owner:
	// their event must come from a query (attempts 0, not already_terminated).
	takenOver map[string]bool

	start     time.Time // when the scenario's run began
	marks     []mark    // when faults struck
	doneNoted bool
	notes     []string
	figs      []string // the scenario's own figures, for the table
	probs     *problems
}

// mark is a fault's moment, to relate repeated events to it.
type mark struct {
	what string
	at   time.Time
}

func (r *runCtx) mark(what string) { r.marks = append(r.marks, mark{what, time.Now()}) }

// figure adds a figure of the scenario's own to its row of the table.
func (r *runCtx) figure(name, value string) { r.figs = append(r.figs, name+" "+value) }

func (r *runCtx) notef(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.notes = append(r.notes, msg)
	fmt.Printf("    %s  %s\n", time.Now().Format("15:04:05.0"), msg)
}

// problems groups failed checks by kind, keeping a few examples of each.
type problems struct {
	order []string
	count map[string]int
	ex    map[string][]string
}

func newProblems() *problems {
	return &problems{count: make(map[string]int), ex: make(map[string][]string)}
}

// add records one failed check of kind, with an example.
func (p *problems) add(kind, format string, args ...any) {
	if p.count[kind] == 0 {
		p.order = append(p.order, kind)
	}
	p.count[kind]++
	if len(p.ex[kind]) < 3 {
		p.ex[kind] = append(p.ex[kind], fmt.Sprintf(format, args...))
	}
}

func (p *problems) list() []string {
	var out []string
	for _, k := range p.order {
		s := fmt.Sprintf("%s (%d): %s", k, p.count[k], strings.Join(p.ex[k], "; "))
		out = append(out, s)
	}
	return out
}

// runScenario sets up fresh topics, group and dedupe prefix, runs sc, waits
// for every intent to be answered, stops the consumers and verifies.
func (s *suite) runScenario(parent context.Context, idx int, sc scenario) *outcome {
	start := time.Now()
	o := &outcome{name: sc.name, tried: sc.tried}
	ctx, cancel := context.WithTimeout(parent, s.cfg.scenarioTimeout)
	defer cancel()
	tag := fmt.Sprintf("faults.%s.%02d", strings.ToLower(s.runID), idx)
	r := &runCtx{
		s: s, name: sc.name, idx: idx,
		rnd:      rand.New(rand.NewPCG(s.cfg.seed, uint64(idx))),
		reqTopic: tag + ".requested", resTopic: tag + ".results", dlqTopic: tag + ".dlq",
		group: tag + ".group", prefix: fmt.Sprintf("wxterm:faults:%s:%02d:", strings.ToLower(s.runID), idx),
		strictKeys: make(map[string]bool), takenOver: make(map[string]bool),
		probs: newProblems(), start: time.Now(),
	}
	defer func() {
		for _, c := range r.consumers {
			c.Kill()
		}
	}()

	err := s.simFaults(ctx, "{}")
	if err == nil {
		err = s.createTopics(ctx, r.reqTopic, r.resTopic, r.dlqTopic)
	}
	if err == nil {
		r.counts0, err = s.simCounts(ctx, nil)
	}
	if err != nil {
		o.problems = []string{"set-up: " + err.Error()}
		o.dur = time.Since(start)
		return o
	}
	r.col = s.newCollector(parent, r.resTopic, r.dlqTopic)

	err = sc.run(ctx, r)
	if err == nil {
		err = r.waitDone(ctx)
	}
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, errTimeout) {
			err = fmt.Errorf("%w after %s: %v", errTimeout, s.cfg.scenarioTimeout, err)
		}
		r.probs.add("scenario", "%v", err)
	}
	// The sim's faults must not outlive the scenario.
	fctx, fcancel := context.WithTimeout(parent, 10*time.Second)
	if ferr := s.simFaults(fctx, "{}"); ferr != nil {
		r.probs.add("scenario", "clearing faults: %v", ferr)
	}
	fcancel()

	vctx, vcancel := context.WithTimeout(parent, 90*time.Second)
	defer vcancel()
	if err == nil {
		r.checkCommitted(vctx)
	}
	r.stopConsumers()
	o.fig = r.verify(vctx)
	o.notes, o.figs = r.notes, r.figs
	o.problems = r.probs.list()
	o.dur = time.Since(start)
	if !o.ok() {
		for _, c := range r.consumers {
			fmt.Printf("    last lines of %s (%s):\n%s\n", c.Name, c.log, indent(c.tail(8)))
		}
	}
	return o
}

func indent(s string) string {
	if s == "" {
		return "      (empty)"
	}
	return "      " + strings.ReplaceAll(s, "\n", "\n      ")
}

// setup builds the scenario's workload of n distinct intents.
func (r *runCtx) setup(n int) {
	r.w = newWorkload(r.s.runID, r.idx, n, r.rnd)
	r.notef("workload: %d distinct intents (%d valid, %d invalid), %d messages with duplicates and %d undecodable",
		len(r.w.byReq), len(r.w.byReq)-invalidCount, invalidCount, len(r.w.msgs), len(r.w.garbage))
}

// publishAsync publishes the workload in the background, batch messages
// every interval; the channel yields the result.
func (r *runCtx) publishAsync(ctx context.Context, batch int, every time.Duration) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- r.s.publish(ctx, r.reqTopic, r.w.msgs, batch, every) }()
	return ch
}

// progress is the fraction of request_ids answered.
func (r *runCtx) progress() float64 {
	return float64(r.col.snap().answered) / float64(len(r.w.byReq))
}

// waitProgress waits until at least frac of the request_ids are answered.
func (r *runCtx) waitProgress(ctx context.Context, frac float64) error {
	for r.progress() < frac {
		if err := r.crashed(); err != nil {
			return err
		}
		if !sleep(ctx, 50*time.Millisecond) {
			return fmt.Errorf("%w waiting for %.0f%% answered (at %.1f%%)", errTimeout, frac*100, r.progress()*100)
		}
	}
	return nil
}

// waitAnswered waits until every request among msgs has an event.
func (r *runCtx) waitAnswered(ctx context.Context, msgs []kafka.Message) error {
	want := make(map[string]bool)
	for _, m := range msgs {
		for _, in := range r.w.byCode[string(m.Key)] {
			if string(in.raw) == string(m.Value) {
				want[in.reqID] = true
			}
		}
	}
	for {
		r.col.mu.Lock()
		n := 0
		for id := range want {
			if r.col.answered[id] {
				n++
			}
		}
		r.col.mu.Unlock()
		if n == len(want) {
			return nil
		}
		if err := r.crashed(); err != nil {
			return err
		}
		if !sleep(ctx, 50*time.Millisecond) {
			return fmt.Errorf("%w: %d of %d requests answered", errTimeout, n, len(want))
		}
	}
}

// crashed reports a consumer that exited without being asked to.
func (r *runCtx) crashed() error {
	for _, c := range r.consumers {
		if own, err := c.ExitedOnItsOwn(); own {
			return fmt.Errorf("consumer %s exited on its own (%v); last lines:\n%s", c.Name, err, indent(c.tail(15)))
		}
	}
	return nil
}

// waitDone waits until every request_id has an event and every undecodable
// message a dead letter.
func (r *runCtx) waitDone(ctx context.Context) error {
	for {
		reqs, garbage := r.col.missing(r.w)
		if reqs == 0 && garbage == 0 {
			if r.doneNoted {
				return nil
			}
			r.doneNoted = true
			r.notef("all %d requests answered and %d dead letters read back, %.1fs into the scenario", len(r.w.byReq), len(r.w.garbage), time.Since(r.start).Seconds())
			return nil
		}
		if err := r.crashed(); err != nil {
			return err
		}
		if !sleep(ctx, 250*time.Millisecond) {
			return fmt.Errorf("%w: %d requests without an event, %d undecodable messages without a dead letter", errTimeout, reqs, garbage)
		}
	}
}

// drained waits until every request is answered (waitDone), the publisher
// pub has finished and the collector has read every output back.
func (r *runCtx) drained(ctx context.Context, pub <-chan error) error {
	if err := r.waitDone(ctx); err != nil {
		return err
	}
	if err := <-pub; err != nil {
		return err
	}
	return r.col.catchUp(ctx, 30*time.Second)
}

// startReady starts n consumers with extra flags and waits until each is
// ready.
func (r *runCtx) startReady(ctx context.Context, n int, extra ...string) ([]*consumerProc, error) {
	var cs []*consumerProc
	for range n {
		c, err := r.startConsumer(extra...)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	for _, c := range cs {
		if err := r.waitReady(ctx, c, 60*time.Second); err != nil {
			return nil, err
		}
	}
	return cs, nil
}

// checkCommitted checks that the group committed every request offset
// once all intents are answered (the consumers commit after publishing).
func (r *runCtx) checkCommitted(ctx context.Context) {
	ends, err := r.s.endOffsets(ctx, r.reqTopic)
	if err != nil {
		r.probs.add("commit", "end offsets: %v", err)
		return
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		com, err := r.s.committed(ctx, r.group, r.reqTopic)
		behind := 0
		var ex string
		if err == nil {
			for p, end := range ends {
				if com[p] < end {
					behind++
					ex = fmt.Sprintf("partition %d committed %d of %d", p, com[p], end)
				}
			}
			if behind == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			r.probs.add("commit", "after every intent was answered the group had not committed %d partitions to their end (%s; %v)", behind, ex, err)
			return
		}
		if !sleep(ctx, 250*time.Millisecond) {
			return
		}
	}
}

// stopConsumers stops the running consumers with SIGTERM (all at once) and
// reports any that had exited on their own or did not stop in time.
func (r *runCtx) stopConsumers() {
	type res struct {
		c        *consumerProc
		graceful bool
	}
	ch := make(chan res)
	n := 0
	for _, c := range r.consumers {
		if own, err := c.ExitedOnItsOwn(); own {
			r.probs.add("crash", "consumer %s exited on its own: %v", c.Name, err)
			continue
		}
		select {
		case <-c.Done():
			continue // killed by the scenario
		default:
		}
		n++
		go func(c *consumerProc) { ch <- res{c, c.Stop(20 * time.Second)} }(c)
	}
	for range n {
		x := <-ch
		switch {
		case !x.graceful:
			r.probs.add("shutdown", "consumer %s did not stop within 20s of SIGTERM", x.c.Name)
		case x.c.Err() != nil:
			// The sigterm scenario judges the exit status; elsewhere it is noted.
			r.notef("consumer %s exited with %v after SIGTERM at the end (see the sigterm scenario): %.200s", x.c.Name, x.c.Err(), firstLines(x.c.tailFrom("panic:", 3)))
		}
	}
}

// readyState polls /readyz of c.
func (r *runCtx) readyState(ctx context.Context, c *consumerProc) (int, string) {
	return c.readyz(ctx, r.s.http)
}

// waitReadyz waits until c's /readyz answers want and its body contains
// substr; it returns how long that took.
func (r *runCtx) waitReadyz(ctx context.Context, c *consumerProc, want int, substr string, d time.Duration) (time.Duration, error) {
	start := time.Now()
	var st int
	var body string
	for time.Since(start) < d {
		st, body = r.readyState(ctx, c)
		if st == want && strings.Contains(body, substr) {
			return time.Since(start), nil
		}
		if !sleep(ctx, 100*time.Millisecond) {
			break
		}
	}
	return time.Since(start), fmt.Errorf("/readyz of %s: want %d %q within %s, last %d %q", c.Name, want, substr, d, st, body)
}
