package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/consumer"
	"github.com/wxterm/wxterm/internal/wxapi"
	"github.com/wxterm/wxterm/internal/wxsim"
	"github.com/wxterm/wxterm/schemas"
)

// demo publishes the example intents to the embedded Kafka, prints every
// result as it arrives, and returns once each expected result is in (or
// keeps printing with -keep-running).
type demo struct {
	opts        consumer.Options // the consumer's topics
	emb         *embedded
	stats       *consumer.Stats
	keepRunning bool
	out         io.Writer
	mu          sync.Mutex // out
}

// demoMessage is one example: what is published and what should come of it.
type demoMessage struct {
	what   string
	msg    kafka.Message
	expect string // request id of the expected result; "" for none (a duplicate) or a dead letter
	dead   bool
	simKey string // the simulator's key of a contract that must see exactly one terminate call
}

func (d *demo) examples() ([]demoMessage, error) {
	var out []demoMessage
	names, err := fs.Glob(schemas.FS, "examples/intent-*.json")
	if err != nil {
		return nil, err
	}
	var first event.Intent
	for _, name := range names {
		b, err := fs.ReadFile(schemas.FS, name)
		if err != nil {
			return nil, err
		}
		in, err := event.DecodeIntent(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if first.RequestID == "" {
			first = in
		}
		key := in.OutContractCode
		if in.API == event.GlobalPapay {
			key = in.ContractID
		}
		out = append(out, demoMessage{what: string(in.API) + " example", msg: intentMessage(in), expect: in.RequestID, simKey: key})
	}
	now := time.Now().UTC().Truncate(time.Second)
	base := event.Intent{SchemaVersion: 1, RequestedAt: now, Source: "demo", Remark: "demo"}

	// WeChat Pay rejects it: the contract belongs to another sub-merchant.
	rejected := base
	rejected.RequestID, rejected.API, rejected.OutContractCode, rejected.PlanID, rejected.SubMchID = "demo-rejected", event.PapayPartner, "DemoWrongSubMch1", "12535", "1900000999"
	d.emb.sim.Seed(wxsim.Contract{API: wxapi.PapayPartner, OutContractCode: rejected.OutContractCode, PlanID: "12535", SubMchID: "1900000109", DisplayName: "*华"})
	out = append(out, demoMessage{what: "rejected by WeChat Pay (PARAM_ERROR)", msg: intentMessage(rejected), expect: rejected.RequestID, simKey: rejected.OutContractCode})

	// The user terminated it already: answered from a query, no failure.
	gone := base
	gone.RequestID, gone.API, gone.OutContractCode = "demo-already", event.CreditRepayment, "DemoUserTerminated1"
	// WeChat says who terminated it and when (its user, an hour ago): that,
	// not the number of our attempts, makes it already_terminated.
	d.emb.sim.Seed(wxsim.Contract{API: wxapi.CreditRepayment, OutContractCode: gone.OutContractCode, DisplayName: "*丽"})
	d.emb.sim.TerminateAs(gone.OutContractCode, wxsim.ByUser, now.Add(-time.Hour))
	out = append(out, demoMessage{what: "already terminated by the user", msg: intentMessage(gone), expect: gone.RequestID, simKey: gone.OutContractCode})

	// Invalid but identifiable: answered with reason=invalid_request.
	out = append(out, demoMessage{
		what:   "invalid intent (unknown api)",
		msg:    kafka.Message{Key: []byte("DemoInvalid1"), Value: []byte(`{"schema_version":1,"request_id":"demo-invalid","requested_at":"` + now.Format(time.RFC3339) + `","source":"demo","api":"papay_magic","out_contract_code":"DemoInvalid1","remark":"x"}`)},
		expect: "demo-invalid",
	})
	// Not even JSON: dead-lettered.
	out = append(out, demoMessage{what: "undecodable bytes", msg: kafka.Message{Key: []byte("DemoGarbage1"), Value: []byte("\x00not json")}, dead: true})
	// The user terminates in WeChat; WeChat Pay's notification (run) becomes
	// the result: no intent, no terminate call.
	d.emb.sim.Seed(wxsim.Contract{API: wxapi.PapayDirect, OutContractCode: demoUserInWeChat, PlanID: "12535", DisplayName: "*伟"})
	// The first example again: a duplicate, no call and no event.
	out = append(out, demoMessage{what: "duplicate of the first example", msg: intentMessage(first)})
	return out, nil
}

// demoUserInWeChat is the contract its user terminates in WeChat.
const demoUserInWeChat = "DemoUserInWeChat1"

// userTerminates has the simulator terminate demoUserInWeChat as its user
// and deliver WeChat Pay's notification to the embedded endpoint; it
// returns the request id of the result that must follow.
func (d *demo) userTerminates(ctx context.Context) (string, error) {
	tm, ok, err := d.emb.sim.TerminateAndNotify(ctx, d.emb.notifier, d.emb.notifyURL, demoUserInWeChat)
	if !ok || err != nil {
		return "", fmt.Errorf("demo: user termination of %s: terminated %v: %w", demoUserInWeChat, ok, err)
	}
	d.printf("  %-40s key=%s (%s %s, %d delivery)\n", "terminated by its user in WeChat", demoUserInWeChat, tm.EventType, tm.NotificationID, tm.Delivery.Attempts)
	return event.Notification{ID: tm.NotificationID}.RequestID(), nil
}

func intentMessage(in event.Intent) kafka.Message {
	b, _ := json.Marshal(in)
	return kafka.Message{Key: []byte(in.OutContractCode), Value: b}
}

func (d *demo) printf(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.out, format, args...)
}

func (d *demo) run(ctx context.Context) error {
	msgs, err := d.examples()
	if err != nil {
		return err
	}
	brokers := d.emb.brokers
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: d.opts.RequestTopic, Balancer: kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()

	want := map[string]bool{}
	wantDead := 0
	d.printf("publishing %d example messages to %s:\n", len(msgs), d.opts.RequestTopic)
	for _, m := range msgs {
		d.printf("  %-40s key=%s\n", m.what, m.msg.Key)
		if m.expect != "" {
			want[m.expect] = true
		}
		if m.dead {
			wantDead++
		}
		// One at a time, so the duplicate follows its original.
		if err := w.WriteMessages(ctx, m.msg); err != nil {
			return fmt.Errorf("demo: publish: %w", err)
		}
	}
	req, err := d.userTerminates(ctx)
	if err != nil {
		return err
	}
	want[req] = true
	d.printf("results from %s:\n", d.opts.ResultTopic)

	results := make(chan kafka.Message)
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for _, topic := range []string{d.opts.ResultTopic, d.opts.DLQTopic} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, GroupID: "demo-printer-" + topic, Topic: topic,
				StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
			defer r.Close()
			for {
				m, err := r.ReadMessage(rctx)
				if err != nil {
					return
				}
				select {
				case results <- m:
				case <-rctx.Done():
					return
				}
			}
		}()
	}

	seen, dead := map[string]int{}, 0
	done := func() bool {
		for id := range want {
			if seen[id] == 0 {
				return false
			}
		}
		return dead >= wantDead
	}
	timeout := time.After(60 * time.Second)
	// Done when every result is in and the duplicate was seen and dropped.
	for d.keepRunning || !done() || d.stats.Duplicates.Load() < 1 {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		case <-timeout:
			if !d.keepRunning {
				return fmt.Errorf("demo: timed out waiting for results; have %v, want %v", seen, want)
			}
		case m := <-results:
			if m.Topic == d.opts.DLQTopic {
				dead++
				d.printf("  dead letter           key=%-32s error=%q\n", m.Key, header(m, event.HeaderDLQError))
				continue
			}
			var r event.Result
			if err := json.Unmarshal(m.Value, &r); err != nil {
				return fmt.Errorf("demo: result is not JSON: %w", err)
			}
			seen[r.RequestID]++
			d.printf("  %-21s key=%-32s request_id=%-14s %s\n", r.EventType, r.OutContractCode, r.RequestID, describe(r))
		}
	}
	return d.verify(seen, msgs)
}

func describe(r event.Result) string {
	if r.EventType == event.TypeTerminated {
		s := fmt.Sprintf("api=%s attempts=%d state=%s", r.API, r.Attempts, r.Contract.ContractState)
		if r.AlreadyTerminated {
			s += " already_terminated"
		}
		if r.Origin == event.OriginNotification {
			s += " origin=notification termination_mode=" + r.Contract.TerminationMode
		}
		return s
	}
	s := "reason=" + r.Reason
	if r.ErrorCode != "" {
		s += fmt.Sprintf(" error=%d %s", r.HTTPStatus, r.ErrorCode)
	}
	if r.Detail != "" {
		s += fmt.Sprintf(" detail=%q", r.Detail)
	}
	return s
}

// verify checks the demo's promise: one event per request, and never more
// than one terminate call per contract.
func (d *demo) verify(seen map[string]int, msgs []demoMessage) error {
	var problems []string
	for id, n := range seen {
		if n != 1 {
			problems = append(problems, fmt.Sprintf("request %s got %d events", id, n))
		}
	}
	d.printf("WeChat Pay simulator, terminate calls per contract:\n")
	total := 0
	for _, m := range msgs {
		if m.simKey == "" {
			continue
		}
		n := d.emb.sim.TerminateCalls(m.simKey)
		total++
		d.printf("  %-32s %d\n", m.simKey, n)
		if n != 1 {
			problems = append(problems, fmt.Sprintf("contract %s saw %d terminate calls", m.simKey, n))
		}
	}
	if n := d.emb.sim.TotalTerminateCalls(); n != total {
		problems = append(problems, fmt.Sprintf("%d terminate calls in all; want %d", n, total))
	}
	if len(problems) > 0 {
		return fmt.Errorf("demo: %s", strings.Join(problems, "; "))
	}
	d.printf("every intent has exactly one result; every contract saw one terminate call\n")
	return nil
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
