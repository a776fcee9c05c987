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

	"github.com/wxterm/wxterm/internal/intentid"
	"github.com/wxterm/wxterm/schemas"
)

// MaxIntentBytes bounds an intent's encoded size; anything larger is invalid
// before it is parsed, so a huge message cannot cost more than a small one.
const MaxIntentBytes = intentid.MaxIntentBytes

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
	if !intentid.ValidRequestID(requestID) || !intentid.ValidCode(outContractCode) {
		return "", "", false
	}
	return requestID, outContractCode, true
}
