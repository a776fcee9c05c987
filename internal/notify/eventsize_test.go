package notify

// What an accepted notification's event must stay within: the consumer
// refuses (and dead-letters) an event over event.MaxNotificationBytes, so
// the endpoint must never answer 200 for one.

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/wxsim/wxsimtest"
)

// memPublisher keeps what the endpoint published, in memory.
type memPublisher struct {
	mu   sync.Mutex
	msgs [][]byte
}

func (p *memPublisher) Publish(_ context.Context, _, value []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, append([]byte(nil), value...))
	return nil
}

// sealedBody is a notification body around an arbitrary plaintext resource,
// encrypted with testAPIv3Key as WeChat Pay encrypts one.
func sealedBody(t *testing.T, id, eventType string, plain []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher([]byte(testAPIv3Key))
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	nonce, aad := "abcdefghijkl", "entrust"
	sealed := aead.Seal(nil, []byte(nonce), plain, []byte(aad))
	b, err := json.Marshal(map[string]any{
		"id": id, "create_time": time.Now().Format(time.RFC3339), "resource_type": "encrypt-resource",
		"event_type": eventType, "summary": "解约成功",
		"resource": map[string]string{"original_type": "entrust", "algorithm": "AEAD_AES_256_GCM",
			"ciphertext": base64.StdEncoding.EncodeToString(sealed), "associated_data": aad, "nonce": nonce},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Review finding: the endpoint answers 200 for a notification whose event
// the consumer then refuses. The endpoint bounds the *body* (MaxBodyBytes,
// configurable without limit by -max-body-bytes), but the consumer refuses
// any notification event over event.MaxNotificationBytes (64 KiB) and
// dead-letters it: WeChat Pay was told SUCCESS, so it never retries, and the
// termination never reaches the result stream. Even at the default body
// limit the event can outgrow the body: json.Marshal re-escapes the
// decrypted resource (RawMessage) with HTML escaping, so each '&', '<' or
// '>' in, say, a termination remark becomes six bytes (\u0026).
func TestAcceptedNotificationIsAValidEvent(t *testing.T) {
	n := notifier(t, nil)
	tests := []struct {
		name    string
		maxBody int64
		remark  string
	}{
		{"default body limit, remark with ampersands", 0, strings.Repeat("&", 12000)},
		{"-max-body-bytes 1MiB, long plain remark", 1 << 20, strings.Repeat("x", 100000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub, srv := memEndpoint(t, tt.maxBody)
			// WeChat Pay's own encoding: '&' as is, not \u0026.
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			_ = enc.Encode(map[string]any{
				"mchid": testMchID, "out_contract_code": "BIG1", "contract_id": "WBIG1", "plan_id": 12535,
				"contract_state": "TERMINATED",
				"contract_terminate_info": map[string]string{"contract_termination_mode": "USER_TERMINATE",
					"contract_terminated_time": "2024-01-01T10:00:00+08:00", "contract_termination_remark": tt.remark},
			})
			plain := bytes.TrimSpace(buf.Bytes())
			body := sealedBody(t, "EV-BIG1", event.NotifyEntrustTerminate, plain)
			hd, err := n.NotificationHeaders(body)
			if err != nil {
				t.Fatal(err)
			}
			status, a := post(t, srv.URL+"/v1/notify/"+testMchID, body, hd)
			if status != http.StatusOK {
				return // refused: WeChat Pay retries, nothing is lost
			}
			if len(pub.msgs) != 1 {
				t.Fatalf("answered %d %+v with %d messages published; want 1", status, a, len(pub.msgs))
			}
			if err := event.ValidateNotification(pub.msgs[0]); err != nil {
				t.Fatalf("body of %d bytes answered 200 SUCCESS, but the published event (%d bytes) is refused by the consumer: %v",
					len(body), len(pub.msgs[0]), err)
			}
		})
	}
}

// A body within DefaultMaxBodyBytes (= MaxBodyBytesLimit) is never refused
// for its event's size: filled with the character whose re-encoding grows
// most (U+2028, 3 bytes in the resource, copied into the event's
// out_contract_code and contract_id as the 6-byte \u2028), it is still
// accepted with a valid event. The same body with invalid UTF-8 instead
// (which the consumer refuses) is refused, and nothing is published.
func TestBodyWithinLimitMakesAnEventWithinLimit(t *testing.T) {
	for _, tt := range []struct {
		name, char string
		want       int
	}{
		{"line separators", "\u2028", http.StatusOK},
		{"invalid UTF-8", "\xff", http.StatusBadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) { bodyWithinLimit(t, tt.char, tt.want) })
	}
}

func bodyWithinLimit(t *testing.T, char string, want int) {
	pub, srv := memEndpoint(t, 0)
	n := notifier(t, nil)
	worst := func(size int) []byte {
		bad := strings.Repeat(char, size/len(char))
		plain := `{"mchid":"` + testMchID + `","out_contract_code":"` + bad + `","contract_id":"` + bad +
			`","plan_id":12535,"contract_state":"TERMINATED","contract_terminate_info":{"contract_termination_mode":"USER_TERMINATE","contract_terminated_time":"2024-01-01T10:00:00+08:00"}}`
		return sealedBody(t, "EV-BOUND", event.NotifyEntrustTerminate, []byte(plain))
	}
	size := 0
	for len(worst(size+64)) <= DefaultMaxBodyBytes {
		size += 64
	}
	body := worst(size)
	hd, err := n.NotificationHeaders(body)
	if err != nil {
		t.Fatal(err)
	}
	status, a := post(t, srv.URL+"/v1/notify/"+testMchID, body, hd)
	if want != http.StatusOK {
		if status != want || len(pub.msgs) != 0 {
			t.Fatalf("body of %d bytes: got %d %+v with %d published; want %d and none", len(body), status, a, len(pub.msgs), want)
		}
		return
	}
	if status != http.StatusOK || len(pub.msgs) != 1 {
		t.Fatalf("body of %d bytes: got %d %+v with %d published; want 200 and 1", len(body), status, a, len(pub.msgs))
	}
	if err := event.ValidateNotification(pub.msgs[0]); err != nil {
		t.Fatalf("body of %d bytes made an event of %d bytes: %v", len(body), len(pub.msgs[0]), err)
	}
	t.Logf("body %d bytes -> event %d bytes (limit %d)", len(body), len(pub.msgs[0]), event.MaxNotificationBytes)
}

// Held up (recorded so the review's coverage is visible): a body over the
// limit sent with chunked transfer encoding (no Content-Length) is refused
// 413 and nothing is published.
func TestChunkedOversizedBodyRefused(t *testing.T) {
	pub, srv := memEndpoint(t, 1024)
	n := notifier(t, nil)
	body, err := n.NotificationBody("EV-CHUNK", event.NotifyEntrustTerminate, contract(event.PapayDirect, "CHUNK1"))
	if err != nil {
		t.Fatal(err)
	}
	body = append(body, bytes.Repeat([]byte(" "), 4096)...) // still valid JSON, signed as is
	hd, _ := n.NotificationHeaders(body)
	// A reader of unknown length makes the client send chunked.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/notify/"+testMchID, struct{ *bytes.Reader }{bytes.NewReader(body)})
	req.Header = hd
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(req.TransferEncoding) == 0 && req.ContentLength > 0 {
		t.Fatalf("request was not chunked")
	}
	if resp.StatusCode != http.StatusRequestEntityTooLarge || len(pub.msgs) != 0 {
		t.Fatalf("got %d and %d published; want 413 and none", resp.StatusCode, len(pub.msgs))
	}
}

// memEndpoint serves the handler for the test merchant with a body limit of
// maxBody (0: the default), publishing to memory.
func memEndpoint(t *testing.T, maxBody int64) (*memPublisher, *httptest.Server) {
	t.Helper()
	k := wxsimtest.Keys(t)
	keys, err := PublicKey(k.PublicKeyID, &k.PlatformKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub := &memPublisher{}
	h, err := New(Options{
		Merchants: []Merchant{{MchID: testMchID, APIv3Key: testAPIv3Key, Keys: keys}},
		Publisher: pub, Metrics: NewMetrics(prometheus.NewRegistry()), Logger: slog.New(slog.DiscardHandler),
		MaxBodyBytes: maxBody,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return pub, srv
}
