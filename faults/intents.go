package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
)

// intent is one published request, as the checks expect it answered.
type intent struct {
	reqID  string
	code   string // out_contract_code: the dedupe key and the message key
	simKey string // the simulator's key: contract_id for global_papay, else the code
	api    event.API
	valid  bool // false: expect terminate-failed, reason invalid_request, no call
	// primary is the first request for its contract; a later one (a new
	// request_id for the same contract) expects contract-terminated with
	// already_terminated and no call.
	primary bool
	// expect is what WeChat Pay holds for the contract before the run, and
	// so the outcome the checks expect: expectOurs (effective: our call
	// terminates it), expectMissing or expectUser.
	expect string
	raw    []byte
}

// What a contract is at WeChat Pay before the run (intent.expect).
const (
	expectOurs    = ""        // effective: contract-terminated, already_terminated false
	expectMissing = "missing" // no such contract: terminate-failed not_found
	expectUser    = "user"    // terminated by its user: contract-terminated, already_terminated true
)

// workload is what a scenario publishes.
type workload struct {
	intents []*intent
	byReq   map[string]*intent
	byCode  map[string][]*intent // in publication order
	garbage [][]byte             // undecodable messages: expect dead letters
	msgs    []kafka.Message      // everything, in publication order, duplicates included
}

// Mix of each workload.
const (
	dupEvery     = 20 // one exact duplicate (same bytes, same request_id) per this many intents
	againEvery   = 50 // one new request_id for an already requested contract per this many
	invalidCount = 10 // intents that fail validation but can be answered (remark too long)
	garbageCount = 5  // messages that are not JSON: dead letters
)

// newWorkload builds n distinct valid intents over the four APIs, plus
// duplicates, second requests, invalid intents and undecodable messages,
// shuffled so that every duplicate comes after its original.
func newWorkload(runID string, idx, n int, rnd *rand.Rand) *workload {
	w := &workload{byReq: make(map[string]*intent), byCode: make(map[string][]*intent)}
	type placed struct {
		at  float64
		msg kafka.Message
	}
	var all []placed
	add := func(in *intent, at float64) {
		w.byReq[in.reqID] = in
		w.byCode[in.code] = append(w.byCode[in.code], in)
		w.intents = append(w.intents, in)
		all = append(all, placed{at, kafka.Message{Key: []byte(in.code), Value: in.raw}})
	}
	base := fmt.Sprintf("FT%s%02d", runID, idx)
	now := time.Now().UTC()
	for i := range n {
		code := fmt.Sprintf("%sC%05d", base, i)
		in := event.Intent{
			SchemaVersion: event.SchemaVersion, RequestID: fmt.Sprintf("ft-%s-%02d-%05d", strings.ToLower(runID), idx, i),
			RequestedAt: now, Source: "faults", OutContractCode: code, Remark: "fault suite",
		}
		simKey := code
		switch i % 10 {
		case 0, 1, 2, 3, 4, 5:
			in.API = event.CreditRepayment
		case 6, 7:
			in.API, in.PlanID, in.SubMchID = event.PapayPartner, "12535", "1900000110"
		case 8:
			in.API, in.PlanID = event.PapayDirect, "12536"
		case 9:
			in.API, in.ContractID, in.AppID = event.GlobalPapay, fmt.Sprintf("%sG%05d", base, i), "wxd678efh567hg6787"
			simKey = in.ContractID
		}
		it := &intent{reqID: in.RequestID, code: code, simKey: simKey, api: in.API, valid: true, primary: true, raw: mustJSON(in)}
		add(it, float64(i))
		if i%againEvery == againEvery-1 {
			again := in
			again.RequestID += "-again"
			again.Remark = "fault suite, asked again"
			at := float64(i) + 1 + rnd.Float64()*float64(n-i)
			add(&intent{reqID: again.RequestID, code: code, simKey: simKey, api: in.API, valid: true, raw: mustJSON(again)}, at)
		}
		if rnd.IntN(dupEvery) == 0 {
			at := float64(i) + 0.5 + rnd.Float64()*float64(n-i)
			all = append(all, placed{at, kafka.Message{Key: []byte(code), Value: it.raw}})
		}
	}
	for i := range invalidCount {
		code := fmt.Sprintf("%sX%03d", base, i)
		in := event.Intent{
			SchemaVersion: event.SchemaVersion, RequestID: fmt.Sprintf("ft-%s-%02d-x%03d", strings.ToLower(runID), idx, i),
			RequestedAt: now, Source: "faults", API: event.CreditRepayment, OutContractCode: code,
			Remark: strings.Repeat("r", 200), // credit_repayment allows 128
		}
		add(&intent{reqID: in.RequestID, code: code, simKey: code, api: in.API, raw: mustJSON(in)}, rnd.Float64()*float64(n))
	}
	for i := range garbageCount {
		g := fmt.Appendf(nil, "{not json: fault suite %s/%02d garbage %d", runID, idx, i)
		w.garbage = append(w.garbage, g)
		all = append(all, placed{rnd.Float64() * float64(n), kafka.Message{Key: fmt.Appendf(nil, "%sZ%03d", base, i), Value: g}})
	}
	slices.SortStableFunc(all, func(a, b placed) int {
		switch {
		case a.at < b.at:
			return -1
		case a.at > b.at:
			return 1
		}
		return 0
	})
	for _, p := range all {
		w.msgs = append(w.msgs, p.msg)
	}
	return w
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// publish writes msgs to topic in batches of batch, one batch per every,
// with acks from all replicas, retrying a batch until it is written or ctx
// is done (a retry may duplicate messages, which is at-least-once too).
func (s *suite) publish(ctx context.Context, topic string, msgs []kafka.Message, batch int, every time.Duration) error {
	w := &kafka.Writer{
		Addr: kafka.TCP(s.cfg.kafka), Topic: topic, Balancer: kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond, BatchSize: batch,
		WriteTimeout: 10 * time.Second, MaxAttempts: 3,
	}
	defer w.Close()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := 0; i < len(msgs); i += batch {
		chunk := msgs[i:min(i+batch, len(msgs))]
		for {
			err := w.WriteMessages(ctx, chunk...)
			if err == nil {
				break
			}
			if !sleep(ctx, 500*time.Millisecond) {
				return fmt.Errorf("publish: %w (last error: %v)", ctx.Err(), err)
			}
		}
		if i+batch < len(msgs) {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}
