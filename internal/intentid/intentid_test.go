package intentid

import (
	"encoding/json"
	"io/fs"
	"regexp"
	"strings"
	"testing"

	"github.com/wxterm/wxterm/schemas"
)

// The schema's patterns, to check the byte loops against.
var (
	requestIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	contractRe  = regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)
)

// FuzzIDPatterns: the byte loops accept exactly what the patterns accept.
func FuzzIDPatterns(f *testing.F) {
	for _, s := range []string{"r1", "a-b.c:d_e", "-x", "", "ABC123", "合同", strings.Repeat("a", 129)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidRequestID(s) != requestIDRe.MatchString(s) || ValidCode(s) != contractRe.MatchString(s) {
			t.Fatalf("%q: loops say %v, %v; patterns say %v, %v", s, ValidRequestID(s), ValidCode(s), requestIDRe.MatchString(s), contractRe.MatchString(s))
		}
	})
}

// peekSlow is Peek's meaning spelled with encoding/json.
func peekSlow(b, key []byte) (string, string, bool) {
	var ids struct {
		RequestID       string `json:"request_id"`
		OutContractCode string `json:"out_contract_code"`
	}
	if len(b) > MaxIntentBytes || json.Unmarshal(b, &ids) != nil {
		return "", "", false
	}
	if !requestIDRe.MatchString(ids.RequestID) || !contractRe.MatchString(ids.OutContractCode) ||
		(len(key) > 0 && string(key) != ids.OutContractCode) {
		return "", "", false
	}
	return ids.RequestID, ids.OutContractCode, true
}

// FuzzPeek: whenever the fast scanner answers, encoding/json agrees.
func FuzzPeek(f *testing.F) {
	names, _ := fs.Glob(schemas.FS, "examples/intent-*.json")
	for _, name := range names {
		b, _ := fs.ReadFile(schemas.FS, name)
		f.Add(b, []byte(""))
	}
	f.Add([]byte(`{"request_id":"a","request_id":"b","out_contract_code":"C"}`), []byte(""))
	f.Add([]byte(`{"x":{"request_id":"n"},"request_id":"r","out_contract_code":"C","y":[1,"]",{}]}`), []byte("C"))
	f.Fuzz(func(t *testing.T, b, key []byte) {
		req, code, ok := Peek(b, key)
		if !ok {
			return
		}
		sreq, scode, sok := peekSlow(b, key)
		if !sok || sreq != req || scode != code {
			t.Fatalf("Peek(%q) = %q, %q; encoding/json says %q, %q, %v", b, req, code, sreq, scode, sok)
		}
	})
}

// validJSON is validValue over a whole document, for comparison with
// encoding/json.Valid.
func validJSON(b []byte) bool {
	i := validValue(b, skipWS(b, 0), 0)
	return i >= 0 && skipWS(b, i) == len(b)
}

// FuzzValidJSON: validValue, which Peek uses, agrees with encoding/json.
func FuzzValidJSON(f *testing.F) {
	names, _ := fs.Glob(schemas.FS, "examples/*.json")
	for _, name := range names {
		b, _ := fs.ReadFile(schemas.FS, name)
		f.Add(b)
	}
	for _, s := range []string{`{}`, `[]`, ` 0 `, `-0.5e+10`, `01`, `1.`, `.5`, `-`, `1e`, `"\u12"`, `"\u12g4"`, `"\x"`, `"a	b"`,
		`[1,]`, `{"a":1,}`, `{"a" 1}`, `{"a":1}}`, `[[[]]]`, `tru`, `nulll`, `"\ud800"`, "\"\xff\"", `{"a":[1,{"b":null}],"c":"\""}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v; json.Valid says %v", b, got, want)
		}
	})
}

func TestValidJSONDepth(t *testing.T) {
	for _, n := range []int{maxJSONDepth, maxJSONDepth + 1} {
		b := []byte(strings.Repeat("[", n) + strings.Repeat("]", n))
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Errorf("depth %d: validJSON = %v; json.Valid says %v", n, got, want)
		}
	}
}

func TestPeek(t *testing.T) {
	tests := []struct {
		b, key    string
		req, code string
		ok        bool
	}{
		{`{"schema_version":1,"request_id":"r1","out_contract_code":"ABC"}`, "", "r1", "ABC", true},
		{` { "x" : {"request_id":"n","a":[1,{"b":"}"}]} , "request_id" : "r1" , "out_contract_code":"ABC" } `, "ABC", "r1", "ABC", true},
		{`{"request_id":"r1","out_contract_code":"ABC"}`, "XYZ", "", "", false},
		{`{"request_id":"r1","request_id":"r2","out_contract_code":"ABC"}`, "", "", "", false},
		{`{"request_id":"r\u0031","out_contract_code":"ABC"}`, "", "", "", false},
		{`{"request_id":7,"out_contract_code":"ABC"}`, "", "", "", false},
		{`{"request_id":"r1"}`, "", "", "", false},
		{`{"request_id":"r1","out_contract_code":"A-B"}`, "", "", "", false},
		{`["request_id","r1"]`, "", "", "", false},
		{`{"request_id":"r1","out_contract_code":"ABC"`, "", "", "", false},
		{`{"request_id":"notification:n1","out_contract_code":"ABC"}`, "", "", "", false}, // reserved: the full path refuses it
		{`{"request_id":"notification-n1","out_contract_code":"ABC"}`, "", "notification-n1", "ABC", true},
	}
	for _, tt := range tests {
		req, code, ok := Peek([]byte(tt.b), []byte(tt.key))
		if ok != tt.ok || req != tt.req || code != tt.code {
			t.Errorf("Peek(%s) = %q, %q, %v; want %q, %q, %v", tt.b, req, code, ok, tt.req, tt.code, tt.ok)
		}
	}
}

func BenchmarkPeek(b *testing.B) {
	msg, _ := fs.ReadFile(schemas.FS, "examples/intent-papay_partner.json")
	for b.Loop() {
		if _, _, ok := Peek(msg, nil); !ok {
			b.Fatal("not ok")
		}
	}
}
