package notify

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/testenv"
	"github.com/wxterm/wxterm/internal/wxsim"
	"github.com/wxterm/wxterm/internal/wxsim/wxsimtest"
)

const (
	testMchID    = "1900000100"
	testAPIv3Key = "0123456789abcdef0123456789abcdef"
)

// syncBuffer is a log sink safe for the handler's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// endpoint is a Handler on a fresh topic, served over HTTP.
type endpoint struct {
	url     string // base URL; notifications go to url + "/v1/notify/" + mchid
	topic   string
	brokers []string
	metrics *Metrics
	logs    *syncBuffer
	pub     *KafkaPublisher
}

func newEndpoint(t testing.TB, brokers []string, publishTimeout time.Duration) *endpoint {
	t.Helper()
	k := wxsimtest.Keys(t)
	topic := testenv.Topic(t, "notifications")
	testenv.CreateTopics(t, brokers, 1, topic)
	keys, err := PublicKey(k.PublicKeyID, &k.PlatformKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	e := &endpoint{topic: topic, brokers: brokers, metrics: NewMetrics(prometheus.NewRegistry()), logs: &syncBuffer{}}
	e.pub = NewKafkaPublisher(brokers, topic, nil)
	t.Cleanup(func() { e.pub.Close() })
	h, err := New(Options{
		Merchants: []Merchant{{MchID: testMchID, APIv3Key: testAPIv3Key, Keys: keys}},
		Publisher: e.pub, Metrics: e.metrics, Logger: slog.New(slog.NewJSONHandler(e.logs, nil)),
		PublishTimeout: publishTimeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

func (e *endpoint) notifyURL() string { return e.url + "/v1/notify/" + testMchID }

// read returns the first n messages of the topic, failing the test if they
// do not come within 30 s.
func (e *endpoint) read(t *testing.T, n int) []event.Notification {
	t.Helper()
	return e.readUntil(t, func(got []event.Notification) bool { return len(got) >= n })
}

// readUntil reads the topic from its start until done says the messages
// read so far suffice, failing the test if that takes over 30 s.
func (e *endpoint) readUntil(t *testing.T, done func([]event.Notification) bool) []event.Notification {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.brokers, Topic: e.topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []event.Notification
	for !done(out) {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read %s: %v after %d messages", e.topic, err, len(out))
		}
		got, err := event.DecodeNotification(m.Value)
		if err != nil {
			t.Fatalf("message %d: %v", m.Offset, err)
		}
		if string(m.Key) != got.OutContractCode {
			t.Errorf("message key %q; want out_contract_code %q", m.Key, got.OutContractCode)
		}
		out = append(out, got)
	}
	return out
}

func notifier(t testing.TB, mutate func(*wxsim.NotifierOptions)) *wxsim.Notifier {
	t.Helper()
	k := wxsimtest.Keys(t)
	o := wxsim.NotifierOptions{PublicKeyID: k.PublicKeyID, PlatformKey: k.PlatformKey, APIv3Key: testAPIv3Key}
	if mutate != nil {
		mutate(&o)
	}
	n, err := wxsim.NewNotifier(o)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func post(t testing.TB, url string, body []byte, h http.Header) (int, answer) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("answer %q is not JSON: %v", b, err)
	}
	return resp.StatusCode, a
}

func contract(api event.API, code string) wxsim.NotificationContract {
	c := wxsim.NotificationContract{API: api, MchID: testMchID, OutContractCode: code, ContractID: "W" + code, PlanID: 12535}
	if api == event.PapayPartner || api == event.GlobalPapay {
		c.SubMchID = "1900000109"
	}
	return c
}

// Every accepted notification type is answered 200 SUCCESS only after it
// is in Kafka, as the event its API documents.
func TestAcceptsEachContractNotification(t *testing.T) {
	e := newEndpoint(t, testenv.Kafka(t), 0)
	n := notifier(t, nil)
	tests := []struct {
		api       event.API
		terminate bool
		kind      event.NotificationKind
		mode      event.TerminationMode
		raw       string
		sub       string
	}{
		{event.PapayPartner, true, event.KindTermination, event.ModeUser, "USER_TERMINATE", "1900000109"},
		{event.PapayDirect, true, event.KindTermination, event.ModeUser, "USER_TERMINATE", ""},
		{event.CreditRepayment, true, event.KindTermination, event.ModeUser, "TERMINATION_MODE_BY_USER", ""},
		{event.GlobalPapay, true, event.KindTermination, event.ModeUser, "USER", "1900000109"},
		{event.PapayPartner, false, event.KindSigning, "", "", "1900000109"},
		{event.CreditRepayment, false, event.KindSigning, "", "", ""},
		{event.GlobalPapay, false, event.KindSigning, "", "", "1900000109"},
	}
	for i, tt := range tests {
		code := "C" + string(rune('A'+i))
		typ := wxsim.NotificationEventType(tt.api, tt.terminate)
		body, err := n.NotificationBody("EV-"+code, typ, contract(tt.api, code))
		if err != nil {
			t.Fatal(err)
		}
		h, _ := n.NotificationHeaders(body)
		if status, a := post(t, e.notifyURL(), body, h); status != http.StatusOK || a.Code != "SUCCESS" {
			t.Fatalf("%s %s: answered %d %+v; want 200 SUCCESS", typ, tt.api, status, a)
		}
		got := e.read(t, i+1)[i]
		if got.ID != "EV-"+code || got.EventType != typ || got.Kind != tt.kind || got.API != tt.api || got.MchID != testMchID ||
			got.OutContractCode != code || got.ContractID != "W"+code || got.PlanID != "12535" || got.SubMchID != tt.sub ||
			got.TerminationMode != tt.mode || got.RawTerminationMode != tt.raw || (tt.terminate && got.TerminatedTime == "") {
			t.Errorf("%s %s: got %+v", typ, tt.api, got)
		}
		var res map[string]any
		if err := json.Unmarshal(got.Resource, &res); err != nil || res["out_contract_code"] != code {
			t.Errorf("%s %s: resource %s; want the decrypted resource", typ, tt.api, got.Resource)
		}
	}
	if got := testutil.ToFloat64(e.metrics.received); got != float64(len(tests)) {
		t.Errorf("received = %v; want %d", got, len(tests))
	}
	if got := testutil.ToFloat64(e.metrics.published.WithLabelValues(event.NotifyEntrustTerminate)); got != 2 {
		t.Errorf("published{ENTRUST.TERMINATE} = %v; want 2", got)
	}
}

// A single-merchant deployment also serves /v1/notify.
func TestSingleMerchantPath(t *testing.T) {
	e := newEndpoint(t, testenv.Kafka(t), 0)
	n := notifier(t, nil)
	body, _ := n.NotificationBody("EV-single", event.NotifyPapayTerminate, contract(event.GlobalPapay, "S1"))
	h, _ := n.NotificationHeaders(body)
	if status, a := post(t, e.url+"/v1/notify", body, h); status != http.StatusOK {
		t.Fatalf("answered %d %+v; want 200", status, a)
	}
	if got := e.read(t, 1)[0]; got.ID != "EV-single" {
		t.Errorf("published %+v; want EV-single", got)
	}
}

// Each forged, stale, tampered or malformed request is refused with its
// cause, counted, logged without the request, and never published.
func TestRefusals(t *testing.T) {
	e := newEndpoint(t, testenv.Kafka(t), 0)
	good := notifier(t, nil)
	stranger, err := wxsim.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	valid := func(id string) []byte {
		b, err := good.NotificationBody(id, event.NotifyEntrustTerminate, contract(event.PapayPartner, "R1"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	signed := func(n *wxsim.Notifier, body []byte) http.Header {
		h, err := n.NotificationHeaders(body)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	edit := func(body []byte, f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	var secrets []string // header values and ciphertexts that must never reach the log
	tests := []struct {
		name   string
		req    func() (string, []byte, http.Header)
		status int
		cause  Cause
	}{
		{"forged signature", func() (string, []byte, http.Header) {
			b := valid("EV-forged")
			h := signed(good, valid("EV-other")) // a genuine signature of another body
			return e.notifyURL(), b, h
		}, http.StatusUnauthorized, CauseSignature},
		{"wrong key", func() (string, []byte, http.Header) {
			n := notifier(t, func(o *wxsim.NotifierOptions) { o.PlatformKey = stranger.PlatformKey })
			b := valid("EV-wrongkey")
			return e.notifyURL(), b, signed(n, b)
		}, http.StatusUnauthorized, CauseSignature},
		{"unknown serial", func() (string, []byte, http.Header) {
			n := notifier(t, func(o *wxsim.NotifierOptions) { o.PublicKeyID = stranger.PublicKeyID })
			b := valid("EV-serial")
			return e.notifyURL(), b, signed(n, b)
		}, http.StatusUnauthorized, CauseSerial},
		{"stale timestamp", func() (string, []byte, http.Header) {
			n := notifier(t, func(o *wxsim.NotifierOptions) { o.Now = func() time.Time { return time.Now().Add(-6 * time.Minute) } })
			b := valid("EV-stale")
			return e.notifyURL(), b, signed(n, b)
		}, http.StatusUnauthorized, CauseTimestamp},
		{"future timestamp", func() (string, []byte, http.Header) {
			n := notifier(t, func(o *wxsim.NotifierOptions) { o.Now = func() time.Time { return time.Now().Add(6 * time.Minute) } })
			b := valid("EV-future")
			return e.notifyURL(), b, signed(n, b)
		}, http.StatusUnauthorized, CauseTimestamp},
		{"tampered ciphertext", func() (string, []byte, http.Header) {
			b := edit(valid("EV-tampered"), func(m map[string]any) {
				res := m["resource"].(map[string]any)
				ct, _ := base64.StdEncoding.DecodeString(res["ciphertext"].(string))
				ct[0] ^= 1
				res["ciphertext"] = base64.StdEncoding.EncodeToString(ct)
			})
			return e.notifyURL(), b, signed(good, b) // signed after tampering: only the AEAD catches it
		}, http.StatusBadRequest, CauseDecrypt},
		{"wrong APIv3 key", func() (string, []byte, http.Header) {
			n := notifier(t, func(o *wxsim.NotifierOptions) { o.APIv3Key = "fedcba9876543210fedcba9876543210" })
			b, _ := n.NotificationBody("EV-apiv3", event.NotifyEntrustTerminate, contract(event.PapayPartner, "R1"))
			return e.notifyURL(), b, signed(n, b)
		}, http.StatusBadRequest, CauseDecrypt},
		{"unknown event type", func() (string, []byte, http.Header) {
			b := edit(valid("EV-type"), func(m map[string]any) { m["event_type"] = "TRANSACTION.SUCCESS" })
			return e.notifyURL(), b, signed(good, b)
		}, http.StatusBadRequest, CauseType},
		{"malformed JSON", func() (string, []byte, http.Header) {
			b := []byte(`{"id":"EV-json","resource":{`)
			return e.notifyURL(), b, signed(good, b)
		}, http.StatusBadRequest, CauseJSON},
		{"other algorithm", func() (string, []byte, http.Header) {
			b := edit(valid("EV-algo"), func(m map[string]any) { m["resource"].(map[string]any)["algorithm"] = "AEAD_SM4_GCM" })
			return e.notifyURL(), b, signed(good, b)
		}, http.StatusBadRequest, CauseAlgorithm},
		{"oversized body", func() (string, []byte, http.Header) {
			b := edit(valid("EV-big"), func(m map[string]any) { m["summary"] = strings.Repeat("x", DefaultMaxBodyBytes) })
			return e.notifyURL(), b, signed(good, b)
		}, http.StatusRequestEntityTooLarge, CauseSize},
		{"missing nonce", func() (string, []byte, http.Header) {
			b := valid("EV-headers")
			h := signed(good, b)
			h.Del("Wechatpay-Nonce")
			return e.notifyURL(), b, h
		}, http.StatusBadRequest, CauseHeaders},
		{"unknown merchant", func() (string, []byte, http.Header) {
			b := valid("EV-mch")
			return e.url + "/v1/notify/1234567890", b, signed(good, b)
		}, http.StatusNotFound, CauseMerchant},
		{"resource of another merchant", func() (string, []byte, http.Header) {
			c := contract(event.PapayPartner, "R1")
			c.MchID = "1234567890"
			b, _ := good.NotificationBody("EV-owner", event.NotifyEntrustTerminate, c)
			return e.notifyURL(), b, signed(good, b)
		}, http.StatusNotFound, CauseMerchant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, body, h := tt.req()
			secrets = append(secrets, h.Get("Wechatpay-Signature"))
			var m map[string]any
			if json.Unmarshal(body, &m) == nil {
				if res, ok := m["resource"].(map[string]any); ok {
					secrets = append(secrets, res["ciphertext"].(string))
				}
			}
			before := testutil.ToFloat64(e.metrics.rejected.WithLabelValues(string(tt.cause)))
			status, a := post(t, url, body, h)
			if status != tt.status || a.Code != "FAIL" || !strings.HasPrefix(a.Message, string(tt.cause)+":") {
				t.Errorf("answered %d %+v; want %d FAIL %s: …", status, a, tt.status, tt.cause)
			}
			if got := testutil.ToFloat64(e.metrics.rejected.WithLabelValues(string(tt.cause))); got != before+1 {
				t.Errorf("rejected{cause=%s} = %v; want %v", tt.cause, got, before+1)
			}
			if !strings.Contains(e.logs.String(), `"cause":"`+string(tt.cause)+`"`) {
				t.Errorf("no log line names cause %s", tt.cause)
			}
		})
	}
	logs := e.logs.String()
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("the log holds a request's signature or ciphertext: %.40s…", s)
		}
	}
	if strings.Contains(logs, "request:") || strings.Contains(logs, "Wechatpay-Signature") {
		t.Errorf("the log holds the SDK's error text")
	}
	// Nothing refused was published: the first message is a sentinel sent now.
	body := valid("EV-sentinel")
	if status, _ := post(t, e.notifyURL(), body, signed(good, body)); status != http.StatusOK {
		t.Fatalf("sentinel answered %d; want 200", status)
	}
	if got := e.read(t, 1)[0]; got.ID != "EV-sentinel" {
		t.Errorf("first message on the topic is %q; want the sentinel: a refused notification was published", got.ID)
	}
}

// The same notification ten times is accepted ten times and written ten
// times, all with its id: the endpoint keeps no state, and the consumer
// dedupes by the notification id (Notification.RequestID).
func TestSameNotificationTenTimes(t *testing.T) {
	e := newEndpoint(t, testenv.Kafka(t), 0)
	n := notifier(t, nil)
	body, _ := n.NotificationBody("EV-repeat", event.NotifyCreditTerminate, contract(event.CreditRepayment, "T10"))
	for i := range 10 {
		h, _ := n.NotificationHeaders(body) // WeChat Pay signs each retry afresh
		if status, a := post(t, e.notifyURL(), body, h); status != http.StatusOK {
			t.Fatalf("delivery %d answered %d %+v; want 200", i+1, status, a)
		}
	}
	for _, got := range e.read(t, 10) {
		if got.ID != "EV-repeat" || got.RequestID() != "notification:EV-repeat" || got.OutContractCode != "T10" {
			t.Errorf("got %+v; want EV-repeat for T10", got)
		}
	}
}
