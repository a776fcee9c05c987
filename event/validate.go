package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/wxterm/wxterm/schemas"
)

// MaxIntentBytes bounds an intent's encoded size; anything larger is invalid
// before it is parsed, so a huge message cannot cost more than a small one.
const MaxIntentBytes = 16 << 10

// InvalidError says why bytes are not a valid intent. Its text is safe to
// publish: it quotes schema locations, never the input.
type InvalidError struct {
	Detail string
}

func (e *InvalidError) Error() string { return "invalid intent: " + e.Detail }

var (
	compileOnce sync.Once
	intentSch   *jsonschema.Schema
	resultSch   *jsonschema.Schema
	compileErr  error
	printer     = message.NewPrinter(language.English)
)

func compiled() (*jsonschema.Schema, *jsonschema.Schema, error) {
	compileOnce.Do(func() {
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		load := func(name string) (*jsonschema.Schema, error) {
			b, err := fs.ReadFile(schemas.FS, name)
			if err != nil {
				return nil, err
			}
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if err := c.AddResource(name, doc); err != nil {
				return nil, err
			}
			return c.Compile(name)
		}
		if intentSch, compileErr = load(schemas.IntentV1); compileErr != nil {
			return
		}
		resultSch, compileErr = load(schemas.ResultV1)
	})
	return intentSch, resultSch, compileErr
}

// DecodeIntent validates b against schemas/intent.v1.json and decodes it.
// A validation failure is an *InvalidError; any other error means the
// embedded schema itself is broken.
func DecodeIntent(b []byte) (Intent, error) {
	var in Intent
	if err := validate(b, true); err != nil {
		return in, err
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return in, &InvalidError{Detail: "decode: " + err.Error()}
	}
	return in, nil
}

// ValidateIntent checks an intent built in Go as DecodeIntent would check it
// on the wire; the producer calls it before sending.
func ValidateIntent(in Intent) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return validate(b, true)
}

// ValidateResult checks an encoded result event against
// schemas/result.v1.json.
func ValidateResult(b []byte) error { return validate(b, false) }

func validate(b []byte, intent bool) error {
	isch, rsch, err := compiled()
	if err != nil {
		return fmt.Errorf("event: schemas: %w", err)
	}
	sch := rsch
	if intent {
		sch = isch
		if len(b) > MaxIntentBytes {
			return &InvalidError{Detail: fmt.Sprintf("%d bytes exceeds the %d-byte limit", len(b), MaxIntentBytes)}
		}
	}
	if detail := schemaDetail(sch, b); detail != "" {
		return &InvalidError{Detail: detail}
	}
	return nil
}

// schemaDetail says why b does not satisfy sch, or "" when it does.
func schemaDetail(sch *jsonschema.Schema, b []byte) string {
	if !utf8.Valid(b) {
		return "not valid UTF-8"
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return "not JSON: " + jsonErrText(err)
	}
	if err := sch.Validate(doc); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			return summarize(ve)
		}
		return err.Error()
	}
	return ""
}

// jsonErrText keeps a syntax error's position but not the offending input.
func jsonErrText(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("type error at byte %d", te.Offset)
	}
	return "malformed"
}

// summarize lists the leaf failures as "/field: message", at most four.
func summarize(ve *jsonschema.ValidationError) string {
	var leaves []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			leaves = append(leaves, "/"+strings.Join(e.InstanceLocation, "/")+": "+e.ErrorKind.LocalizedString(printer))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	if len(leaves) > 4 {
		leaves = append(leaves[:4], fmt.Sprintf("and %d more", len(leaves)-4))
	}
	return strings.Join(leaves, "; ")
}

// validRequestID and validCode check the schema's patterns for request_id
// (^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$) and out_contract_code
// (^[A-Za-z0-9]{1,64}$) with byte loops: they run on every message a replay
// peeks at.
func validRequestID[T string | []byte](s T) bool {
	if len(s) == 0 || len(s) > 128 || !alnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '.' && c != '_' && c != ':' && c != '-' {
			return false
		}
	}
	return true
}

func validCode[T string | []byte](s T) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !alnum(s[i]) {
			return false
		}
	}
	return true
}

func alnum(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }

// Identify extracts what an invalid intent still says about itself: the
// request id and contract code, if both are present and well formed, so the
// failure can be answered with a terminate-failed event rather than a dead
// letter. key is the Kafka message key, used when the body has no code.
func Identify(b []byte, key []byte) (requestID, outContractCode string, ok bool) {
	if len(b) > MaxIntentBytes || !utf8.Valid(b) {
		return "", "", false
	}
	var probe struct {
		RequestID       any `json:"request_id"`
		OutContractCode any `json:"out_contract_code"`
	}
	if json.Unmarshal(b, &probe) != nil {
		return "", "", false
	}
	requestID, _ = probe.RequestID.(string)
	outContractCode, _ = probe.OutContractCode.(string)
	if outContractCode == "" {
		outContractCode = string(key)
	}
	if !validRequestID(requestID) || !validCode(outContractCode) {
		return "", "", false
	}
	return requestID, outContractCode, true
}

// Peek reads just the request id and contract code of an encoded intent,
// without validating the rest against the schema: far cheaper than
// DecodeIntent, for paths that only need to look an intent up (a replay over
// intents already answered). It walks the bytes once, checking them as
// encoding/json.Valid would (validValue). ok is false unless the bytes are a
// JSON object whose top level holds each of the two once, as strings in
// their schema's format, and key, if set, matches the code. Anything unusual
// (escapes in those values, a repeated key, malformed JSON) answers !ok, and
// the caller takes the full path.
func Peek(b, key []byte) (requestID, outContractCode string, ok bool) {
	if len(b) > MaxIntentBytes {
		return "", "", false
	}
	var req, code []byte
	var seenReq, seenCode bool
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return "", "", false
	}
	i = skipWS(b, i+1)
	for i < len(b) && b[i] != '}' {
		j := validString(b, i)
		if j < 0 {
			return "", "", false
		}
		k := b[i+1 : j-1]
		i = skipWS(b, j)
		if i >= len(b) || b[i] != ':' {
			return "", "", false
		}
		i = skipWS(b, i+1)
		target := (*[]byte)(nil)
		switch {
		case bytes.EqualFold(k, []byte("request_id")):
			// encoding/json matches keys without case: a variant would be
			// another reading of the same field.
			if seenReq || string(k) != "request_id" {
				return "", "", false
			}
			seenReq, target = true, &req
		case bytes.EqualFold(k, []byte("out_contract_code")):
			if seenCode || string(k) != "out_contract_code" {
				return "", "", false
			}
			seenCode, target = true, &code
		case bytes.IndexByte(k, '\\') >= 0:
			return "", "", false // an escaped key could spell either name
		}
		if target != nil {
			j = validString(b, i)
			if j < 0 || bytes.IndexByte(b[i+1:j-1], '\\') >= 0 {
				return "", "", false
			}
			*target, i = b[i+1:j-1], j
		} else if i = validValue(b, i, 1); i < 0 {
			return "", "", false
		}
		i = skipWS(b, i)
		if i < len(b) && b[i] == ',' {
			if i = skipWS(b, i+1); i < len(b) && b[i] == '}' {
				return "", "", false // a trailing comma
			}
		} else if i >= len(b) || b[i] != '}' {
			return "", "", false
		}
	}
	if i >= len(b) || skipWS(b, i+1) != len(b) || !seenReq || !seenCode || !validRequestID(req) || !validCode(code) ||
		(len(key) > 0 && string(key) != string(code)) {
		return "", "", false
	}
	return string(req), string(code), true
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
