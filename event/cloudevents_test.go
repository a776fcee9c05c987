package event

import (
	"encoding/json"
	"io/fs"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding/spec"
	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/wxterm/wxterm/schemas"
)

// ceAttrName is the spec's rule for context attribute names: lowercase
// letters and digits only (CloudEvents 1.0, "Attribute Naming Convention").
var ceAttrName = regexp.MustCompile(`^[a-z0-9]+$`)

// readBinary decodes binary-mode Kafka headers as the CloudEvents Go SDK's
// Kafka bindings do (protocol/kafka_sarama and kafka_confluent, ReadBinary):
// "ce_"-prefixed headers are attributes or extensions, "content-type" is
// datacontenttype; each attribute's Set converts and checks its type.
func readBinary(t *testing.T, headers []Header) cloudevents.Event {
	t.Helper()
	versions := spec.WithPrefix("ce_")
	var version spec.Version
	for _, h := range headers {
		if h.Key == versions.PrefixedSpecVersionName() {
			version = versions.Version(h.Value)
		}
	}
	if version == nil {
		t.Fatalf("no supported %s header in %v", versions.PrefixedSpecVersionName(), headers)
	}
	ev := cloudevents.New(version.String())
	seen := map[string]bool{}
	for _, h := range headers {
		if seen[h.Key] {
			t.Errorf("header %q twice", h.Key)
		}
		seen[h.Key] = true
		switch {
		case h.Key == CEHeaderContentType:
			if err := version.AttributeFromKind(spec.DataContentType).Set(ev.Context, h.Value); err != nil {
				t.Errorf("content-type %q: %v", h.Value, err)
			}
		case strings.HasPrefix(h.Key, version.Prefix()):
			name := strings.TrimPrefix(h.Key, version.Prefix())
			if !ceAttrName.MatchString(name) {
				t.Errorf("header %q: attribute name %q breaks the naming rule", h.Key, name)
			}
			attr := version.Attribute(h.Key)
			if attr == nil {
				t.Errorf("header %q is not a CloudEvents 1.0 context attribute", h.Key)
				continue
			}
			if err := attr.Set(ev.Context, h.Value); err != nil {
				t.Errorf("header %s=%q: %v", h.Key, h.Value, err)
			}
		default:
			t.Errorf("header %q is neither ce_-prefixed nor content-type", h.Key)
		}
	}
	if err := ev.Validate(); err != nil {
		t.Errorf("event from %v is not valid: %v", headers, err)
	}
	return ev
}

func TestCloudEventsHeadersReadByTheSDK(t *testing.T) {
	names, err := fs.Glob(schemas.FS, "examples/result-*.json")
	if err != nil || len(names) == 0 {
		t.Fatalf("no result examples: %v", err)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			b, err := fs.ReadFile(schemas.FS, name)
			if err != nil {
				t.Fatal(err)
			}
			var r Result
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			h, err := CloudEventsHeaders(r, "")
			if err != nil {
				t.Fatal(err)
			}
			ev := readBinary(t, h)
			for _, c := range []struct{ attr, got, want string }{
				{"specversion", ev.SpecVersion(), "1.0"},
				{"id", ev.ID(), r.EventID},
				{"type", ev.Type(), ceTypes[r.EventType]},
				{"source", ev.Source(), CEDefaultSource},
				{"subject", ev.Subject(), r.OutContractCode},
				{"datacontenttype", ev.DataContentType(), "application/json"},
			} {
				if c.got != c.want {
					t.Errorf("%s: got %q; want %q", c.attr, c.got, c.want)
				}
			}
			if !ev.Time().Equal(r.OccurredAt) {
				t.Errorf("time: got %v; want %v", ev.Time(), r.OccurredAt)
			}
			// The time header is RFC 3339 itself, not only something the SDK parses.
			for _, x := range h {
				if x.Key == CEHeaderTime {
					if _, err := time.Parse(time.RFC3339, x.Value); err != nil {
						t.Errorf("ce_time %q is not RFC 3339: %v", x.Value, err)
					}
				}
			}
		})
	}
}

func TestCloudEventsHeadersCarryTheConfiguredSource(t *testing.T) {
	r := Failed("r1", "c1", PapayDirect, "", Source{}, Failure{Reason: ReasonRejected}, 1, time.Date(2026, 1, 2, 3, 4, 5, 600, time.FixedZone("CST", 8*3600)))
	h, err := CloudEventsHeaders(r, "urn:wxterm:prod-sh")
	if err != nil {
		t.Fatal(err)
	}
	ev := readBinary(t, h)
	if ev.Source() != "urn:wxterm:prod-sh" || ev.Type() != CETypeFailed {
		t.Errorf("got source %q type %q; want urn:wxterm:prod-sh %s", ev.Source(), ev.Type(), CETypeFailed)
	}
	if got, want := ev.Time(), r.OccurredAt; !got.Equal(want) {
		t.Errorf("time: got %v; want %v (nanoseconds kept)", got, want)
	}
}

func TestCloudEventsHeadersCoverEveryEventType(t *testing.T) {
	for _, typ := range []string{TypeTerminated, TypeFailed} {
		if ceTypes[typ] == "" {
			t.Errorf("event type %q has no CloudEvents type", typ)
		}
	}
}

func TestCheckCESource(t *testing.T) {
	for _, ok := range []string{CEDefaultSource, "urn:wxterm:prod-sh", "https://wxterm.example/prod?x=1#f", "/relative/ref", "a%20b"} {
		if err := CheckCESource(ok); err != nil {
			t.Errorf("CheckCESource(%q): got %v; want nil", ok, err)
		}
	}
	for _, bad := range []string{"", " ", "urn:a b", "urn:\t", "x\n", "%", "http://[::1"} {
		if err := CheckCESource(bad); err == nil {
			t.Errorf("CheckCESource(%q): got nil; want an error", bad)
		}
	}
}

func TestCloudEventsHeadersRefuseInvalidEvents(t *testing.T) {
	good := Terminated(Intent{RequestID: "r1", OutContractCode: "c1"}, Source{}, Contract{}, 1, false, time.Now())
	for name, c := range map[string]struct {
		mutate func(*Result)
		source string
	}{
		"no event id":  {func(r *Result) { r.EventID = "" }, ""},
		"unknown type": {func(r *Result) { r.EventType = "contract-paused" }, ""},
		"no time":      {func(r *Result) { r.OccurredAt = time.Time{} }, ""},
		"bad source":   {func(*Result) {}, "http://[::1"},
		// Review of issue 15: url.Parse alone took these as URI-references.
		"space in source":        {func(*Result) {}, "urn:wxterm:prod sh"},
		"control char in source": {func(*Result) {}, "urn:wxterm:\x7f"},
		"non-ASCII in source":    {func(*Result) {}, "urn:wxterm:上海"},
		"bad escape in source":   {func(*Result) {}, "/a%zz"},
	} {
		r := good
		c.mutate(&r)
		if h, err := CloudEventsHeaders(r, c.source); err == nil {
			t.Errorf("%s: got headers %v; want an error", name, h)
		}
	}
}
