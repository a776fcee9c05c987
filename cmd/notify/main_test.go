package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/testenv"
	"github.com/wxterm/wxterm/internal/wxsim"
	"github.com/wxterm/wxterm/internal/wxsim/wxsimtest"
)

const testAPIv3Key = "0123456789abcdef0123456789abcdef"

// platformCert writes a self-signed certificate of key to dir, as a
// platform certificate, and returns its file and serial (as
// Wechatpay-Serial names it).
func platformCert(t *testing.T, dir string, key *rsa.PrivateKey) (string, string) {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(0x5157F09EFDC096DE), Subject: pkix.Name{CommonName: "Tenpay.com Root CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	file := filepath.Join(dir, "platform_cert.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return file, utils.GetCertificateSerialNumber(*cert)
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The command serves notifications of a public-key merchant and of a
// platform-certificate merchant from one merchants file, writes them to
// Kafka, and reports ready and its metrics.
func TestRunServesNotifications(t *testing.T) {
	k := wxsimtest.Keys(t)
	dir := t.TempDir()
	if err := k.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	certKey, err := wxsim.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	certFile, certSerial := platformCert(t, dir, certKey.PlatformKey)
	keyFile := writeFile(t, dir, "apiv3.key", testAPIv3Key+"\n")
	mf, _ := json.Marshal(map[string]any{"merchants": []map[string]any{
		{"mchid": "1900000100", "cert_serial": k.MerchantCertSerial, "private_key_file": filepath.Join(dir, wxsim.FileMerchantKey),
			"public_key_id": k.PublicKeyID, "public_key_file": filepath.Join(dir, wxsim.FilePublicKey), "apiv3_key_file": keyFile},
		{"mchid": "1900000200", "platform_cert_files": []string{certFile}, "apiv3_key_file": keyFile},
	}})
	merchantsFile := writeFile(t, dir, "merchants.json", string(mf))

	brokers := testenv.Kafka(t)
	topic := testenv.Topic(t, "notifications")
	testenv.CreateTopics(t, brokers, 1, topic)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() {
		done <- runMain(ctx, []string{"-brokers", strings.Join(brokers, ","), "-notification-topic", topic,
			"-merchants-file", merchantsFile, "-listen-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-log-format", "text"},
			io.Discard, func(n, h string) { addrs <- [2]string{n, h} })
	}()
	var a [2]string
	select {
	case a = <-addrs:
	case err := <-done:
		t.Fatalf("runMain: %v", err)
	}

	for _, m := range []struct {
		mchID, serial string
		key           *rsa.PrivateKey
	}{
		{"1900000100", k.PublicKeyID, k.PlatformKey},
		{"1900000200", certSerial, certKey.PlatformKey},
	} {
		n, err := wxsim.NewNotifier(wxsim.NotifierOptions{PublicKeyID: m.serial, PlatformKey: m.key, APIv3Key: testAPIv3Key, Schedule: []time.Duration{}})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := n.NotificationBody("EV-"+m.mchID, event.NotifyCreditTerminate,
			wxsim.NotificationContract{API: event.CreditRepayment, MchID: m.mchID, OutContractCode: "C" + m.mchID})
		if d, err := n.Deliver(ctx, "http://"+a[0]+"/v1/notify/"+m.mchID, body); err != nil {
			t.Errorf("merchant %s: %+v, %v; want accepted at once", m.mchID, d, err)
		}
	}

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + a[1] + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := get("/readyz"); status != http.StatusOK {
		t.Errorf("/readyz = %d %s; want 200", status, body)
	}
	if status, body := get("/metrics"); status != http.StatusOK ||
		!strings.Contains(body, `wxterm_notify_published_total{event_type="CREDIT_REPAYMENT.TERMINATE_CONTRACT"} 2`) {
		t.Errorf("/metrics = %d; want 2 published credit repayment terminations in:\n%s", status, body)
	}
	// The endpoint is not served on the operations port, nor metrics on the endpoint's.
	if status, _ := get("/v1/notify/1900000100"); status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
		t.Errorf("operations port serves the endpoint: %d", status)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("runMain after cancel = %v; want nil", err)
	}
}

func TestMerchantSettingsRefused(t *testing.T) {
	k := wxsimtest.Keys(t)
	dir := t.TempDir()
	if err := k.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(dir, wxsim.FilePublicKey)
	good := writeFile(t, dir, "good.key", testAPIv3Key)
	short := writeFile(t, dir, "short.key", "secret-but-short")
	files := 0
	file := func(body string) string {
		files++
		return writeFile(t, dir, "m"+string(rune('0'+files))+".json", body)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no merchant", nil, "merchant settings missing"},
		{"no APIv3 key", []string{"-mchid", "1", "-wechatpay-public-key-id", k.PublicKeyID, "-wechatpay-public-key-file", pub}, "merchant settings missing"},
		{"short APIv3 key", []string{"-mchid", "1", "-apiv3-key-file", short, "-wechatpay-public-key-id", k.PublicKeyID, "-wechatpay-public-key-file", pub}, "not 32 bytes"},
		{"no WeChat Pay key", []string{"-mchid", "1", "-apiv3-key-file", good}, "no WeChat Pay public key and no platform certificates"},
		{"key id without file", []string{"-mchid", "1", "-apiv3-key-file", good, "-wechatpay-public-key-id", k.PublicKeyID}, "needs both"},
		{"file and flags", []string{"-mchid", "1", "-merchants-file", file(`{"merchants":[]}`)}, "either"},
		{"unknown field", []string{"-merchants-file", file(`{"merchants":[{"mchid":"1","apiv3_key":"x"}]}`)}, "unknown field"},
		{"empty file", []string{"-merchants-file", file(`{"merchants":[]}`)}, "lists no merchants"},
		{"skew over 5m", []string{"-max-clock-skew", "6m"}, "-max-clock-skew"},
		// Review of issue 14: a body limit over notify.MaxBodyBytesLimit lets
		// bodies through whose events the consumer refuses.
		{"body limit over the event bound", []string{"-max-body-bytes", "1048576"}, "-max-body-bytes"},
		{"body limit zero", []string{"-max-body-bytes", "0"}, "-max-body-bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := runMain(context.Background(), tt.args, io.Discard, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("runMain = %v; want an error containing %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "secret-but-short") {
				t.Errorf("the error echoes the APIv3 key: %v", err)
			}
		})
	}
}
