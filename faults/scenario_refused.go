package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/consumer"
	"github.com/wxterm/wxterm/internal/e2e"
)

// Sizes of the refused-result scenario: the result topic takes the suite's
// normal events (about 1.2 KB as a record batch) but not those of a
// global_papay contract with a 250-character termination note (about 2 KB);
// the dead-letter topic takes a normal dead letter but not one carrying the
// 2 KB header of its intent.
const (
	refusedResultMaxBytes = "1500"
	refusedDLQMaxBytes    = "1000"
	refusedBig            = 40 // intents whose results are too large
	refusedGarbage        = 10 // undecodable messages whose dead letters are too large
)

// refusedScenario: the result and dead-letter topics refuse some outputs
// (max.message.bytes small), mixed with normal intents. Every intent must
// still be answered (in reduced form where refused), every undecodable
// message dead-lettered (reduced), and the commits reach the end: nothing
// held, nothing dropped.
func refusedScenario(ctx context.Context, r *runCtx) error {
	c, err := r.begin(ctx, r.s.cfg.small, "{}")
	if err != nil {
		return err
	}
	cl := &kafka.Client{Addr: kafka.TCP(r.s.cfg.kafka)}
	if err := e2e.SetTopicConfig(ctx, cl, r.resTopic, "max.message.bytes", refusedResultMaxBytes); err != nil {
		return err
	}
	if err := e2e.SetTopicConfig(ctx, cl, r.dlqTopic, "max.message.bytes", refusedDLQMaxBytes); err != nil {
		return err
	}
	big, junk := r.addOversized()
	r.notef("result topic max.message.bytes=%s, dead-letter topic %s; %d intents with oversized results and %d undecodable messages with a 2 KB header mixed in",
		refusedResultMaxBytes, refusedDLQMaxBytes, len(big), len(junk))
	if err := <-r.publishAsync(ctx, 100, 20*time.Millisecond); err != nil {
		return err
	}
	if err := r.waitDone(ctx); err != nil {
		return err
	}
	if err := r.col.catchUp(ctx, 30*time.Second); err != nil {
		return err
	}
	// Every oversized output came out reduced, saying why.
	r.col.mu.Lock()
	reducedResults, reducedDead := 0, 0
	for _, rec := range r.col.results {
		if rec.res != nil && big[rec.res.RequestID] {
			if !strings.Contains(string(rec.msg.Value), `"detail":"reduced: `) {
				r.probs.add("refused output", "result of %s is not the reduced event: %.200s", rec.res.RequestID, rec.msg.Value)
			}
			reducedResults++
		}
	}
	for _, rec := range r.col.dlq {
		if junk[string(rec.msg.Value)] {
			if header(rec.msg.Headers, consumer.HeaderRefused) == "" || header(rec.msg.Headers, event.HeaderDLQSourceOffset) == "" {
				r.probs.add("refused output", "dead letter %.60q lacks %s or its source offset", rec.msg.Value, consumer.HeaderRefused)
			}
			reducedDead++
		}
	}
	r.col.mu.Unlock()
	reduced := c.metric(ctx, r.s.http, "wxterm_outputs_reduced_total")
	fault := c.metric(ctx, r.s.http, "wxterm_output_fault")
	st, body := r.readyState(ctx, c)
	r.notef("%d oversized results published reduced (%d requests), %d oversized dead letters reduced; wxterm_outputs_reduced_total %.0f, wxterm_output_fault %.0f, /readyz %d %s",
		reducedResults, len(big), reducedDead, reduced, fault, st, strings.TrimSpace(body))
	switch {
	case reducedResults < len(big) || reducedDead < len(junk):
		r.probs.add("refused output", "%d of %d oversized results and %d of %d oversized dead letters read back", reducedResults, len(big), reducedDead, len(junk))
	case reduced < float64(len(big)+len(junk)):
		r.probs.add("refused output", "wxterm_outputs_reduced_total %.0f; want at least %d", reduced, len(big)+len(junk))
	case fault != 0:
		r.probs.add("refused output", "wxterm_output_fault %.0f after the run; want 0 (nothing held)", fault)
	}
	return nil
}

// addOversized adds to the workload intents whose results the result topic
// refuses and undecodable messages whose dead letters the dead-letter
// topic refuses, spread through it; it returns their request ids and values.
func (r *runCtx) addOversized() (big map[string]bool, junk map[string]bool) {
	w := r.w
	big, junk = make(map[string]bool), make(map[string]bool)
	base := fmt.Sprintf("FT%s%02d", r.s.runID, r.idx)
	var extra []kafka.Message
	for i := range refusedBig {
		code := fmt.Sprintf("%sB%03d", base, i)
		in := event.Intent{
			SchemaVersion: event.SchemaVersion, RequestID: fmt.Sprintf("ft-%s-%02d-b%03d", strings.ToLower(r.s.runID), r.idx, i),
			RequestedAt: time.Now().UTC(), Source: "faults", API: event.GlobalPapay, OutContractCode: code,
			ContractID: fmt.Sprintf("%sH%03d", base, i), AppID: "wxd678efh567hg6787",
			Remark: strings.Repeat("解约说明", 62), // 248 characters: global_papay's termination_note allows 256
		}
		it := &intent{reqID: in.RequestID, code: code, simKey: in.ContractID, api: in.API, valid: true, primary: true, raw: mustJSON(in)}
		w.byReq[it.reqID], w.byCode[code] = it, append(w.byCode[code], it)
		w.intents = append(w.intents, it)
		big[it.reqID] = true
		extra = append(extra, kafka.Message{Key: []byte(code), Value: it.raw})
	}
	blob := []byte(strings.Repeat("b", 2048))
	for i := range refusedGarbage {
		g := fmt.Appendf(nil, "{not json: oversized fault suite %s/%02d garbage %d", r.s.runID, r.idx, i)
		w.garbage = append(w.garbage, g)
		junk[string(g)] = true
		extra = append(extra, kafka.Message{Key: fmt.Appendf(nil, "%sJ%03d", base, i), Value: g,
			Headers: []kafka.Header{{Key: "x-upstream-context", Value: blob}}})
	}
	// Interleave: one oversized message after every few normal ones.
	every := max(1, len(w.msgs)/len(extra))
	var msgs []kafka.Message
	for i, m := range w.msgs {
		msgs = append(msgs, m)
		if j := i / every; i%every == every-1 && j < len(extra) {
			msgs = append(msgs, extra[j])
			extra[j] = kafka.Message{}
		}
	}
	for _, m := range extra {
		if m.Value != nil {
			msgs = append(msgs, m)
		}
	}
	w.msgs = msgs
	return big, junk
}
