package event

import (
	"encoding/json"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/wxterm/wxterm/schemas"
)

func TestExamplesValidate(t *testing.T) {
	names, err := fs.Glob(schemas.FS, "examples/*.json")
	if err != nil || len(names) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, name := range names {
		b, err := fs.ReadFile(schemas.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasPrefix(name, "examples/intent-"):
			in, err := DecodeIntent(b)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if !strings.Contains(name, string(in.API)) {
				t.Errorf("%s: api %q does not match the file name", name, in.API)
			}
		case strings.HasPrefix(name, "examples/result-"):
			if err := ValidateResult(b); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		case strings.HasPrefix(name, "examples/notification-"):
			if _, err := DecodeNotification(b); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		default:
			t.Errorf("%s: unknown example kind", name)
		}
	}
}

func valid() map[string]any {
	return map[string]any{
		"schema_version": 1, "request_id": "r1", "requested_at": "2026-11-22T10:00:00Z", "source": "t",
		"api": "papay_partner", "out_contract_code": "abc123", "plan_id": "12535", "sub_mchid": "1900000109", "remark": "bye",
	}
}

func TestDecodeIntentRejects(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(m map[string]any)
		want   string // substring of the detail
	}{
		{"missing request_id", func(m map[string]any) { delete(m, "request_id") }, "request_id"},
		{"wrong schema_version", func(m map[string]any) { m["schema_version"] = 2 }, "/schema_version"},
		{"unknown api", func(m map[string]any) { m["api"] = "papay_magic" }, "/api"},
		{"code with a dash", func(m map[string]any) { m["out_contract_code"] = "abc-123" }, "/out_contract_code"},
		{"code too long", func(m map[string]any) { m["out_contract_code"] = strings.Repeat("a", 65) }, "/out_contract_code"},
		{"remark 129 chars", func(m map[string]any) { m["remark"] = strings.Repeat("解", 129) }, "/remark"},
		{"empty remark", func(m map[string]any) { m["remark"] = "" }, "/remark"},
		{"partner without sub_mchid", func(m map[string]any) { delete(m, "sub_mchid") }, "sub_mchid"},
		{"direct without plan_id", func(m map[string]any) { m["api"] = "papay_direct"; delete(m, "plan_id") }, "plan_id"},
		{"global without contract_id", func(m map[string]any) { m["api"] = "global_papay"; m["appid"] = "wx1" }, "contract_id"},
		{"global with both modes", func(m map[string]any) {
			m["api"] = "global_papay"
			m["contract_id"] = "1"
			m["appid"] = "wx1"
			m["sp_appid"] = "wx2"
		}, "/sp_appid"},
		{"bad timestamp", func(m map[string]any) { m["requested_at"] = "yesterday" }, "/requested_at"},
		{"wrong type", func(m map[string]any) { m["request_id"] = 7 }, "/request_id"},
		{"unknown field", func(m map[string]any) { m["amount"] = 1 }, "amount"},
		{"mchid not digits", func(m map[string]any) { m["mchid"] = "19x" }, "/mchid"},
		// A request id of the notifications' form would share a notification's
		// request id, its stored outcome and its event_id.
		{"request_id reserved for notifications", func(m map[string]any) { m["request_id"] = "notification:evt-1" }, "/request_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := valid()
			tt.mutate(m)
			b, _ := json.Marshal(m)
			_, err := DecodeIntent(b)
			var ie *InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("got %v; want *InvalidError", err)
			}
			if !strings.Contains(ie.Detail, tt.want) {
				t.Errorf("got detail %q; want it to mention %q", ie.Detail, tt.want)
			}
		})
	}
}

func TestDecodeIntentRejectsBytes(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":     nil,
		"not json":  []byte("hello"),
		"array":     []byte("[1,2]"),
		"bad utf8":  []byte("{\"request_id\":\"\xff\"}"),
		"oversized": []byte(`{"remark":"` + strings.Repeat("x", MaxIntentBytes) + `"}`),
		"truncated": []byte(`{"schema_version":1,"request_id":"r`),
	} {
		if _, err := DecodeIntent(b); err == nil {
			t.Errorf("%s: got nil error; want invalid", name)
		}
	}
}

func TestDecodeIntentAccepts(t *testing.T) {
	b, _ := json.Marshal(valid())
	in, err := DecodeIntent(b)
	if err != nil {
		t.Fatal(err)
	}
	if in.API != PapayPartner || in.SubMchID != "1900000109" || in.RequestedAt.IsZero() {
		t.Errorf("got %+v", in)
	}
	if err := ValidateIntent(in); err != nil {
		t.Errorf("round trip: %v", err)
	}
}

func TestIdentify(t *testing.T) {
	tests := []struct {
		body, key string
		wantReq   string
		wantCode  string
		wantOK    bool
	}{
		{`{"request_id":"r1","out_contract_code":"abc","api":"nope"}`, "", "r1", "abc", true},
		{`{"request_id":"r1","api":"nope"}`, "abc", "r1", "abc", true},
		{`{"request_id":"r1","out_contract_code":"a-b"}`, "", "", "", false},
		{`{"out_contract_code":"abc"}`, "", "", "", false},
		{`{"request_id":5,"out_contract_code":"abc"}`, "", "", "", false},
		{`garbage`, "abc", "", "", false},
	}
	for _, tt := range tests {
		req, code, ok := Identify([]byte(tt.body), []byte(tt.key))
		if ok != tt.wantOK || (ok && (req != tt.wantReq || code != tt.wantCode)) {
			t.Errorf("Identify(%s, %q) = %q, %q, %v; want %q, %q, %v", tt.body, tt.key, req, code, ok, tt.wantReq, tt.wantCode, tt.wantOK)
		}
	}
}

func TestResultsMatchSchema(t *testing.T) {
	in := Intent{RequestID: "r1", OutContractCode: "abc", API: PapayDirect}
	src := Source{Topic: "t", Partition: 1, Offset: 2}
	now := time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)
	for _, r := range []Result{
		Terminated(in, src, Contract{ContractID: "c1", ContractState: "CONTRACT_STATE_TERMINATED"}, 1, false, now),
		Failed("r1", "abc", PapayDirect, "", src, Failure{Reason: ReasonRejected, ErrorCode: "PARAM_ERROR", HTTPStatus: 400}, 1, now),
		Failed("r1", "abc", "", "", src, Failure{Reason: ReasonInvalidRequest, Detail: "/api: bad"}, 0, now),
	} {
		b, _ := json.Marshal(r)
		if err := ValidateResult(b); err != nil {
			t.Errorf("%s: %v", b, err)
		}
	}
}

func TestEventIDStable(t *testing.T) {
	a, b := EventID("r1", "ABC123", TypeTerminated), EventID("r1", "ABC123", TypeTerminated)
	if a != b || len(a) != 32 {
		t.Errorf("got %q and %q; want equal 32-hex ids", a, b)
	}
	// Downstream consumers dedupe on it across versions: the derivation is
	// part of the contract (sha256 of type, code and request id, NUL
	// separated, first 16 bytes in hex).
	if want := "7ffed1623c5bd5273bdba5e256ade622"; a != want {
		t.Errorf("EventID(r1, ABC123, %s): got %s; want %s", TypeTerminated, a, want)
	}
	if EventID("r1", "ABC123", TypeFailed) == a || EventID("r2", "ABC123", TypeTerminated) == a {
		t.Error("different outcomes share an id")
	}
	// Bug (issue 12 item 7): the id covered the request and the outcome
	// only, so a request id reused for two contracts gave their two
	// terminations one id, and downstream dropped one as a duplicate.
	if EventID("r1", "XYZ789", TypeTerminated) == a {
		t.Error("the same request id and outcome on two contracts share an id")
	}
	// The fields are separated, not concatenated.
	if EventID("r1", "AB", TypeTerminated) == EventID("Br1", "A", TypeTerminated) {
		t.Error("ids of shifted fields collide")
	}
}

func TestConstructorsUseTheContractsEventID(t *testing.T) {
	in := Intent{RequestID: "r1", OutContractCode: "ABC123", API: PapayDirect}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if got, want := Terminated(in, Source{}, Contract{}, 1, false, at).EventID, EventID("r1", "ABC123", TypeTerminated); got != want {
		t.Errorf("Terminated: event_id %s; want %s", got, want)
	}
	if got, want := Failed("r1", "ABC123", PapayDirect, "", Source{}, Failure{Reason: ReasonRejected}, 1, at).EventID, EventID("r1", "ABC123", TypeFailed); got != want {
		t.Errorf("Failed: event_id %s; want %s", got, want)
	}
}
