package consumer

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/wxsim"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Private keys, signatures and the Authorization header never reach logs or
// events, whatever goes wrong: WeChat rejections, systemic faults, retries,
// invalid input.
func TestNoSecretsInLogsOrEvents(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	logs := &lockedBuffer{}
	opts := h.options(300 * time.Millisecond)
	opts.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	var ins []event.Intent
	for _, code := range []string{"SEC1", "SEC2", "SEC3", "SEC4"} {
		in := newIntent(event.PapayPartner, code)
		seed(h.sim, in)
		ins = append(ins, in)
	}
	ins[1].SubMchID = "1900000555" // PARAM_ERROR
	c, _ := h.start(opts)
	// Bad signatures first (systemic), then transient faults, then clear.
	h.sim.SetFaults(wxsim.Faults{Rate: 1, Kinds: []wxsim.FaultKind{wxsim.FaultBadSignature}})
	h.publish(ins[0])
	deadline := time.Now().Add(waitLong)
	for (c.Ready() == nil || !strings.Contains(c.Ready().Error(), "systemic")) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	h.sim.SetFaults(wxsim.Faults{FailFirst: map[string]int{"SEC3": 2}, Kinds: []wxsim.FaultKind{wxsim.FaultHTTP500, wxsim.FaultTimeout}, HangFor: time.Second})
	h.publish(ins[1:]...)
	h.publishRaw(kafka.Message{Key: []byte("SEC5"), Value: []byte(`{"request_id":"req-SEC5","out_contract_code":"SEC5","remark":"-----BEGIN"}`)})
	h.waitEvents(len(ins)+1, waitLong)

	var secrets []string
	for _, k := range []any{h.keys.MerchantKey, h.keys.PlatformKey} {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		b64 := base64.StdEncoding.EncodeToString(der)
		// Any 40-character stretch of the key's PEM body would be a leak.
		for i := 0; i+40 <= len(b64); i += 200 {
			secrets = append(secrets, b64[i:i+40])
		}
	}
	secrets = append(secrets, "PRIVATE KEY", "WECHATPAY2-SHA256-RSA2048", "signature=\"", "Wechatpay-Signature")
	var evs bytes.Buffer
	for _, e := range h.snapshot() {
		b, _ := json.Marshal(e)
		evs.Write(b)
	}
	if !strings.Contains(logs.String(), "systemic") {
		t.Fatalf("the systemic fault was not logged; the test proves nothing:\n%s", logs.String())
	}
	for _, s := range secrets {
		if strings.Contains(logs.String(), s) {
			t.Errorf("logs contain a secret %q", s)
		}
		if strings.Contains(evs.String(), s) {
			t.Errorf("events contain a secret %q", s)
		}
	}
}
