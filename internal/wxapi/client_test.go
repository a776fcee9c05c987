package wxapi_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/wxterm/wxterm/internal/wxapi"
	"github.com/wxterm/wxterm/internal/wxsim"
	"github.com/wxterm/wxterm/internal/wxsim/wxsimtest"
)

var seeds = []wxsim.Contract{
	{API: wxapi.CreditRepayment, OutContractCode: "CR1", PlanID: "WxCreditPlan1", ContractID: "C-CR1", DisplayName: "*明", RepaymentDay: 5},
	{API: wxapi.PapayPartner, OutContractCode: "PP1", PlanID: "12535", ContractID: "C-PP1", SubMchID: "1900000110", SpAppID: "wxsp", SubAppID: "wxsub", DisplayName: "*红"},
	{API: wxapi.PapayDirect, OutContractCode: "PD1", PlanID: "12536", ContractID: "C-PD1", AppID: "wxdirect", DisplayName: "*刚"},
	{API: wxapi.GlobalPapay, OutContractCode: "GP1", PlanID: "123", ContractID: "G1", SpAppID: "wxsp", SubMchID: "10000097", SubAppID: "wxsub"},
	{API: wxapi.GlobalPapay, ContractID: "G2", AppID: "wxdirect"},
}

var requests = map[string]wxapi.Request{
	"CR1": {API: wxapi.CreditRepayment, OutContractCode: "CR1", Remark: "用户要求解约"},
	"PP1": {API: wxapi.PapayPartner, OutContractCode: "PP1", PlanID: "12535", SubMchID: "1900000110", Remark: "r"},
	"PD1": {API: wxapi.PapayDirect, OutContractCode: "PD1", PlanID: "12536", Remark: "r"},
	"G1":  {API: wxapi.GlobalPapay, OutContractCode: "GP1", ContractID: "G1", SpAppID: "wxsp", SubMchID: "10000097", SubAppID: "wxsub", Remark: "n"},
	"G2":  {API: wxapi.GlobalPapay, ContractID: "G2", AppID: "wxdirect", Remark: "n"},
}

// env is a seeded simulator behind an optional middleware, and a client for it.
type env struct {
	sim    *wxsim.Server
	srv    *httptest.Server
	client *wxapi.Client
}

func setup(t *testing.T, mw func(http.Handler) http.Handler, cfg func(*wxapi.Config)) *env {
	t.Helper()
	k := wxsimtest.Keys(t)
	sim := wxsim.New(k.SimOptions())
	for _, c := range seeds {
		sim.Seed(c)
	}
	var h http.Handler = sim
	if mw != nil {
		h = mw(sim)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c := k.ClientConfig(srv.URL)
	c.Timeout = 5 * time.Second
	if cfg != nil {
		cfg(&c)
	}
	client, err := wxapi.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return &env{sim, srv, client}
}

// wxErr returns err's *wxapi.Error, failing the test if there is none.
func wxErr(t *testing.T, err error) *wxapi.Error {
	t.Helper()
	e, ok := errors.AsType[*wxapi.Error](err)
	if !ok {
		t.Fatalf("got %v (%T); want a *wxapi.Error", err, err)
	}
	return e
}

func TestTerminate(t *testing.T) {
	e := setup(t, nil, nil)
	for _, tc := range []struct {
		key  string
		want wxapi.Contract // without times
	}{
		{"CR1", wxapi.Contract{API: wxapi.CreditRepayment, ContractID: "C-CR1", PlanID: "WxCreditPlan1", OutContractCode: "CR1", DisplayName: "*明",
			ContractState: "CONTRACT_STATE_TERMINATED", ContractTerminationMode: "TERMINATION_MODE_BY_MERCHANT", ContractTerminationRemark: "用户要求解约", RepaymentDay: 5,
			Status: wxapi.StatusTerminated, TerminationMode: wxapi.ModeMerchant, HTTPStatus: 200}},
		{"PP1", wxapi.Contract{API: wxapi.PapayPartner, ContractID: "C-PP1", PlanID: "12535", OutContractCode: "PP1", ContractDisplayAccount: "*红",
			SpMchID: "1900000109", SpAppID: "wxsp", SubMchID: "1900000110", SubAppID: "wxsub",
			ContractState: "TERMINATED", ContractTerminationMode: "MCH_API_TERMINATE", ContractTerminationRemark: "r",
			Status: wxapi.StatusTerminated, TerminationMode: wxapi.ModeMerchant, HTTPStatus: 200}},
		{"PD1", wxapi.Contract{API: wxapi.PapayDirect, ContractID: "C-PD1", PlanID: "12536", OutContractCode: "PD1", ContractDisplayAccount: "*刚",
			MchID: "1900000109", AppID: "wxdirect", ContractState: "TERMINATED", ContractTerminationMode: "MCH_API_TERMINATE", ContractTerminationRemark: "r",
			Status: wxapi.StatusTerminated, TerminationMode: wxapi.ModeMerchant, HTTPStatus: 200}},
		// 204 (seed 002): built from the request, WeChat's raw state unknown.
		{"G1", wxapi.Contract{API: wxapi.GlobalPapay, ContractID: "G1", OutContractCode: "GP1", SpAppID: "wxsp", SubMchID: "10000097", SubAppID: "wxsub",
			ContractTerminationRemark: "n", Status: wxapi.StatusTerminated, TerminationMode: wxapi.ModeMerchant, HTTPStatus: 204}},
		{"G2", wxapi.Contract{API: wxapi.GlobalPapay, ContractID: "G2", AppID: "wxdirect", ContractTerminationRemark: "n",
			Status: wxapi.StatusTerminated, TerminationMode: wxapi.ModeMerchant, HTTPStatus: 204}},
	} {
		t.Run(tc.key, func(t *testing.T) {
			r := requests[tc.key]
			before, err := e.client.Query(context.Background(), r)
			if err != nil || before.Terminated() || before.State() != wxapi.StateEffective || before.Status != wxapi.StatusEffective {
				t.Fatalf("query before: got %+v, %v; want an effective contract", before, err)
			}
			begin := time.Now().Add(-time.Second) // the simulator's times have whole seconds
			got, err := e.client.Terminate(context.Background(), r)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Terminated() || got.State() != wxapi.StateTerminated {
				t.Errorf("Terminated() = false for %+v", got)
			}
			if r.API != wxapi.GlobalPapay && (got.ContractSignedTime == "" || got.TerminatedAt.Before(begin)) {
				t.Errorf("got signed time %q, terminated at %v; want a signed time and a termination since %v", got.ContractSignedTime, got.TerminatedAt, begin)
			}
			got.ContractSignedTime, got.ContractTerminatedTime, got.TerminatedAt = "", "", time.Time{}
			if *got != tc.want {
				t.Errorf("got  %+v\nwant %+v", *got, tc.want)
			}
			if n := e.sim.Terminations(tc.key); n != 1 {
				t.Errorf("Terminations(%s) = %d; want 1", tc.key, n)
			}

			// A second terminate is refused in the family's own way, as
			// a refusal to query before judging.
			wantStatus, wantCode := 400, "INVALID_REQUEST"
			if r.API == wxapi.GlobalPapay {
				wantStatus, wantCode = 403, "CONTRACT_NOT_EXIST"
			}
			_, err = e.client.Terminate(context.Background(), r)
			if we := wxErr(t, err); we.HTTPStatus != wantStatus || we.Code != wantCode || wxapi.Classify(err) != wxapi.Permanent ||
				we.Sent || !wxapi.MayBeTerminated(err) || wxapi.IsNotFound(err) {
				t.Errorf("second terminate: got %+v; want a permanent, unsent %d %s to query before judging", we, wantStatus, wantCode)
			}

			after, err := e.client.Query(context.Background(), r)
			if err != nil || !after.Terminated() || after.ContractID != tc.want.ContractID || after.TerminationMode != wxapi.ModeMerchant ||
				after.TerminatedAt.Before(begin) {
				t.Errorf("query after: got %+v, %v; want contract %s terminated by the merchant since %v", after, err, tc.want.ContractID, begin)
			}
		})
	}
}

// rewrite returns a middleware that lets f rewrite each answer the simulator signed.
func rewrite(f func(h http.Header, body []byte) []byte) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			body := f(rec.Header(), rec.Body.Bytes())
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(body)
		})
	}
}

func TestResponseSignature(t *testing.T) {
	other, err := wxsim.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mw     func(http.Handler) http.Handler
		cfg    func(*wxapi.Config)
		faults wxsim.Faults
	}{
		{name: "tampered body", mw: rewrite(func(h http.Header, b []byte) []byte {
			if len(b) == 0 { // a 204 has no body: tamper with the signed nonce instead
				h.Set("Wechatpay-Nonce", h.Get("Wechatpay-Nonce")+"x")
			}
			return bytes.Replace(b, []byte("CONTRACT_STATE_TERMINATED"), []byte("CONTRACT_STATE_EFFECTIVE"), 1)
		})},
		{name: "unsigned", mw: rewrite(func(h http.Header, b []byte) []byte {
			for _, k := range []string{"Wechatpay-Signature", "Wechatpay-Serial", "Wechatpay-Timestamp", "Wechatpay-Nonce"} {
				h.Del(k)
			}
			return b
		})},
		{name: "stale timestamp", mw: rewrite(func(h http.Header, b []byte) []byte {
			h.Set("Wechatpay-Timestamp", fmt.Sprint(time.Now().Add(-time.Hour).Unix()))
			return b
		})},
		{name: "signed with another key", cfg: func(c *wxapi.Config) { c.PublicKey = &other.PlatformKey.PublicKey }},
		{name: "another public key id", cfg: func(c *wxapi.Config) { c.PublicKeyID = other.PublicKeyID }},
		{name: "corrupted signature", faults: wxsim.Faults{Rate: 1, Kinds: []wxsim.FaultKind{wxsim.FaultBadSignature}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, tc.mw, tc.cfg)
			e.sim.SetFaults(tc.faults)
			for _, key := range []string{"CR1", "G2"} { // a 200 with a body and a 204 without
				c, err := e.client.Terminate(context.Background(), requests[key])
				if c != nil {
					t.Errorf("%s: got contract %+v; want none", key, c)
				}
				we := wxErr(t, err)
				if !we.Sent || !errors.Is(err, wxapi.ErrSignature) || wxapi.Classify(err) != wxapi.Systemic {
					t.Errorf("%s: got %v (class %v, sent %v); want a systemic, sent ErrSignature", key, err, wxapi.Classify(err), we.Sent)
				}
			}
		})
	}
}

// unusedURL returns the URL of a port nothing listens on.
func unusedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestBackupURL(t *testing.T) {
	t.Run("main unreachable", func(t *testing.T) {
		e := setup(t, nil, func(c *wxapi.Config) { c.BackupURL, c.BaseURL = c.BaseURL, unusedURL(t) })
		if _, err := e.client.Terminate(context.Background(), requests["CR1"]); err != nil {
			t.Fatalf("got %v; want success through the backup", err)
		}
		if _, err := e.client.Query(context.Background(), requests["PP1"]); err != nil {
			t.Fatalf("query: got %v; want success through the backup", err)
		}
		if got := e.sim.TerminateCalls("CR1"); got != 1 {
			t.Errorf("TerminateCalls = %d; want 1", got)
		}
	})

	// The main host took the terminate and the answer was lost: trying the
	// backup could make our own termination look like an earlier one.
	t.Run("no terminate failover once sent", func(t *testing.T) {
		backup := setup(t, nil, nil)
		e := setup(t, nil, func(c *wxapi.Config) { c.BackupURL = backup.srv.URL })
		e.sim.SetFaults(wxsim.Faults{Rate: 1, Kinds: []wxsim.FaultKind{wxsim.FaultDrop}, AfterApply: true})
		_, err := e.client.Terminate(context.Background(), requests["PD1"])
		if we := wxErr(t, err); wxapi.Classify(err) != wxapi.Transient || !we.Sent {
			t.Errorf("got %v (class %v, sent %v); want transient and sent", err, wxapi.Classify(err), we.Sent)
		}
		if n := backup.sim.TotalTerminateCalls(); n != 0 {
			t.Errorf("backup got %d terminate calls; want 0", n)
		}
		// Queries are safe to repeat: they fail over even after sending.
		backup.sim.Seed(wxsim.Contract{API: wxapi.PapayDirect, OutContractCode: "PD1", PlanID: "12536", State: wxsim.Terminated})
		c, err := e.client.Query(context.Background(), requests["PD1"])
		if err != nil || !c.Terminated() {
			t.Errorf("query: got %+v, %v; want the backup's terminated contract", c, err)
		}
	})

	t.Run("no failover on HTTP errors", func(t *testing.T) {
		backup := setup(t, nil, nil)
		e := setup(t, nil, func(c *wxapi.Config) { c.BackupURL = backup.srv.URL })
		e.sim.SetFaults(wxsim.Faults{Rate: 1, Kinds: []wxsim.FaultKind{wxsim.FaultHTTP503}})
		_, err := e.client.Terminate(context.Background(), requests["CR1"])
		if we := wxErr(t, err); we.HTTPStatus != 503 {
			t.Errorf("got %v; want the main host's 503", err)
		}
		if n := backup.sim.TotalTerminateCalls(); n != 0 {
			t.Errorf("backup got %d terminate calls; want 0", n)
		}
	})

	t.Run("global has no backup", func(t *testing.T) {
		backup := setup(t, nil, nil)
		e := setup(t, nil, func(c *wxapi.Config) { c.GlobalBaseURL, c.BackupURL = unusedURL(t), backup.srv.URL })
		_, err := e.client.Terminate(context.Background(), requests["G2"])
		if we := wxErr(t, err); wxapi.Classify(err) != wxapi.Transient || we.Sent {
			t.Errorf("got %v (sent %v); want transient, unsent", err, we.Sent)
		}
		if n := backup.sim.TotalTerminateCalls(); n != 0 {
			t.Errorf("backup got %d terminate calls; want 0", n)
		}
	})
}

func TestErrors(t *testing.T) {
	other, err := wxsim.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	fault := func(k wxsim.FaultKind, afterApply bool) wxsim.Faults {
		return wxsim.Faults{Rate: 1, Kinds: []wxsim.FaultKind{k}, AfterApply: afterApply, HangFor: 10 * time.Second}
	}
	for _, tc := range []struct {
		name       string
		faults     wxsim.Faults
		cfg        func(*wxapi.Config)
		req        func(*wxapi.Request)
		wantStatus int
		wantCode   string
		wantClass  wxapi.Class
		wantSent   bool
		wantFreq   bool
	}{
		{name: "500", faults: fault(wxsim.FaultHTTP500, false), wantStatus: 500, wantCode: "SYSTEM_ERROR", wantClass: wxapi.Transient, wantSent: true},
		{name: "503", faults: fault(wxsim.FaultHTTP503, false), wantStatus: 503, wantClass: wxapi.Transient, wantSent: true},
		{name: "429", faults: fault(wxsim.Fault429, false), wantStatus: 429, wantCode: "RATELIMIT_EXCEED", wantClass: wxapi.Transient, wantFreq: true},
		{name: "timeout", faults: fault(wxsim.FaultTimeout, true), cfg: func(c *wxapi.Config) { c.Timeout = 200 * time.Millisecond },
			wantClass: wxapi.Transient, wantSent: true},
		{name: "dropped connection", faults: fault(wxsim.FaultDrop, false), wantClass: wxapi.Transient, wantSent: true},
		{name: "sign error", faults: fault(wxsim.FaultSignError, false), wantStatus: 401, wantCode: "SIGN_ERROR", wantClass: wxapi.Systemic},
		{name: "wrong merchant key", cfg: func(c *wxapi.Config) { c.PrivateKey = other.MerchantKey }, wantStatus: 401, wantCode: "SIGN_ERROR", wantClass: wxapi.Systemic},
		{name: "bad signature", faults: fault(wxsim.FaultBadSignature, false), wantStatus: 200, wantClass: wxapi.Systemic, wantSent: true},
		{name: "not found", req: func(r *wxapi.Request) { r.OutContractCode = "NOPE" }, wantStatus: 404, wantCode: "RESOURCE_NOT_EXISTS", wantClass: wxapi.Permanent},
		{name: "remark too long", req: func(r *wxapi.Request) { r.Remark = strings.Repeat("x", 129) }, wantStatus: 400, wantCode: "PARAM_ERROR", wantClass: wxapi.Permanent},
		{name: "code not alphanumeric", req: func(r *wxapi.Request) { r.OutContractCode = "CR_1" }, wantStatus: 400, wantCode: "PARAM_ERROR", wantClass: wxapi.Permanent},
		{name: "missing remark", req: func(r *wxapi.Request) { r.Remark = "" }, wantClass: wxapi.Permanent},
		{name: "unknown api", req: func(r *wxapi.Request) { r.API = "alipay" }, wantClass: wxapi.Permanent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, nil, tc.cfg)
			e.sim.SetFaults(tc.faults)
			r := requests["CR1"]
			if tc.req != nil {
				tc.req(&r)
			}
			_, err := e.client.Terminate(context.Background(), r)
			we := wxErr(t, err)
			if we.HTTPStatus != tc.wantStatus || we.Code != tc.wantCode || wxapi.Classify(err) != tc.wantClass || we.Sent != tc.wantSent {
				t.Errorf("got status %d, code %q, class %v, sent %v (%v); want %d, %q, %v, %v",
					we.HTTPStatus, we.Code, wxapi.Classify(err), we.Sent, err, tc.wantStatus, tc.wantCode, tc.wantClass, tc.wantSent)
			}
			if got := wxapi.Classify(fmt.Errorf("consumer: %w", err)); got != tc.wantClass {
				t.Errorf("Classify(wrapped) = %v; want %v", got, tc.wantClass)
			}
			if got := wxapi.IsFrequencyLimited(err); got != tc.wantFreq {
				t.Errorf("IsFrequencyLimited = %v; want %v", got, tc.wantFreq)
			}
			if we.API != r.API || we.Op != "terminate" || !strings.HasPrefix(err.Error(), "wxapi: terminate ") {
				t.Errorf("got API %q, Op %q, text %q; want %q, terminate, prefixed", we.API, we.Op, err, r.API)
			}
			if errors.Is(err, wxapi.ErrInvalidRequest) && e.sim.TotalTerminateCalls() != 0 {
				t.Errorf("an invalid request reached the simulator")
			}
		})
	}
}

func TestInvalidRequest(t *testing.T) {
	e := setup(t, nil, nil)
	for _, r := range []wxapi.Request{
		{API: wxapi.CreditRepayment, Remark: "r"},
		{API: wxapi.PapayPartner, OutContractCode: "PP1", PlanID: "12535", Remark: "r"},
		{API: wxapi.PapayDirect, OutContractCode: "PD1", Remark: "r"},
		{API: wxapi.GlobalPapay, ContractID: "G1", SpAppID: "wxsp", Remark: "r"},
		{API: wxapi.GlobalPapay, AppID: "wxdirect", Remark: "r"},
	} {
		for op, call := range map[string]func(context.Context, wxapi.Request) (*wxapi.Contract, error){
			"terminate": e.client.Terminate, "query": e.client.Query,
		} {
			_, err := call(context.Background(), r)
			if !errors.Is(err, wxapi.ErrInvalidRequest) || wxapi.Classify(err) != wxapi.Permanent {
				t.Errorf("%s %+v: got %v; want a permanent ErrInvalidRequest", op, r, err)
			}
		}
	}
	if n := e.sim.TotalTerminateCalls() + e.sim.TotalQueryCalls(); n != 0 {
		t.Errorf("%d invalid requests reached the simulator; want 0", n)
	}
}

func TestNew(t *testing.T) {
	k := wxsimtest.Keys(t)
	for _, tc := range []struct {
		name string
		cfg  func(*wxapi.Config)
	}{
		{"no private key", func(c *wxapi.Config) { c.PrivateKey = nil }},
		{"no public key", func(c *wxapi.Config) { c.PublicKey = nil }},
		{"no mchid", func(c *wxapi.Config) { c.MchID = "" }},
		{"no serial", func(c *wxapi.Config) { c.CertSerial = " " }},
		{"no public key id", func(c *wxapi.Config) { c.PublicKeyID = "" }},
		{"broken private key", func(c *wxapi.Config) {
			c.PrivateKey = &rsa.PrivateKey{PublicKey: k.MerchantKey.PublicKey, D: k.MerchantKey.D}
		}},
		{"bad url", func(c *wxapi.Config) { c.BaseURL = "ftp://api.mch.weixin.qq.com" }},
		{"negative timeout", func(c *wxapi.Config) { c.Timeout = -time.Second }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := k.ClientConfig("http://127.0.0.1:1")
			tc.cfg(&cfg)
			c, err := wxapi.New(cfg)
			if c != nil || !errors.Is(err, wxapi.ErrConfig) || wxapi.Classify(err) != wxapi.Systemic {
				t.Errorf("got %v, %v; want a systemic ErrConfig", c, err)
			}
			assertNoSecrets(t, err, nil)
		})
	}
	if _, err := wxapi.New(k.ClientConfig("http://127.0.0.1:1")); err != nil {
		t.Errorf("valid config: got %v", err)
	}
}

// assertNoSecrets fails if err's text holds the merchant private key (PEM or
// its exponent) or one of the Authorization headers sent.
func assertNoSecrets(t *testing.T, err error, authorizations []string) {
	t.Helper()
	k := wxsimtest.Keys(t)
	der := x509.MarshalPKCS1PrivateKey(k.MerchantKey)
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der}))
	secrets := []string{k.MerchantKey.D.String(), k.MerchantKey.Primes[0].String()}
	for line := range strings.SplitSeq(pemText, "\n") {
		if len(line) > 20 && !strings.HasPrefix(line, "-----") {
			secrets = append(secrets, line)
		}
	}
	for _, a := range authorizations {
		secrets = append(secrets, a)
		if _, sig, ok := strings.Cut(a, `signature="`); ok {
			secrets = append(secrets, strings.TrimSuffix(sig, `"`))
		}
	}
	for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("error text %q holds a secret", text)
				return
			}
		}
	}
}

func TestNoSecretsInErrors(t *testing.T) {
	var mu sync.Mutex
	var authorizations []string
	record := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			authorizations = append(authorizations, r.Header.Get("Authorization"))
			mu.Unlock()
			next.ServeHTTP(w, r)
		})
	}
	other, err := wxsim.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	for _, tc := range []struct {
		faults wxsim.Faults
		cfg    func(*wxapi.Config)
	}{
		{faults: wxsim.Faults{Rate: 1, Kinds: []wxsim.FaultKind{wxsim.FaultSignError}}},
		{faults: wxsim.Faults{Rate: 1, Kinds: []wxsim.FaultKind{wxsim.FaultBadSignature}}},
		{faults: wxsim.Faults{Rate: 1, Kinds: []wxsim.FaultKind{wxsim.FaultHTTP500}}},
		{faults: wxsim.Faults{Rate: 1, Kinds: []wxsim.FaultKind{wxsim.FaultDrop}}},
		{faults: wxsim.Faults{Rate: 1, Kinds: []wxsim.FaultKind{wxsim.FaultTimeout}, HangFor: 5 * time.Second},
			cfg: func(c *wxapi.Config) { c.Timeout = 100 * time.Millisecond }},
		{cfg: func(c *wxapi.Config) { c.PrivateKey = other.MerchantKey }},
		{cfg: func(c *wxapi.Config) { c.PublicKey = &other.PlatformKey.PublicKey }},
	} {
		e := setup(t, record, tc.cfg)
		e.sim.SetFaults(tc.faults)
		for _, key := range []string{"CR1", "G2"} {
			if _, err := e.client.Terminate(context.Background(), requests[key]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) != 14 || len(authorizations) != 14 {
		t.Fatalf("got %d errors for %d requests; want 14 and 14", len(errs), len(authorizations))
	}
	for _, err := range errs {
		assertNoSecrets(t, err, authorizations)
	}
}

// Many goroutines share one Client, as the consumer's workers do.
func TestConcurrentUse(t *testing.T) {
	sim, client := wxsimtest.AutoCreating(t, 0)
	const n = 256
	var g errgroup.Group
	for i := range n {
		g.Go(func() error {
			r := wxapi.Request{API: wxapi.PapayPartner, OutContractCode: fmt.Sprintf("C%d", i), PlanID: "1", SubMchID: "2", Remark: "r"}
			c, err := client.Terminate(context.Background(), r)
			if err == nil && !c.Terminated() {
				err = fmt.Errorf("contract %s not terminated", r.OutContractCode)
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Error(err)
	}
	if got := sim.TotalTerminateCalls(); got != n {
		t.Errorf("TotalTerminateCalls() = %d; want %d", got, n)
	}
}

func TestAPIValid(t *testing.T) {
	for a, want := range map[wxapi.API]bool{
		wxapi.CreditRepayment: true, wxapi.PapayPartner: true, wxapi.PapayDirect: true, wxapi.GlobalPapay: true,
		"": false, "papay": false,
	} {
		if got := a.Valid(); got != want {
			t.Errorf("API(%q).Valid() = %v; want %v", a, got, want)
		}
	}
}
