package event

import (
	"encoding/json"
	"errors"
	"io/fs"
	"regexp"
	"testing"

	"github.com/wxterm/wxterm/schemas"
)

// FuzzDecodeIntent: no input makes decoding panic, and whatever it accepts
// is an intent the schema accepts again after a round trip, with a
// contract code usable as the dedupe key.
func FuzzDecodeIntent(f *testing.F) {
	names, _ := fs.Glob(schemas.FS, "examples/intent-*.json")
	for _, name := range names {
		b, _ := fs.ReadFile(schemas.FS, name)
		f.Add(b, []byte("key"))
	}
	f.Fuzz(func(t *testing.T, b, key []byte) {
		in, err := DecodeIntent(b)
		req, code, ok := Identify(b, key)
		if err != nil {
			var ie *InvalidError
			if !errors.As(err, &ie) || ie.Detail == "" {
				t.Fatalf("got %T %v; want *InvalidError with a detail", err, err)
			}
			if ok && (!requestIDRe.MatchString(req) || !contractRe.MatchString(code)) {
				t.Fatalf("Identify returned malformed ids %q, %q", req, code)
			}
			return
		}
		if !contractRe.MatchString(in.OutContractCode) || in.RequestID == "" {
			t.Fatalf("accepted an intent with code %q, request %q", in.OutContractCode, in.RequestID)
		}
		if err := ValidateIntent(in); err != nil {
			t.Fatalf("accepted %s but its round trip fails: %v", b, err)
		}
		if !ok || req != in.RequestID || code != in.OutContractCode {
			t.Fatalf("Identify(%s) = %q, %q, %v; want the decoded ids", b, req, code, ok)
		}
		if _, err := json.Marshal(in); err != nil {
			t.Fatal(err)
		}
	})
}

// The schema's patterns, to check the byte loops against.
var (
	requestIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	contractRe  = regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)
)
