package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/notify"
	"github.com/wxterm/wxterm/internal/wxapi"
	"github.com/wxterm/wxterm/internal/wxsim"
)

// notifyContracts is how many contracts the notifications scenario races
// intents and users' terminations for.
const notifyContracts = 300

// notification is one notification the simulator delivered in the
// notifications scenario.
type notification struct {
	code, id string
	user     bool // the user's termination; false: WeChat's notice of our own
	err      error
}

// notifyScenario: for every contract at once an intent and its user
// terminating it in WeChat, whose notification the simulator delivers on
// WeChat Pay's retry schedule (time-scaled) to the notification endpoint
// (internal/notify in this process, a quarter of its answers 503 so that
// WeChat's retries are exercised); contracts our call terminated get
// WeChat's notice of that too. Two consumers read intents and
// notifications and are killed with kill -9 mid-run. Checked per contract
// against the dedupe record: one termination in the stream, every intent
// answered consistently with it, every notification published or absorbed.
func notifyScenario(ctx context.Context, r *runCtx) error {
	s := r.s
	r.w = &workload{byReq: map[string]*intent{}, byCode: map[string][]*intent{}} // the checks below replace the workload's
	// The scenario's request topic (so the suite checks its commits), its
	// own result and dead-letter topics (read by the checks below), and a
	// notification topic.
	base := strings.TrimSuffix(r.reqTopic, ".requested") + ".n"
	reqT, resT, dlqT, ntfT := r.reqTopic, base+"-results", base+"-dlq", base+"-notifications"
	if err := s.createTopics(ctx, resT, dlqT, ntfT); err != nil {
		return err
	}

	// WeChat Pay: the simulator, in this process, so that it can terminate
	// as users and notify.
	sim := wxsim.New(s.id.SimOptions())
	simSrv := httptest.NewServer(sim)
	defer simSrv.Close()
	// The notification endpoint, refusing a quarter of the deliveries.
	pub := notify.NewKafkaPublisher(strings.Split(s.cfg.kafka, ","), ntfT, nil)
	defer pub.Close()
	verify, err := notify.PublicKey(s.id.PublicKeyID, &s.id.PlatformKey.PublicKey)
	if err != nil {
		return err
	}
	hd, err := notify.New(notify.Options{
		Merchants: []notify.Merchant{{MchID: s.id.MchID, APIv3Key: s.id.APIv3Key, Keys: verify}},
		Publisher: pub, Metrics: notify.NewMetrics(prometheus.NewRegistry()), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	var refusedMu sync.Mutex
	refusals := rand.New(rand.NewPCG(s.cfg.seed, 14))
	var deliveries, refused atomic.Int64
	ntfSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		deliveries.Add(1)
		refusedMu.Lock()
		no := refusals.IntN(4) == 0
		refusedMu.Unlock()
		if no {
			refused.Add(1)
			_, _ = io.Copy(io.Discard, req.Body)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		hd.ServeHTTP(w, req)
	}))
	defer ntfSrv.Close()
	url := ntfSrv.URL + notify.PathSingle
	// 15 s between WeChat's first retries becomes 15 ms.
	notifier, err := wxsim.NewNotifier(wxsim.NotifierOptions{PublicKeyID: s.id.PublicKeyID, PlatformKey: s.id.PlatformKey,
		APIv3Key: s.id.APIv3Key, TimeScale: 0.001})
	if err != nil {
		return err
	}

	ins := make([]event.Intent, notifyContracts)
	msgs := make([]kafka.Message, notifyContracts)
	now := time.Now().UTC().Truncate(time.Second)
	for i := range ins {
		in := event.Intent{SchemaVersion: 1, RequestID: fmt.Sprintf("%s-n-%04d", strings.ToLower(s.runID), i), RequestedAt: now,
			Source: "faults", API: event.PapayDirect, OutContractCode: fmt.Sprintf("FN%s%04d", s.runID, i), PlanID: "12535", Remark: "faults"}
		if i%2 == 1 {
			in.API, in.PlanID = event.CreditRepayment, ""
		}
		sim.Seed(wxsim.Contract{API: wxapi.API(in.API), OutContractCode: in.OutContractCode, PlanID: in.PlanID, DisplayName: "*测"})
		ins[i], msgs[i] = in, kafka.Message{Key: []byte(in.OutContractCode), Value: mustJSON(in)}
	}

	extra := []string{"-request-topic", reqT, "-result-topic", resT, "-dlq-topic", dlqT, "-notification-topic", ntfT,
		"-wechatpay-base-url", simSrv.URL, "-wechatpay-backup-url", simSrv.URL, "-wechatpay-global-url", simSrv.URL}
	cs, err := r.startReady(ctx, 2, extra...)
	if err != nil {
		return err
	}
	col := s.newCollector(ctx, resT, dlqT)
	defer col.stop()
	answered := func() int {
		col.mu.Lock()
		defer col.mu.Unlock()
		n := 0
		for _, in := range ins {
			if col.answered[in.RequestID] {
				n++
			}
		}
		return n
	}

	// Intents and users at once: the intents paced over about 6 s; once the
	// first are answered, each user at a random moment of the next 6 s.
	pubErr := make(chan error, 1)
	go func() { pubErr <- s.publish(ctx, reqT, msgs, 10, 200*time.Millisecond) }()
	for answered() == 0 {
		if err := r.crashed(); err != nil {
			return err
		}
		if !sleep(ctx, 20*time.Millisecond) {
			return fmt.Errorf("%w waiting for a first answer", errTimeout)
		}
	}
	var mu sync.Mutex
	var notes []notification
	var wg sync.WaitGroup
	for i := range ins {
		delay := time.Duration(r.rnd.IntN(6000)) * time.Millisecond
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !sleep(ctx, delay) {
				return
			}
			code := ins[i].OutContractCode
			tm, ok, err := sim.TerminateAndNotify(ctx, notifier, url, code)
			n := notification{code: code, id: tm.NotificationID, user: ok, err: err}
			if !ok {
				// Our call came first: WeChat Pay notifies that termination
				// too, a while after it.
				n.id = fmt.Sprintf("mch-%s", code)
				body, berr := notifier.NotificationBody(n.id, wxsim.NotificationEventType(ins[i].API, true), wxsim.NotificationContract{
					API: ins[i].API, MchID: s.id.MchID, OutContractCode: code, PlanID: 12535, RawMode: merchantMode(ins[i].API)})
				if berr == nil {
					_, err = notifier.Deliver(ctx, url, body)
				}
				n.err = errors.Join(berr, err)
			}
			mu.Lock()
			notes = append(notes, n)
			mu.Unlock()
		}()
	}

	// kill -9 of each consumer once, at about a third and two thirds.
	for k, frac := range []float64{0.3, 0.6} {
		for answered() < int(frac*notifyContracts) {
			if err := r.crashed(); err != nil {
				return err
			}
			if !sleep(ctx, 20*time.Millisecond) {
				return fmt.Errorf("%w waiting for %.0f%% of the intents answered (%d)", errTimeout, frac*100, answered())
			}
		}
		c := cs[k]
		inFlight := c.metric(ctx, s.http, "wxterm_in_flight")
		c.Kill()
		r.mark(fmt.Sprintf("kill -9 #%d", k+1))
		r.notef("kill -9 #%d of %s at %d of %d intents answered, %.0f messages in flight", k+1, c.Name, answered(), notifyContracts, inFlight)
		if _, err := r.startConsumer(extra...); err != nil {
			return err
		}
	}
	wg.Wait()
	if err := <-pubErr; err != nil {
		return err
	}

	store := dedupe.New(s.rdb, dedupe.Options{Prefix: r.prefix})
	// Done when every intent is answered and every contract's terminator
	// has its event.
	for {
		done := answered() == notifyContracts
		for i := 0; done && i < len(ins); i++ {
			rec, err := store.Get(ctx, ins[i].OutContractCode)
			col.mu.Lock()
			done = err == nil && rec.Kind == dedupe.KindTerminated && col.answered[rec.OutcomeRequestID]
			col.mu.Unlock()
		}
		if done {
			break
		}
		if err := r.crashed(); err != nil {
			return err
		}
		if !sleep(ctx, 250*time.Millisecond) {
			return fmt.Errorf("%w: %d of %d intents answered", errTimeout, answered(), notifyContracts)
		}
	}
	r.notef("all %d intents answered and every termination published, %.1fs into the scenario", notifyContracts, time.Since(r.start).Seconds())
	r.checkNotificationsCommitted(ctx, ntfT)
	if err := col.catchUp(ctx, 30*time.Second); err != nil {
		r.probs.add("read back", "%v", err)
	}
	// A wrong second termination or a late notification would land in
	// this second.
	sleep(ctx, time.Second)
	if err := col.catchUp(ctx, 30*time.Second); err != nil {
		r.probs.add("read back", "%v", err)
	}
	r.checkNotifications(ctx, store, col, ins, notes, sim)
	r.notef("notification deliveries: %d (%d answered 503 and retried by WeChat Pay's schedule)", deliveries.Load(), refused.Load())
	return nil
}

// checkNotificationsCommitted checks that the group committed the
// notification topic to its end: every notification handled, none held.
func (r *runCtx) checkNotificationsCommitted(ctx context.Context, topic string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		ends, err := r.s.endOffsets(ctx, topic)
		behind := 0
		if err == nil {
			com, cerr := r.s.committed(ctx, r.group, topic)
			err = cerr
			for p, end := range ends {
				if com[p] < end && end > 0 {
					behind++
				}
			}
		}
		if err == nil && behind == 0 {
			return
		}
		if time.Now().After(deadline) || !sleep(ctx, 250*time.Millisecond) {
			r.probs.add("commit", "the group had not committed %d partitions of %s to their end (%v)", behind, topic, err)
			return
		}
	}
}

// merchantMode is the raw mode in which api's notification reports a
// termination by the merchant's API call.
func merchantMode(api event.API) string {
	if api == event.CreditRepayment {
		return "TERMINATION_MODE_BY_MERCHANT"
	}
	return "MCH_API_TERMINATE"
}

// checkNotifications checks the result stream of the notifications
// scenario against the dedupe records and the simulator, and notes its
// figures.
func (r *runCtx) checkNotifications(ctx context.Context, store *dedupe.Store, col *collector, ins []event.Intent, notes []notification, sim *wxsim.Server) {
	p := r.probs
	col.mu.Lock()
	results := append([]received(nil), col.results...)
	col.mu.Unlock()
	byCode := make(map[string][]event.Result)
	seen := make(map[string]bool)
	repeats := 0
	for _, rec := range results {
		var e event.Result
		if err := json.Unmarshal(rec.msg.Value, &e); err != nil {
			p.add("malformed event", "%s: %v", rec.msg.Value, err)
			continue
		}
		if err := event.ValidateResult(rec.msg.Value); err != nil {
			p.add("malformed event", "%s: %v", e.EventID, err)
		}
		if e.EventID != event.EventID(e.RequestID, e.OutContractCode, e.EventType) {
			p.add("unstable event id", "%s: request %s", e.EventID, e.RequestID)
		}
		if seen[e.EventID] {
			repeats++ // the same event again (a redelivery after a kill): harmless
			continue
		}
		seen[e.EventID] = true
		byCode[e.OutContractCode] = append(byCode[e.OutContractCode], e)
	}
	noteOf := make(map[string]notification)
	for _, n := range notes {
		noteOf[n.code] = n
		if n.err != nil {
			p.add("notification lost", "%s: %s not accepted: %v", n.code, n.id, n.err)
		}
	}
	var users, ours, fromNotification, absorbed, already, callsAfterUser int
	for _, in := range ins {
		code := in.OutContractCode
		rec, err := store.Get(ctx, code)
		if err != nil || rec.Kind != dedupe.KindTerminated {
			p.add("not terminated", "%s: record %+v, %v", code, rec, err)
			continue
		}
		by := rec.OutcomeRequestID
		n := noteOf[code]
		firstHand, mode := 0, ""
		var intentEv, terminatorEv *event.Result
		for i, e := range byCode[code] {
			if e.EventType != event.TypeTerminated {
				p.add("failed", "%s: %s %s %s", code, e.RequestID, e.EventType, e.Reason)
				continue
			}
			if e.Origin == event.OriginNotification || !e.AlreadyTerminated {
				firstHand++
			}
			m := string(event.NormaliseTerminationMode(e.Contract.ContractTerminationMode))
			if mode != "" && m != mode {
				p.add("inconsistent", "%s: termination modes %s and %s", code, mode, m)
			}
			mode = m
			switch e.RequestID {
			case in.RequestID:
				intentEv = &byCode[code][i]
			case "notification:" + n.id:
				if by != e.RequestID {
					p.add("second termination", "%s: notification %s published though %s terminated the contract", code, n.id, by)
				}
			default:
				p.add("stray event", "%s: request %s", code, e.RequestID)
			}
			if e.RequestID == by {
				terminatorEv = &byCode[code][i]
			}
		}
		switch {
		case firstHand > 1:
			p.add("second termination", "%s: %d first-hand terminations in the stream", code, firstHand)
		case terminatorEv == nil:
			p.add("termination lost", "%s: the terminator %s has no event", code, by)
		case intentEv == nil:
			p.add("missing event", "%s: intent %s unanswered", code, in.RequestID)
		case by != in.RequestID && !intentEv.AlreadyTerminated:
			p.add("inconsistent", "%s: %s terminated the contract, yet the intent is not already_terminated", code, by)
		}
		if n.user {
			users++
			if mode != string(event.ModeUser) {
				p.add("inconsistent", "%s: its user terminated it first; the events say %q", code, mode)
			}
			if by == "notification:"+n.id {
				callsAfterUser += sim.TerminateCalls(code)
			}
		} else {
			ours++
		}
		switch {
		case n.id != "" && by == "notification:"+n.id:
			fromNotification++
		case n.id != "":
			absorbed++
		}
		if intentEv != nil && intentEv.AlreadyTerminated {
			already++
		}
	}
	r.notef("%d contracts: %d terminated by their users first, %d by our call; %d notifications delivered: %d published, %d absorbed by an earlier termination",
		len(ins), users, ours, len(notes), fromNotification, absorbed)
	r.notef("%d intents answered already_terminated; %d distinct events, %d repeated after kills; %d terminate calls to contracts a notification terminated (refused calls of killed workers)",
		already, len(seen), repeats, callsAfterUser)
}
