package wxsim_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/wxterm/wxterm/internal/wxapi"
	"github.com/wxterm/wxterm/internal/wxsim"
	"github.com/wxterm/wxterm/internal/wxsim/wxsimtest"
)

var seeds = []wxsim.Contract{
	{API: wxapi.CreditRepayment, OutContractCode: "CR1", PlanID: "WxCreditPlan1", DisplayName: "*明", RepaymentDay: 5},
	{API: wxapi.PapayPartner, OutContractCode: "PP1", PlanID: "12535", SubMchID: "1900000110", SpAppID: "wxsp"},
	{API: wxapi.PapayDirect, OutContractCode: "PD1", PlanID: "12536", AppID: "wxdirect"},
	{API: wxapi.GlobalPapay, ContractID: "G1", SpAppID: "wxsp", SubMchID: "10000097", SubAppID: "wxsub"},
	{API: wxapi.GlobalPapay, ContractID: "G2", AppID: "wxdirect"},
}

// call is one request to the simulator: an API path and its JSON body.
type call struct {
	key, method, path, body string
}

var terminates = []call{
	{"CR1", "POST", "/v3/credit-repayment/partner/contracts/terminate", `{"out_contract_code":"CR1","contract_termination_remark":"用户要求解约"}`},
	{"PP1", "POST", "/v3/papay/sign/partner/contracts/plan-id/12535/out-contract-code/PP1/terminate", `{"sub_mchid":"1900000110","contract_termination_remark":"r"}`},
	{"PD1", "POST", "/v3/papay/sign/contracts/plan-id/12536/out-contract-code/PD1/terminate", `{"contract_termination_remark":"r"}`},
	{"G1", "POST", "/v3/global/papay/contracts/G1/terminate", `{"sp_appid":"wxsp","sub_mchid":"10000097","sub_appid":"wxsub","termination_note":"n"}`},
	{"G2", "POST", "/v3/global/papay/contracts/G2/terminate", `{"appid":"wxdirect","termination_note":"n"}`},
}

var queries = []call{
	{"CR1", "GET", "/v3/credit-repayment/partner/contracts/CR1", ""},
	{"PP1", "GET", "/v3/papay/sign/partner/contracts/plan-id/12535/out-contract-code/PP1?sub_mchid=1900000110", ""},
	{"PD1", "GET", "/v3/papay/sign/contracts/plan-id/12536/out-contract-code/PD1", ""},
	{"G1", "GET", "/v3/global/papay/contracts/G1?sp_appid=wxsp&sub_mchid=10000097", ""},
	{"G2", "GET", "/v3/global/papay/contracts/G2?appid=wxdirect", ""},
}

// start serves a seeded simulator.
func start(t *testing.T, opts wxsim.Options) (*wxsim.Server, *httptest.Server) {
	t.Helper()
	sim := wxsim.New(opts)
	for _, c := range seeds {
		sim.Seed(c)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv
}

// sdk returns the official SDK client, which signs requests and validates
// 2xx answers, with the given merchant key.
func sdk(t *testing.T, k *wxsim.Keys, merchant *wxsim.Keys, timeout time.Duration) *core.Client {
	t.Helper()
	c, err := core.NewClient(context.Background(),
		option.WithWechatPayPublicKeyAuthCipher(merchant.MchID, merchant.MerchantCertSerial, merchant.MerchantKey, k.PublicKeyID, &k.PlatformKey.PublicKey),
		option.WithHTTPClient(&http.Client{Timeout: timeout}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// do sends c with client and returns the HTTP status, the body and the error.
func do(client *core.Client, base string, c call) (int, string, error) {
	var res *core.APIResult
	var err error
	if c.method == "GET" {
		res, err = client.Get(context.Background(), base+c.path)
	} else {
		res, err = client.Post(context.Background(), base+c.path, []byte(c.body))
	}
	if apiErr, ok := errors.AsType[*core.APIError](err); ok {
		return apiErr.StatusCode, apiErr.Body, err
	}
	if err != nil {
		return 0, "", err
	}
	b, _ := io.ReadAll(res.Response.Body)
	return res.Response.StatusCode, string(b), nil
}

func code(body string) string {
	var e struct{ Code string }
	json.Unmarshal([]byte(body), &e)
	return e.Code
}

func TestTerminateThenAlreadyTerminated(t *testing.T) {
	k := wxsimtest.Keys(t)
	sim, srv := start(t, k.SimOptions())
	client := sdk(t, k, k, 5*time.Second)
	for i, c := range terminates {
		t.Run(c.key, func(t *testing.T) {
			wantStatus := http.StatusOK
			if strings.HasPrefix(c.key, "G") {
				wantStatus = http.StatusNoContent
			}
			if status, body, err := do(client, srv.URL, c); status != wantStatus || err != nil {
				t.Fatalf("first terminate: got %d %s %v; want %d", status, body, err, wantStatus)
			}
			// Each family refuses a second terminate its own way: global
			// papay documents 403 CONTRACT_NOT_EXIST ("not found or ...");
			// the others document no dedicated code: 400 INVALID_REQUEST.
			wantStatus, wantCode := http.StatusBadRequest, "INVALID_REQUEST"
			if strings.HasPrefix(c.key, "G") {
				wantStatus, wantCode = http.StatusForbidden, "CONTRACT_NOT_EXIST"
			}
			status, body, _ := do(client, srv.URL, c)
			if status != wantStatus || code(body) != wantCode {
				t.Errorf("second terminate: got %d %s; want %d %s", status, body, wantStatus, wantCode)
			}
			if got := sim.TerminateCalls(c.key); got != 2 {
				t.Errorf("TerminateCalls(%s) = %d; want 2", c.key, got)
			}
			if got := sim.Terminations(c.key); got != 1 {
				t.Errorf("Terminations(%s) = %d; want 1", c.key, got)
			}
			status, body, err := do(client, srv.URL, queries[i])
			if status != http.StatusOK || err != nil || !strings.Contains(body, "TERMINATED") {
				t.Errorf("query: got %d %s %v; want 200 with a terminated state", status, body, err)
			}
		})
	}
	if got, want := sim.TotalTerminateCalls(), 2*len(terminates); got != want {
		t.Errorf("TotalTerminateCalls() = %d; want %d", got, want)
	}
	if got, want := sim.TotalQueryCalls(), len(queries); got != want {
		t.Errorf("TotalQueryCalls() = %d; want %d", got, want)
	}
}

func TestAnswers(t *testing.T) {
	k := wxsimtest.Keys(t)
	_, srv := start(t, k.SimOptions())
	client := sdk(t, k, k, 5*time.Second)
	for _, tc := range []struct {
		c    call
		want []string // fragments of the answer
	}{
		{queries[0], []string{`{"contract_id":`, `"plan_id":"WxCreditPlan1"`, `"contract_state":"CONTRACT_STATE_EFFECTIVE"`, `"display_name":"*明"`, `"repayment_day":5`}},
		{queries[1], []string{`"plan_id":12535`, `"contract_state":"SIGNED"`, `"sp_mchid":"1900000109"`, `"sub_mchid":"1900000110"`}},
		{queries[2], []string{`"plan_id":12536`, `"mchid":"1900000109"`, `"appid":"wxdirect"`}},
		{queries[3], []string{`"contract_id":"G1"`, `"sp_appid":"wxsp"`, `"state":"SIGNED"`, `"sp_mchid":"1900000109"`}},
		{queries[4], []string{`"contract_id":"G2"`, `"appid":"wxdirect"`, `"state":"SIGNED"`, `"mchid":"1900000109"`}},
		{terminates[0], []string{`{"contract_info":{`, `"contract_state":"CONTRACT_STATE_TERMINATED"`, `"contract_termination_mode":"TERMINATION_MODE_BY_MERCHANT"`, `"contract_termination_remark":"用户要求解约"`, `"contract_terminated_time":"`}},
		{terminates[1], []string{`"contract_state":"TERMINATED"`, `"contract_terminate_info":{"contract_termination_mode":"MCH_API_TERMINATE"`}},
	} {
		_, body, err := do(client, srv.URL, tc.c)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.c.method, tc.c.path, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s %s: got %s; want it to contain %s", tc.c.method, tc.c.path, body, w)
			}
		}
	}
}

func TestValidation(t *testing.T) {
	k := wxsimtest.Keys(t)
	sim, srv := start(t, k.SimOptions())
	client := sdk(t, k, k, 5*time.Second)
	const credit = "/v3/credit-repayment/partner/contracts/terminate"
	for _, tc := range []struct {
		name       string
		c          call
		wantStatus int
		wantCode   string
		wantField  string
	}{
		{"credit code not alphanumeric", call{"", "POST", credit, `{"out_contract_code":"CR-1","contract_termination_remark":"r"}`}, 400, "PARAM_ERROR", "out_contract_code"},
		{"credit code missing", call{"", "POST", credit, `{"contract_termination_remark":"r"}`}, 400, "PARAM_ERROR", "out_contract_code"},
		{"credit remark missing", call{"", "POST", credit, `{"out_contract_code":"CR1"}`}, 400, "PARAM_ERROR", "contract_termination_remark"},
		{"credit remark 129 chars", call{"", "POST", credit, `{"out_contract_code":"CR1","contract_termination_remark":"` + strings.Repeat("解", 129) + `"}`}, 400, "PARAM_ERROR", "contract_termination_remark"},
		{"body not JSON", call{"", "POST", credit, `{"out_contract_code":`}, 400, "PARAM_ERROR", "body"},
		{"credit unknown", call{"", "POST", credit, `{"out_contract_code":"NOPE","contract_termination_remark":"r"}`}, 404, "RESOURCE_NOT_EXISTS", ""},
		{"papay partner sub_mchid missing", call{"", "POST", "/v3/papay/sign/partner/contracts/plan-id/12535/out-contract-code/PP1/terminate", `{"contract_termination_remark":"r"}`}, 400, "PARAM_ERROR", "sub_mchid"},
		{"papay partner sub_mchid mismatch", call{"", "POST", "/v3/papay/sign/partner/contracts/plan-id/12535/out-contract-code/PP1/terminate", `{"sub_mchid":"1","contract_termination_remark":"r"}`}, 400, "PARAM_ERROR", "sub_mchid"},
		{"papay partner query sub_mchid missing", call{"", "GET", "/v3/papay/sign/partner/contracts/plan-id/12535/out-contract-code/PP1", ""}, 400, "PARAM_ERROR", "sub_mchid"},
		{"papay plan not a number", call{"", "POST", "/v3/papay/sign/contracts/plan-id/abc/out-contract-code/PD1/terminate", `{"contract_termination_remark":"r"}`}, 400, "PARAM_ERROR", "plan_id"},
		{"papay other plan", call{"", "POST", "/v3/papay/sign/contracts/plan-id/1/out-contract-code/PD1/terminate", `{"contract_termination_remark":"r"}`}, 404, "RESOURCE_NOT_EXISTS", ""},
		{"papay other api", call{"", "POST", "/v3/papay/sign/contracts/plan-id/12535/out-contract-code/PP1/terminate", `{"contract_termination_remark":"r"}`}, 404, "RESOURCE_NOT_EXISTS", ""},
		{"global note 257 chars", call{"", "POST", "/v3/global/papay/contracts/G2/terminate", `{"appid":"wxdirect","termination_note":"` + strings.Repeat("n", 257) + `"}`}, 400, "PARAM_ERROR", "termination_note"},
		{"global appid missing", call{"", "POST", "/v3/global/papay/contracts/G2/terminate", `{"termination_note":"n"}`}, 400, "PARAM_ERROR", "appid"},
		{"global institutional sp_appid missing", call{"", "POST", "/v3/global/papay/contracts/G1/terminate", `{"sub_mchid":"10000097","termination_note":"n"}`}, 400, "PARAM_ERROR", "sp_appid"},
		{"global direct request, institutional contract", call{"", "POST", "/v3/global/papay/contracts/G1/terminate", `{"appid":"wxsp","termination_note":"n"}`}, 400, "PARAM_ERROR", "sub_mchid"},
		{"global appid mismatch", call{"", "GET", "/v3/global/papay/contracts/G2?appid=other", ""}, 400, "PARAM_ERROR", "appid"},
		{"unknown path", call{"", "GET", "/v3/nothing", ""}, 404, "NOT_FOUND", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := do(client, srv.URL, tc.c)
			var e struct {
				Code   string
				Detail struct{ Field string }
			}
			json.Unmarshal([]byte(body), &e)
			if status != tc.wantStatus || e.Code != tc.wantCode || e.Detail.Field != tc.wantField {
				t.Errorf("got %d %s; want %d %s with detail.field %q", status, body, tc.wantStatus, tc.wantCode, tc.wantField)
			}
		})
	}
	for _, c := range seeds {
		key := c.OutContractCode
		if c.API == wxapi.GlobalPapay {
			key = c.ContractID
		}
		if n := sim.Terminations(key); n != 0 {
			t.Errorf("Terminations(%s) = %d after invalid requests; want 0", key, n)
		}
	}
}

func TestRequestSignature(t *testing.T) {
	k := wxsimtest.Keys(t)
	other, err := wxsim.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	sim, srv := start(t, k.SimOptions())
	wrongKey := *k
	wrongKey.MerchantKey = other.MerchantKey
	wrongSerial := *k
	wrongSerial.MerchantCertSerial = other.MerchantCertSerial
	wrongMch := *k
	wrongMch.MchID = "1900000001"
	for _, tc := range []struct {
		name     string
		merchant *wxsim.Keys
	}{
		{"wrong merchant key", &wrongKey},
		{"wrong certificate serial", &wrongSerial},
		{"wrong mchid", &wrongMch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := do(sdk(t, k, tc.merchant, 5*time.Second), srv.URL, terminates[0])
			if status != http.StatusUnauthorized || code(body) != "SIGN_ERROR" {
				t.Errorf("got %d %s; want 401 SIGN_ERROR", status, body)
			}
		})
	}
	t.Run("stale timestamp", func(t *testing.T) {
		c := terminates[0]
		ts := time.Now().Add(-6 * time.Minute).Unix()
		msg := fmt.Sprintf("POST\n%s\n%d\nnonce\n%s\n", c.path, ts, c.body)
		sig, err := utils.SignSHA256WithRSA(msg, k.MerchantKey)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("POST", srv.URL+c.path, strings.NewReader(c.body))
		req.Header.Set("Authorization", fmt.Sprintf(`WECHATPAY2-SHA256-RSA2048 mchid="%s",nonce_str="nonce",timestamp="%d",serial_no="%s",signature="%s"`,
			k.MchID, ts, k.MerchantCertSerial, sig))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized || code(string(body)) != "SIGN_ERROR" {
			t.Errorf("got %d %s; want 401 SIGN_ERROR", res.StatusCode, body)
		}
	})
	if got := sim.Terminations("CR1"); got != 0 {
		t.Errorf("Terminations(CR1) = %d; want 0", got)
	}
	if got := sim.TerminateCalls("CR1"); got != 4 {
		t.Errorf("TerminateCalls(CR1) = %d; want 4 (rejected calls count)", got)
	}
}

func TestFaults(t *testing.T) {
	k := wxsimtest.Keys(t)
	for _, tc := range []struct {
		name           string
		faults         wxsim.Faults
		wantStatus     int    // 0: no HTTP answer
		wantCode       string // in the body
		wantValidation bool   // the SDK rejects the answer's signature
		wantApplied    bool
	}{
		{"500", wxsim.Faults{Rate: 1, Kinds: []wxsim.FaultKind{wxsim.FaultHTTP500}}, 500, "SYSTEM_ERROR", false, false},
		{"500 after apply", wxsim.Faults{Rate: 1, Kinds: []wxsim.FaultKind{wxsim.FaultHTTP500}, AfterApply: true}, 500, "SYSTEM_ERROR", false, true},
		{"503", wxsim.Faults{Rate: 1, Kinds: []wxsim.FaultKind{wxsim.FaultHTTP503}}, 503, "", false, false},
		{"429", wxsim.Faults{Rate: 1, Kinds: []wxsim.FaultKind{wxsim.Fault429}, AfterApply: true}, 429, "RATELIMIT_EXCEED", false, false},
		{"sign error", wxsim.Faults{Rate: 1, Kinds: []wxsim.FaultKind{wxsim.FaultSignError}}, 401, "SIGN_ERROR", false, false},
		{"bad signature", wxsim.Faults{Rate: 1, Kinds: []wxsim.FaultKind{wxsim.FaultBadSignature}}, 0, "", true, true},
		{"drop", wxsim.Faults{Rate: 1, Kinds: []wxsim.FaultKind{wxsim.FaultDrop}}, 0, "", false, false},
		{"drop after apply", wxsim.Faults{Rate: 1, Kinds: []wxsim.FaultKind{wxsim.FaultDrop}, AfterApply: true}, 0, "", false, true},
		{"timeout", wxsim.Faults{Rate: 1, Kinds: []wxsim.FaultKind{wxsim.FaultTimeout}, HangFor: 10 * time.Second}, 0, "", false, false},
		{"timeout after apply", wxsim.Faults{Rate: 1, Kinds: []wxsim.FaultKind{wxsim.FaultTimeout}, AfterApply: true}, 0, "", false, true},
		{"rate 0", wxsim.Faults{Rate: 0, Kinds: []wxsim.FaultKind{wxsim.FaultHTTP500}}, 200, "", false, true},
		{"latency", wxsim.Faults{Latency: 50 * time.Millisecond}, 200, "", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim, srv := start(t, k.SimOptions())
			sim.SetFaults(tc.faults)
			begin := time.Now()
			status, body, err := do(sdk(t, k, k, 300*time.Millisecond), srv.URL, terminates[0])
			if tc.wantValidation {
				if err == nil || !strings.Contains(err.Error(), "verify") {
					t.Errorf("got %v; want a signature verification error", err)
				}
			} else if status != tc.wantStatus || code(body) != tc.wantCode {
				t.Errorf("got %d %q (%v); want %d %q", status, code(body), err, tc.wantStatus, tc.wantCode)
			}
			if tc.wantStatus == 0 && !tc.wantValidation && err == nil {
				t.Error("got an answer; want none")
			}
			if got, want := sim.Terminations("CR1"), map[bool]int{true: 1}[tc.wantApplied]; got != want {
				t.Errorf("Terminations = %d; want %d", got, want)
			}
			if d := time.Since(begin); tc.faults.Latency > 0 && d < tc.faults.Latency {
				t.Errorf("answered in %v; want at least %v", d, tc.faults.Latency)
			}
		})
	}
}

func TestFailFirst(t *testing.T) {
	k := wxsimtest.Keys(t)
	sim, srv := start(t, k.SimOptions())
	sim.SetFaults(wxsim.Faults{
		Kinds:     []wxsim.FaultKind{wxsim.FaultHTTP500, wxsim.Fault429},
		FailFirst: map[string]int{"CR1": 2},
	})
	client := sdk(t, k, k, 5*time.Second)
	var got []int
	for range 3 {
		status, _, _ := do(client, srv.URL, terminates[0])
		got = append(got, status)
	}
	if want := []int{500, 429, 200}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("statuses = %v; want %v", got, want)
	}
	if status, _, _ := do(client, srv.URL, terminates[2]); status != 200 {
		t.Errorf("other contract: got %d; want 200", status)
	}
	if got := sim.TerminateCalls("CR1"); got != 3 {
		t.Errorf("TerminateCalls(CR1) = %d; want 3", got)
	}
}

func TestAutoCreate(t *testing.T) {
	k := wxsimtest.Keys(t)
	opts := k.SimOptions()
	opts.AutoCreate = true
	sim := wxsim.New(opts)
	srv := httptest.NewServer(sim)
	defer srv.Close()
	client := sdk(t, k, k, 5*time.Second)
	c := call{"X9", "POST", "/v3/papay/sign/partner/contracts/plan-id/7/out-contract-code/X9/terminate", `{"sub_mchid":"42","contract_termination_remark":"r"}`}
	if status, body, err := do(client, srv.URL, c); status != 200 || err != nil {
		t.Fatalf("got %d %s %v; want 200", status, body, err)
	}
	got, ok := sim.Contract("X9")
	if !ok || got.State != wxsim.Terminated || got.PlanID != "7" || got.SubMchID != "42" {
		t.Errorf("Contract(X9) = %+v, %v; want a terminated contract of plan 7 for sub_mchid 42", got, ok)
	}
}

// The simulator is used by concurrent benchmarks: hammer one contract and
// check that it is terminated exactly once.
func TestConcurrentTerminate(t *testing.T) {
	k := wxsimtest.Keys(t)
	sim, srv := start(t, k.SimOptions())
	client := sdk(t, k, k, 10*time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for range 32 {
		wg.Go(func() {
			status, _, _ := do(client, srv.URL, terminates[1])
			mu.Lock()
			statuses[status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if statuses[200] != 1 || statuses[400] != 31 {
		t.Errorf("statuses = %v; want one 200 and 31 400s", statuses)
	}
	if got := sim.Terminations("PP1"); got != 1 {
		t.Errorf("Terminations(PP1) = %d; want 1", got)
	}
}

func BenchmarkTerminate(b *testing.B) {
	_, client := wxsimtest.AutoCreating(b, 0)
	var n sync.Mutex
	i := 0
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n.Lock()
			i++
			code := fmt.Sprintf("B%d", i)
			n.Unlock()
			if _, err := client.Terminate(context.Background(), wxapi.Request{API: wxapi.CreditRepayment, OutContractCode: code, Remark: "r"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
