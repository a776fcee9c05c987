package consumer

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/testenv"
	"github.com/wxterm/wxterm/internal/wxapi"
	"github.com/wxterm/wxterm/internal/wxsim"
	"github.com/wxterm/wxterm/internal/wxsim/wxsimtest"
)

// harness runs the consumer against Kafka, Redis (real ones when the testenv
// variables name them) and the WeChat Pay simulator.
type harness struct {
	t        *testing.T
	brokers  []string
	requests string
	results  string
	dlq      string
	store    *dedupe.Store
	rdb      redis.UniversalClient
	prefix   string
	sim      *wxsim.Server
	keys     *wxsim.Keys
	simURL   string
	writer   *kafka.Writer

	mu       sync.Mutex
	events   []event.Result
	dead     []kafka.Message
	arrivals chan struct{}
}

type harnessOpts struct {
	partitions int
	storeOpts  dedupe.Options
	sim        func(*wxsim.Options) // adjusts the simulator's options
}

func newHarness(t *testing.T, ho harnessOpts) *harness {
	t.Helper()
	if ho.partitions == 0 {
		ho.partitions = 4
	}
	h := &harness{t: t, brokers: testenv.Kafka(t), keys: wxsimtest.Keys(t), arrivals: make(chan struct{}, 1)}
	h.requests = testenv.Topic(t, "req")
	h.results = testenv.Topic(t, "res")
	h.dlq = testenv.Topic(t, "dlq")
	testenv.CreateTopics(t, h.brokers, ho.partitions, h.requests)
	testenv.CreateTopics(t, h.brokers, 1, h.results, h.dlq)

	so := ho.storeOpts
	h.prefix = "wxterm:" + testenv.Unique(t) + ":"
	h.rdb = testenv.Redis(t)
	so.Prefix = h.prefix
	h.store = dedupe.New(h.rdb, so)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.store.Load(ctx); err != nil {
		t.Fatalf("load scripts: %v", err)
	}
	simOpts := h.keys.SimOptions()
	if ho.sim != nil {
		ho.sim(&simOpts)
	}
	h.sim = wxsim.New(simOpts)
	srv := httptest.NewServer(h.sim)
	t.Cleanup(srv.Close)
	h.simURL = srv.URL
	h.writer = &kafka.Writer{Addr: kafka.TCP(h.brokers...), Topic: h.requests, Balancer: kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	t.Cleanup(func() { _ = h.writer.Close() })
	h.collect(h.results, func(m kafka.Message) {
		var r event.Result
		if err := json.Unmarshal(m.Value, &r); err != nil {
			t.Errorf("result not JSON: %v: %s", err, m.Value)
			return
		}
		if err := event.ValidateResult(m.Value); err != nil {
			t.Errorf("result does not match schema: %v: %s", err, m.Value)
		}
		if got := header(m, event.HeaderEventType); got != r.EventType {
			t.Errorf("header event_type %q; body %q", got, r.EventType)
		}
		if string(m.Key) != r.OutContractCode {
			t.Errorf("result key %q; want out_contract_code %q", m.Key, r.OutContractCode)
		}
		h.mu.Lock()
		h.events = append(h.events, r)
		h.mu.Unlock()
	})
	h.collect(h.dlq, func(m kafka.Message) {
		h.mu.Lock()
		h.dead = append(h.dead, m)
		h.mu.Unlock()
	})
	return h
}

func header(m kafka.Message, key string) string {
	for _, hd := range m.Headers {
		if hd.Key == key {
			return string(hd.Value)
		}
	}
	return ""
}

// collect reads a one-partition topic from the start until the test ends.
func (h *harness) collect(topic string, fn func(kafka.Message)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	h.t.Cleanup(func() { cancel(); <-done })
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: h.brokers, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	go func() {
		defer close(done)
		defer r.Close()
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				return
			}
			fn(m)
			select {
			case h.arrivals <- struct{}{}:
			default:
			}
		}
	}()
}

// client returns a WeChat Pay client of the test merchant on the simulator.
func (h *harness) client(timeout time.Duration) *wxapi.Client {
	cfg := h.keys.ClientConfig(h.simURL)
	if timeout > 0 {
		cfg.Timeout = timeout
	}
	c, err := wxapi.New(cfg)
	if err != nil {
		h.t.Fatalf("wxapi: %v", err)
	}
	return c
}

func (h *harness) options(clientTimeout time.Duration) Options {
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("WXTERM_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return Options{
		Brokers: h.brokers, GroupID: "g-" + testenv.Unique(h.t),
		RequestTopic: h.requests, ResultTopic: h.results, DLQTopic: h.dlq,
		CommitInterval: 50 * time.Millisecond, ShutdownTimeout: 5 * time.Second,
		SessionTimeout: 6 * time.Second, HeartbeatInterval: time.Second, FetchMaxWait: 100 * time.Millisecond,
		Retry:                 RetryOptions{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond, MaxElapsed: 5 * time.Second},
		SystemicProbeInterval: 200 * time.Millisecond,
		Merchants:             map[string]Merchant{h.keys.MchID: {Client: h.client(clientTimeout)}},
		DefaultMerchant:       h.keys.MchID,
		Store:                 h.store,
		Logger:                logger,
	}
}

// start runs a consumer until the returned stop is called (or the test ends).
func (h *harness) start(opts Options) (*Consumer, func()) {
	h.t.Helper()
	c, err := New(opts)
	if err != nil {
		h.t.Fatalf("new consumer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					h.t.Errorf("consumer run: %v", err)
				}
			case <-time.After(30 * time.Second):
				h.t.Errorf("consumer did not stop within 30s")
			}
		})
	}
	h.t.Cleanup(stop)
	return c, stop
}

func (h *harness) publish(ins ...event.Intent) {
	h.t.Helper()
	msgs := make([]kafka.Message, len(ins))
	for i, in := range ins {
		b, err := json.Marshal(in)
		if err != nil {
			h.t.Fatal(err)
		}
		msgs[i] = kafka.Message{Key: []byte(in.OutContractCode), Value: b}
	}
	h.publishRaw(msgs...)
}

func (h *harness) publishRaw(msgs ...kafka.Message) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.writer.WriteMessages(ctx, msgs...); err != nil {
		h.t.Fatalf("publish: %v", err)
	}
}

// waitFor waits until cond holds on the events and dead letters seen so far.
func (h *harness) waitFor(what string, timeout time.Duration, cond func(events []event.Result, dead []kafka.Message) bool) {
	h.t.Helper()
	deadline := time.After(timeout)
	for {
		h.mu.Lock()
		ok := cond(h.events, h.dead)
		n := len(h.events)
		h.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-h.arrivals:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			h.t.Fatalf("timed out after %v waiting for %s; %d events so far: %+v", timeout, what, n, h.snapshot())
		}
	}
}

// waitEvents waits until n events arrived and returns them.
func (h *harness) waitEvents(n int, timeout time.Duration) []event.Result {
	h.t.Helper()
	h.waitFor("events", timeout, func(ev []event.Result, _ []kafka.Message) bool { return len(ev) >= n })
	return h.snapshot()
}

func (h *harness) snapshot() []event.Result {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]event.Result(nil), h.events...)
}

// settle gives a consumer time to (wrongly) publish more than expected, then
// returns everything seen. It bounds a negative check, not a speed.
func (h *harness) settle(c *Consumer) []event.Result {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c.Stats().Consumed.Load() > 0 && inFlight(c) == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	return h.snapshot()
}

func inFlight(c *Consumer) int64 {
	s := c.Stats()
	return s.Consumed.Load() - s.Terminated.Load() - s.Failed.Load() - s.DeadLetter.Load() - s.Duplicates.Load()
}

func byRequest(events []event.Result) map[string][]event.Result {
	m := make(map[string][]event.Result)
	for _, e := range events {
		m[e.RequestID] = append(m[e.RequestID], e)
	}
	return m
}

// published reads in's dedupe record once it is marked published, or after
// a bound. The mark follows the publication, so a test that has just seen
// the event may read the record a moment too early.
func (h *harness) published(in event.Intent) (dedupe.Record, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec, err := h.store.Get(context.Background(), in.OutContractCode)
		if (err == nil && rec.Published[in.RequestID]) || time.Now().After(deadline) {
			return rec, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
