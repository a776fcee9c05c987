package wxsim_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/wxterm/wxterm/internal/wxsim"
	"github.com/wxterm/wxterm/internal/wxsim/wxsimtest"
)

// A contract its user terminated reads, on each API, in that API's words:
// its state, its termination mode and the user's time.
func TestTerminatedByUser(t *testing.T) {
	k := wxsimtest.Keys(t)
	sim, srv := start(t, k.SimOptions())
	client := sdk(t, k, k, 5*time.Second)
	at := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
	for i, want := range [][]string{
		{`"contract_state":"CONTRACT_STATE_TERMINATED"`, `"contract_termination_mode":"TERMINATION_MODE_BY_USER"`, `"contract_terminated_time":"2026-03-01T17:30:00+08:00"`},
		{`"contract_state":"TERMINATED"`, `"contract_terminate_info":{"contract_termination_mode":"USER_TERMINATE","contract_terminated_time":"2026-03-01T17:30:00+08:00"`},
		{`"contract_state":"TERMINATED"`, `"contract_termination_mode":"USER_TERMINATE"`},
		{`"state":"TERMINATED"`, `"termination_mode":"USER"`, `"terminated_time":"2026-03-01T17:30:00+08:00"`},
		{`"state":"TERMINATED"`, `"termination_mode":"USER"`},
	} {
		q := queries[i]
		if !sim.TerminateAs(q.key, wxsim.ByUser, at) {
			t.Fatalf("TerminateAs(%s): no contract", q.key)
		}
		_, body, err := do(client, srv.URL, q)
		if err != nil {
			t.Fatalf("%s: %v", q.path, err)
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: got %s; want it to contain %s", q.path, body, w)
			}
		}
		if sim.Terminations(q.key) != 0 || sim.TerminateCalls(q.key) != 0 {
			t.Errorf("%s: a user's termination counted as a call", q.key)
		}
	}
	if sim.TerminateAs("NOPE", wxsim.ByUser, at) {
		t.Error("TerminateAs(NOPE) = true; want false")
	}
}

// SeedMissing makes a contract unknown even to an auto-creating simulator:
// global papay's terminate answers the ambiguous 403, queries 404.
func TestSeedMissing(t *testing.T) {
	k := wxsimtest.Keys(t)
	opts := k.SimOptions()
	opts.AutoCreate = true
	sim, srv := start(t, opts)
	client := sdk(t, k, k, 5*time.Second)
	for _, key := range []string{"CR1", "G2"} {
		sim.SeedMissing(key)
	}
	for _, tc := range []struct {
		c          call
		wantStatus int
		wantCode   string
	}{
		{terminates[0], 404, "RESOURCE_NOT_EXISTS"},
		{queries[0], 404, "RESOURCE_NOT_EXISTS"},
		{terminates[4], 403, "CONTRACT_NOT_EXIST"},
		{queries[4], 404, "RESOURCE_NOT_EXISTS"},
	} {
		if status, body, _ := do(client, srv.URL, tc.c); status != tc.wantStatus || code(body) != tc.wantCode {
			t.Errorf("%s %s: got %d %s; want %d %s", tc.c.method, tc.c.path, status, body, tc.wantStatus, tc.wantCode)
		}
	}
	if _, ok := sim.Contract("CR1"); ok {
		t.Error("a missing contract was created")
	}
}

// With PendingFor, a papay terminate answers TERMINATE_PENDING, and so do
// queries until the termination is due; other APIs terminate at once.
func TestPendingFor(t *testing.T) {
	k := wxsimtest.Keys(t)
	opts := k.SimOptions()
	opts.PendingFor = time.Hour
	sim, srv := start(t, opts)
	client := sdk(t, k, k, 5*time.Second)
	for _, i := range []int{1, 2} {
		_, body, err := do(client, srv.URL, terminates[i])
		if err != nil || !strings.Contains(body, `"contract_state":"TERMINATE_PENDING"`) || strings.Contains(body, "contract_terminate_info") {
			t.Errorf("%s: got %s %v; want TERMINATE_PENDING without termination info", terminates[i].key, body, err)
		}
		if status, body, _ := do(client, srv.URL, terminates[i]); status != 400 || code(body) != "INVALID_REQUEST" {
			t.Errorf("%s again: got %d %s; want 400 INVALID_REQUEST", terminates[i].key, status, body)
		}
	}
	if _, body, _ := do(client, srv.URL, queries[1]); !strings.Contains(body, "TERMINATE_PENDING") {
		t.Errorf("query while pending: got %s", body)
	}
	c, _ := sim.Contract("PP1")
	c.PendingUntil = time.Now().Add(-time.Minute)
	sim.Seed(c)
	if _, body, _ := do(client, srv.URL, queries[1]); !strings.Contains(body, `"contract_state":"TERMINATED"`) ||
		!strings.Contains(body, `"contract_termination_mode":"MCH_API_TERMINATE"`) {
		t.Errorf("query when due: got %s; want TERMINATED by MCH_API_TERMINATE", body)
	}
	if _, body, _ := do(client, srv.URL, terminates[0]); !strings.Contains(body, "CONTRACT_STATE_TERMINATED") {
		t.Errorf("credit terminate: got %s; want terminated at once", body)
	}
	if got := sim.Terminations("PP1"); got != 1 {
		t.Errorf("Terminations(PP1) = %d; want 1", got)
	}
}

// GET /v3/certificates serves the platform certificate encrypted with the
// APIv3 key, signed with the certificate; answers are signed with the
// certificate once SetSigning says so.
func TestCertificates(t *testing.T) {
	k := wxsimtest.Keys(t)
	sim, srv := start(t, k.SimOptions())
	client, err := core.NewClient(t.Context(),
		option.WithWechatPayAuthCipher(k.MchID, k.MerchantCertSerial, k.MerchantKey, []*x509.Certificate{k.Certificate}),
		option.WithHTTPClient(&http.Client{Timeout: 5 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v3/certificates", "/v3/global/certificates"} {
		res, err := client.Get(t.Context(), srv.URL+path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var got struct {
			Data []struct {
				SerialNo           string `json:"serial_no"`
				EncryptCertificate struct {
					Algorithm, Nonce, AssociatedData, Ciphertext string
				} `json:"encrypt_certificate"`
			}
		}
		if err := json.NewDecoder(res.Response.Body).Decode(&got); err != nil || len(got.Data) != 1 {
			t.Fatalf("%s: got %+v, %v; want one certificate", path, got, err)
		}
		d := got.Data[0]
		if d.SerialNo != k.CertificateSerial || d.EncryptCertificate.Algorithm != "AEAD_AES_256_GCM" {
			t.Errorf("%s: got serial %s, algorithm %s", path, d.SerialNo, d.EncryptCertificate.Algorithm)
		}
	}
	// The same answer decrypted by the SDK's own AES-GCM.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/v3/certificates", nil)
	noVerify := k.SimOptions()
	noVerify.MerchantPublicKey = nil
	wxsim.New(noVerify).ServeHTTP(rec, req)
	var raw struct {
		Data []struct {
			EncryptCertificate struct {
				Nonce          string `json:"nonce"`
				AssociatedData string `json:"associated_data"`
				Ciphertext     string `json:"ciphertext"`
			} `json:"encrypt_certificate"`
		}
	}
	json.Unmarshal(rec.Body.Bytes(), &raw)
	if len(raw.Data) != 1 {
		t.Fatalf("got %s", rec.Body)
	}
	e := raw.Data[0].EncryptCertificate
	plain, err := utils.DecryptAES256GCM(k.APIv3Key, e.AssociatedData, e.Nonce, e.Ciphertext)
	if err != nil || e.AssociatedData != "certificate" {
		t.Fatalf("decrypt: %v (associated data %q)", err, e.AssociatedData)
	}
	cert, err := utils.LoadCertificate(plain)
	if err != nil || !cert.Equal(k.Certificate) {
		t.Errorf("decrypted certificate: %v; want the simulator's", err)
	}
	if _, err := base64.StdEncoding.DecodeString(e.Ciphertext); err != nil {
		t.Errorf("ciphertext not base64: %v", err)
	}

	sim.SetSigning(wxsim.SignCertificate)
	if status, body, err := do(client, srv.URL, queries[2]); status != 200 || err != nil {
		t.Errorf("query signed with the certificate: got %d %s %v; want 200", status, body, err)
	}
	if _, _, err := do(sdk(t, k, k, 5*time.Second), srv.URL, queries[2]); err == nil {
		t.Error("a public-key client accepted an answer signed with the certificate")
	}
}
