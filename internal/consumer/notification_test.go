package consumer

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/notify"
	"github.com/wxterm/wxterm/internal/testenv"
	"github.com/wxterm/wxterm/internal/wxsim"
	"github.com/wxterm/wxterm/schemas"
)

// notifyRig is the notification path in front of a harness: the simulator's
// Notifier delivers to internal/notify's endpoint, which writes to a
// notification topic the consumer reads.
type notifyRig struct {
	*harness
	topic    string
	url      string
	notifier *wxsim.Notifier
}

func newNotifyRig(t *testing.T) *notifyRig {
	h := newHarness(t, harnessOpts{partitions: 2})
	r := &notifyRig{harness: h, topic: testenv.Topic(t, "ntf")}
	testenv.CreateTopics(t, h.brokers, 2, r.topic)
	pub := notify.NewKafkaPublisher(h.brokers, r.topic, nil)
	t.Cleanup(func() { _ = pub.Close() })
	keys, err := notify.PublicKey(h.keys.PublicKeyID, &h.keys.PlatformKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	hd, err := notify.New(notify.Options{
		Merchants: []notify.Merchant{{MchID: h.keys.MchID, APIv3Key: h.keys.APIv3Key, Keys: keys}},
		Publisher: pub, Metrics: notify.NewMetrics(prometheus.NewRegistry()), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(hd)
	t.Cleanup(srv.Close)
	r.url = srv.URL + notify.PathSingle
	r.notifier, err = wxsim.NewNotifier(wxsim.NotifierOptions{PublicKeyID: h.keys.PublicKeyID, PlatformKey: h.keys.PlatformKey,
		APIv3Key: h.keys.APIv3Key, TimeScale: 0.001})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *notifyRig) options() Options {
	o := r.harness.options(0)
	o.NotificationTopic = r.topic
	return o
}

// deliver sends notification id of eventType about in's contract, as
// WeChat Pay would, until it is accepted.
func (r *notifyRig) deliver(id, eventType, rawMode string, in event.Intent) {
	r.t.Helper()
	body, err := r.notifier.NotificationBody(id, eventType, wxsim.NotificationContract{
		API: in.API, MchID: r.keys.MchID, SubMchID: in.SubMchID, OutContractCode: in.OutContractCode,
		ContractID: in.ContractID, PlanID: 12535, RawMode: rawMode,
	})
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := r.notifier.Deliver(ctx, r.url, body); err != nil {
		r.t.Fatalf("deliver %s: %v", id, err)
	}
}

// waitDuplicates waits until the consumer has answered n messages without
// publishing (duplicates and absorbed notifications).
func waitDuplicates(t *testing.T, c *Consumer, n int64) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for c.Stats().Duplicates.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("duplicates %d; want %d", c.Stats().Duplicates.Load(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNotificationIsOneResultAndADedupeFact(t *testing.T) {
	r := newNotifyRig(t)
	in := newIntent(event.PapayDirect, "NT1")
	key := seed(r.sim, in)
	c, _ := r.start(r.options())
	// A signing notification for the contract (same key, so handled before
	// the termination): acknowledged, ignored.
	r.deliver("sign-1", event.NotifyEntrustSign, "", in)
	tm, ok, err := r.sim.TerminateAndNotify(context.Background(), r.notifier, r.url, key)
	if !ok || err != nil {
		t.Fatalf("terminate as user: ok %v, err %v", ok, err)
	}
	for range 9 { // WeChat Pay's repeats: same id, each freshly encrypted and signed
		r.deliver(tm.NotificationID, tm.EventType, "", in)
	}

	req := "notification:" + tm.NotificationID
	ev := r.waitEvents(1, waitLong)
	waitDuplicates(t, c, 9)
	time.Sleep(300 * time.Millisecond) // room for a wrong second result to land
	if got := r.snapshot(); len(got) != 1 {
		t.Fatalf("got %d events for ten deliveries and a signing; want 1: %+v", len(got), got)
	}
	e := ev[0]
	want := event.EventID(req, in.OutContractCode, event.TypeTerminated)
	if e.RequestID != req || e.EventID != want || e.EventType != event.TypeTerminated || e.Origin != event.OriginNotification || e.AlreadyTerminated {
		t.Fatalf("got %+v; want a contract-terminated of %s, event_id %s, origin notification, not already terminated", e, req, want)
	}
	if e.Contract == nil || e.Contract.TerminationMode != string(event.ModeUser) || e.Contract.State != "terminated" ||
		e.Contract.ContractTerminationMode != "USER_TERMINATE" || e.Contract.TerminatedAt == nil || e.Contract.OutContractCode != in.OutContractCode {
		t.Fatalf("got contract %+v; want terminated by the user, with its time", e.Contract)
	}
	rec, err := r.store.Get(context.Background(), in.OutContractCode)
	if err != nil || rec.Kind != dedupe.KindTerminated || rec.OutcomeRequestID != req || !rec.Published[req] {
		t.Fatalf("got record %+v, %v; want terminated by %s, published", rec, err, req)
	}

	// A later intent for the contract: already terminated, no call.
	r.publish(in)
	r.waitFor("the intent's answer", waitLong, func(ev []event.Result, _ []kafka.Message) bool { return len(byRequest(ev)[in.RequestID]) > 0 })
	got := byRequest(r.snapshot())[in.RequestID][0]
	if got.EventType != event.TypeTerminated || !got.AlreadyTerminated || got.Origin != event.OriginIntent ||
		got.Contract == nil || got.Contract.TerminationMode != string(event.ModeUser) {
		t.Fatalf("got %+v; want contract-terminated, already_terminated, the user's termination", got)
	}
	if n := r.sim.TerminateCalls(key); n != 0 {
		t.Fatalf("got %d terminate calls; want 0", n)
	}
}

func TestNotificationAfterOurTerminationAddsNothing(t *testing.T) {
	r := newNotifyRig(t)
	in := newIntent(event.PapayDirect, "NT2")
	seed(r.sim, in)
	c, _ := r.start(r.options())
	r.publish(in)
	ev := r.waitEvents(1, waitLong)
	if ev[0].RequestID != in.RequestID || ev[0].EventType != event.TypeTerminated || ev[0].AlreadyTerminated {
		t.Fatalf("got %+v; want our termination", ev[0])
	}
	// WeChat Pay notifies terminations by the merchant's API call too.
	r.deliver("merchant-1", event.NotifyEntrustTerminate, "MCH_API_TERMINATE", in)
	waitDuplicates(t, c, 1)
	if got := r.settle(c); len(got) != 1 {
		t.Fatalf("got %d events; want only our termination: %+v", len(got), got)
	}
	rec, err := r.store.Get(context.Background(), in.OutContractCode)
	if err != nil || rec.OutcomeRequestID != in.RequestID {
		t.Fatalf("got record %+v, %v; want terminated by %s", rec, err, in.RequestID)
	}
}

// TestNotificationsRacingIntents runs, for each contract at once, an intent
// and its user terminating it in WeChat (with WeChat Pay's notification):
// whichever comes first, the stream holds one termination per contract and
// every intent is answered consistently with it.
func TestNotificationsRacingIntents(t *testing.T) {
	r := newNotifyRig(t)
	const n = 30
	ins := make([]event.Intent, n)
	keys := make([]string, n)
	for i := range ins {
		ins[i] = newIntent(event.PapayDirect, fmt.Sprintf("NR%02d", i))
		keys[i] = seed(r.sim, ins[i])
	}
	c, _ := r.start(r.options())
	for c.Ready() != nil { // race the intents, not the group's join
		time.Sleep(20 * time.Millisecond)
	}
	notes := make([]string, n) // the notification's request id, if the user terminated first
	var wg sync.WaitGroup
	for i := range ins {
		wg.Add(2)
		go func() { defer wg.Done(); r.publish(ins[i]) }()
		go func() {
			defer wg.Done()
			// Users act at spread times, so some find the contract
			// terminated by the intent already.
			time.Sleep(time.Duration(i%6) * 250 * time.Millisecond)
			tm, ok, err := r.sim.TerminateAndNotify(context.Background(), r.notifier, r.url, keys[i])
			if err != nil {
				t.Errorf("notify %s: %v", keys[i], err)
			}
			if ok {
				notes[i] = "notification:" + tm.NotificationID
			}
		}()
	}
	wg.Wait()
	r.waitFor("every intent's answer and every recorded notification's", waitLong, func(ev []event.Result, _ []kafka.Message) bool {
		by := byRequest(ev)
		for _, in := range ins {
			if len(by[in.RequestID]) == 0 {
				return false
			}
			rec, err := r.store.Get(context.Background(), in.OutContractCode)
			if err != nil || rec.Kind != dedupe.KindTerminated || len(by[rec.OutcomeRequestID]) == 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(500 * time.Millisecond) // room for a wrong second termination to land
	checkOneTermination(t, r.store, r.snapshot(), ins, notes)
}

// checkOneTermination checks the result stream of contracts that intents
// and notifications raced for: per contract, the termination the dedupe
// record holds was published once; no other event claims it first-hand
// (origin notification, or an intent's not already_terminated); every
// terminated event names the same terminator; an intent other than the
// terminator is answered already_terminated; and a notification that was
// delivered has its result or was absorbed by an earlier termination.
func checkOneTermination(t *testing.T, store *dedupe.Store, events []event.Result, ins []event.Intent, notes []string) {
	t.Helper()
	byCode := make(map[string][]event.Result)
	seen := make(map[string]bool)
	for _, e := range events {
		if !seen[e.EventID] { // the same event_id twice is a harmless republication
			seen[e.EventID] = true
			byCode[e.OutContractCode] = append(byCode[e.OutContractCode], e)
		}
	}
	users, ours := 0, 0
	for i, in := range ins {
		rec, err := store.Get(context.Background(), in.OutContractCode)
		if err != nil || rec.Kind != dedupe.KindTerminated {
			t.Errorf("%s: record %+v, %v; want terminated", in.OutContractCode, rec, err)
			continue
		}
		by := rec.OutcomeRequestID
		firstHand, mode := 0, ""
		var answered, terminator bool
		for _, e := range byCode[in.OutContractCode] {
			if e.EventType != event.TypeTerminated {
				t.Errorf("%s: got %+v; want contract-terminated", in.OutContractCode, e)
				continue
			}
			if e.Origin == event.OriginNotification || !e.AlreadyTerminated {
				firstHand++
			}
			// The raw mode, normalised: an intent's query may not carry the
			// normalised one.
			m := string(event.NormaliseTerminationMode(e.Contract.ContractTerminationMode))
			if mode != "" && m != mode {
				t.Errorf("%s: termination modes %s and %s in one contract's events", in.OutContractCode, mode, m)
			}
			mode = m
			terminator = terminator || e.RequestID == by
			if e.RequestID == in.RequestID {
				answered = true
				if by != in.RequestID && !e.AlreadyTerminated {
					t.Errorf("%s: intent answered %+v, but %s terminated the contract: want already_terminated", in.OutContractCode, e, by)
				}
			}
		}
		if firstHand > 1 {
			t.Errorf("%s: got %d first-hand terminations; want at most 1: %+v", in.OutContractCode, firstHand, byCode[in.OutContractCode])
		}
		if !answered || !terminator {
			t.Errorf("%s: intent answered %v, terminator %s published %v", in.OutContractCode, answered, by, terminator)
		}
		if mode == string(event.ModeMerchant) {
			ours++
		}
		if notes[i] != "" {
			users++
			if mode != string(event.ModeUser) {
				t.Errorf("%s: the user terminated it first; events say %q", in.OutContractCode, mode)
			}
		}
	}
	t.Logf("%d contracts: %d terminated by their users first, %d by our call; %d distinct events", len(ins), users, ours, len(seen))
}

// The example result of a notification is what the consumer makes of the
// example notification: the documented event_id, origin and contract.
func TestNotificationResultMatchesTheExamples(t *testing.T) {
	nb, err := fs.ReadFile(schemas.FS, "examples/notification-papay-terminate.json")
	if err != nil {
		t.Fatal(err)
	}
	rb, err := fs.ReadFile(schemas.FS, "examples/result-contract-terminated-notification.json")
	if err != nil {
		t.Fatal(err)
	}
	n, err := event.DecodeNotification(nb)
	if err != nil {
		t.Fatal(err)
	}
	var want event.Result
	if err := json.Unmarshal(rb, &want); err != nil {
		t.Fatal(err)
	}
	got := notificationResult(n, want.Source, want.OccurredAt)
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if string(gb) != string(wb) {
		t.Fatalf("got %s; want %s", gb, wb)
	}
	if err := event.ValidateResult(gb); err != nil {
		t.Fatal(err)
	}
}
