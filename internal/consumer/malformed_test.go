package consumer

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
)

// malformed returns the i-th bad message and whether the consumer can still
// identify it (and so must answer it with an event rather than a dead
// letter).
func malformed(rng *rand.Rand, i int) (kafka.Message, bool) {
	code := fmt.Sprintf("BAD%05d", i)
	req := "req-" + code
	good := func() map[string]any {
		return map[string]any{"schema_version": 1, "request_id": req, "requested_at": "2026-11-22T10:00:00Z",
			"source": "fuzz", "api": "credit_repayment", "out_contract_code": code, "remark": "x"}
	}
	enc := func(m map[string]any) []byte { b, _ := json.Marshal(m); return b }
	key := []byte(code)
	switch i % 9 {
	case 0: // random bytes
		b := make([]byte, 1+rng.IntN(300))
		for j := range b {
			b[j] = byte(rng.UintN(256))
		}
		b[0] = 0xff // never valid JSON
		return kafka.Message{Key: key, Value: b}, false
	case 1: // wrong types
		m := good()
		m["schema_version"], m["remark"] = "1", 42
		return kafka.Message{Key: key, Value: enc(m)}, true
	case 2: // missing fields
		m := good()
		delete(m, "api")
		delete(m, "remark")
		return kafka.Message{Key: key, Value: enc(m)}, true
	case 3: // oversized field
		m := good()
		m["remark"] = strings.Repeat("解", 200)
		return kafka.Message{Key: key, Value: enc(m)}, true
	case 4: // invalid characters in the contract code: not identifiable
		m := good()
		m["out_contract_code"] = "合同-" + code
		return kafka.Message{Key: key, Value: enc(m)}, false
	case 5: // unknown api
		m := good()
		m["api"] = "papay_magic"
		return kafka.Message{Key: key, Value: enc(m)}, true
	case 6: // unknown merchant: valid, but not this deployment's
		m := good()
		m["mchid"] = "1900000001"
		return kafka.Message{Key: key, Value: enc(m)}, true
	case 7: // a whole message far over the size limit
		return kafka.Message{Key: key, Value: []byte(`{"request_id":"` + req + `","x":"` + strings.Repeat("a", 40<<10) + `"}`)}, false
	default: // truncated JSON
		b := enc(good())
		return kafka.Message{Key: key, Value: b[:len(b)/2]}, false
	}
}

// Bad input never stalls a partition, never crashes the consumer and is
// never dropped: every malformed message ends as terminate-failed or a dead
// letter, and every good intent among them succeeds.
func TestMalformedFloodDoesNotStall(t *testing.T) {
	bad := 10000
	if testing.Short() {
		bad = 1000
	}
	const goodEvery = 20
	h := newHarness(t, harnessOpts{})
	rng := rand.New(rand.NewPCG(1, 2))
	var msgs []kafka.Message
	identifiable, dead := 0, 0
	var goods []event.Intent
	for i := range bad {
		m, ok := malformed(rng, i)
		msgs = append(msgs, m)
		if ok {
			identifiable++
		} else {
			dead++
		}
		if i%goodEvery == 0 {
			in := newIntent(event.CreditRepayment, fmt.Sprintf("GOOD%05d", i))
			seed(h.sim, in)
			goods = append(goods, in)
			b, _ := json.Marshal(in)
			msgs = append(msgs, kafka.Message{Key: []byte(in.OutContractCode), Value: b})
		}
	}
	opts := h.options(0)
	c, stop := h.start(opts)
	for i := 0; i < len(msgs); i += 1000 {
		h.publishRaw(msgs[i:min(i+1000, len(msgs))]...)
	}
	wantEvents := identifiable + len(goods)
	h.waitFor("every message answered", 4*time.Minute, func(ev []event.Result, d []kafka.Message) bool {
		return len(ev) >= wantEvents && len(d) >= dead
	})
	evs := h.settle(c)
	got := byRequest(evs)
	for _, in := range goods {
		if e := got[in.RequestID]; len(e) != 1 || e[0].EventType != event.TypeTerminated {
			t.Errorf("good intent %s: got %+v; want one contract-terminated", in.RequestID, e)
		}
	}
	failed := 0
	for _, e := range evs {
		if e.EventType == event.TypeFailed {
			failed++
			if e.Reason != event.ReasonInvalidRequest && e.Reason != event.ReasonNotAllowed {
				t.Errorf("bad intent %s: got reason %q", e.RequestID, e.Reason)
			}
		}
	}
	h.mu.Lock()
	gotDead := len(h.dead)
	h.mu.Unlock()
	if failed != identifiable || gotDead != dead {
		t.Errorf("got %d terminate-failed and %d dead letters; want %d and %d", failed, gotDead, identifiable, dead)
	}
	if n := h.sim.TotalTerminateCalls(); n != len(goods) {
		t.Errorf("simulator saw %d terminate calls; want %d (good intents only)", n, len(goods))
	}
	stop()
	// No partition stalled: the group's commits reached each partition's end.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl := &kafka.Client{Addr: kafka.TCP(h.brokers...)}
	parts := []int{0, 1, 2, 3}
	committed, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: opts.GroupID, Topics: map[string][]int{h.requests: parts}})
	if err != nil {
		t.Fatal(err)
	}
	var reqs []kafka.OffsetRequest
	for _, p := range parts {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	ends, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{h.requests: reqs}})
	if err != nil {
		t.Fatal(err)
	}
	end := map[int]int64{}
	for _, po := range ends.Topics[h.requests] {
		end[po.Partition] = po.LastOffset
	}
	for _, p := range committed.Topics[h.requests] {
		if p.CommittedOffset != end[p.Partition] {
			t.Errorf("partition %d: committed %d; want its end %d", p.Partition, p.CommittedOffset, end[p.Partition])
		}
	}
}
