package event

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// The CloudEvents Kafka protocol binding, binary content mode: every context
// attribute travels as a Kafka header named "ce_" + the attribute's name, and
// datacontenttype as the header "content-type"; the record value is the event
// data unchanged. Source: github.com/cloudevents/spec, cloudevents/bindings/
// kafka-protocol-binding.md, section 3.2 (binary content mode).
const (
	CEHeaderSpecVersion = "ce_specversion"
	CEHeaderID          = "ce_id"
	CEHeaderType        = "ce_type"
	CEHeaderSource      = "ce_source"
	CEHeaderTime        = "ce_time"
	CEHeaderSubject     = "ce_subject"
	CEHeaderContentType = "content-type"

	// CESpecVersion is the CloudEvents version the headers follow.
	CESpecVersion = "1.0"
	// CEContentType is the media type of a result's body.
	CEContentType = "application/json"
	// CEDefaultSource names this producer when the deployment names none: a
	// URI-reference, as the spec requires of source.
	CEDefaultSource = "/wxterm/contract-terminator"
)

// CloudEvents types of the result events, reverse-DNS prefixed as the spec
// recommends and versioned with the schema.
const (
	CETypeTerminated = "com.github.wxterm.contract-terminated.v1"
	CETypeFailed     = "com.github.wxterm.terminate-failed.v1"
)

// ceTypes maps a result's event_type to its CloudEvents type.
var ceTypes = map[string]string{
	TypeTerminated: CETypeTerminated,
	TypeFailed:     CETypeFailed,
}

// Header is one Kafka record header; this package does not import a Kafka
// client, so callers convert (kafka.Header{Key: h.Key, Value: []byte(h.Value)}).
type Header struct {
	Key, Value string
}

// CheckCESource reports whether source can be a CloudEvents source: a
// non-empty URI-reference (CloudEvents 1.0 "source"; RFC 3986 section 4.1),
// so only RFC 3986's unreserved and reserved characters and valid
// percent-encodings, no spaces or control characters.
func CheckCESource(source string) error {
	if source == "" {
		return errors.New("empty cloudevents source")
	}
	if i := strings.IndexFunc(source, func(r rune) bool { return !uriChar(r) }); i >= 0 {
		r, _ := utf8.DecodeRuneInString(source[i:])
		return fmt.Errorf("cloudevents source %q is not a URI-reference: character %q at %d", source, r, i)
	}
	if _, err := url.Parse(source); err != nil {
		return fmt.Errorf("cloudevents source %q is not a URI-reference: %w", source, err)
	}
	return nil
}

// uriChar reports whether r may appear in a URI-reference (RFC 3986 section
// 2: unreserved, reserved, and % of a percent-encoding).
func uriChar(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return true
	}
	return strings.ContainsRune("-._~:/?#[]@!$&'()*+,;=%", r)
}

// CloudEventsHeaders returns the binary-mode CloudEvents headers of result r
// published by source (a URI-reference; empty means CEDefaultSource). The
// record's value stays r's JSON, unchanged. It fails only for a result that
// could never be a valid event: no event_id, an unknown event_type, a zero
// occurred_at or a source that is not a URI-reference.
func CloudEventsHeaders(r Result, source string) ([]Header, error) {
	if source == "" {
		source = CEDefaultSource
	}
	typ, ok := ceTypes[r.EventType]
	switch {
	case r.EventID == "":
		return nil, errors.New("event: cloudevents headers: empty event_id")
	case !ok:
		return nil, fmt.Errorf("event: cloudevents headers: unknown event_type %q", r.EventType)
	case r.OccurredAt.IsZero():
		return nil, errors.New("event: cloudevents headers: zero occurred_at")
	}
	if err := CheckCESource(source); err != nil {
		return nil, fmt.Errorf("event: cloudevents headers: %w", err)
	}
	h := []Header{
		{CEHeaderSpecVersion, CESpecVersion},
		{CEHeaderID, r.EventID},
		{CEHeaderType, typ},
		{CEHeaderSource, source},
		// RFC 3339, as the spec's Timestamp type requires.
		{CEHeaderTime, r.OccurredAt.UTC().Format(time.RFC3339Nano)},
		{CEHeaderContentType, CEContentType},
	}
	if r.OutContractCode != "" {
		h = append(h, Header{CEHeaderSubject, r.OutContractCode})
	}
	return h, nil
}
