package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/testenv"
)

// fixture is a dead-letter topic and a request topic of two partitions each.
type fixture struct {
	brokers       []string
	dlq, requests string
	cl            *kafka.Client
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{brokers: testenv.Kafka(t), dlq: testenv.Topic(t, "dlq"), requests: testenv.Topic(t, "requests")}
	testenv.CreateTopics(t, f.brokers, 2, f.dlq, f.requests)
	f.cl = &kafka.Client{Addr: kafka.TCP(f.brokers...), Timeout: 10 * time.Second}
	return f
}

// deadLetter is what the consumer's reject writes, at a chosen time.
type dlSpec struct {
	partition int
	key, err  string
	at        time.Time
}

// deadLetters writes specs to the dead-letter topic as the consumer would:
// the intent's value and headers plus the dlq_* headers.
func (f *fixture) deadLetters(t *testing.T, specs ...dlSpec) {
	t.Helper()
	for i, s := range specs {
		rec := func() kafka.Record {
			return kafka.Record{
				Time: s.at, Key: kafka.NewBytes([]byte(s.key)), Value: kafka.NewBytes([]byte(fmt.Sprintf(`{"broken":%d`, i))),
				Headers: []kafka.Header{
					{Key: "traceparent", Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")},
					{Key: event.HeaderDLQError, Value: []byte(s.err)},
					{Key: event.HeaderDLQSourceTopic, Value: []byte(f.requests)},
					{Key: event.HeaderDLQSourcePartition, Value: []byte(strconv.Itoa(1 - s.partition))},
					{Key: event.HeaderDLQSourceOffset, Value: []byte(strconv.Itoa(100 + i))},
				},
			}
		}
		// retry: a new topic's leader may be unknown to the client for a moment.
		err := retry(context.Background(), func() error {
			res, err := f.cl.Produce(context.Background(), &kafka.ProduceRequest{
				Topic: f.dlq, Partition: s.partition, RequiredAcks: kafka.RequireAll, Records: kafka.NewRecordReader(rec()),
			})
			if err == nil {
				err = res.Error
			}
			return err
		})
		if err != nil {
			t.Fatalf("write dead letter %d: %v", i, err)
		}
	}
}

// messages reads every message of topic, partition by partition.
func (f *fixture) messages(t *testing.T, topic string) []record {
	t.Helper()
	ctx := context.Background()
	spans, err := resolve(ctx, f.cl, topic, selection{})
	if err != nil {
		t.Fatal(err)
	}
	var out []record
	for _, s := range spans {
		if err := read(ctx, f.cl, topic, s, func(r record) { out = append(out, r) }); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// redrive runs the command and returns its stdout and stderr.
func (f *fixture) redrive(t *testing.T, args ...string) (string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = append([]string{"-brokers", strings.Join(f.brokers, ","), "-dlq-topic", f.dlq, "-request-topic", f.requests, "-by", "tester"}, args...)
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("redrive %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, stdout.String(), stderr.String())
	}
	return stdout.String(), stderr.String()
}

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// standard writes partition 0: a@t0 "bad json", b@t0+1h "schema_version 2",
// c@t0+2h "bad json"; partition 1: d@t0+1h "bad json".
func (f *fixture) standard(t *testing.T) {
	f.deadLetters(t,
		dlSpec{0, "a", "invalid character 'x'", t0},
		dlSpec{0, "b", "schema_version 2 unsupported", t0.Add(time.Hour)},
		dlSpec{0, "c", "invalid character 'y'", t0.Add(2 * time.Hour)},
		dlSpec{1, "d", "invalid character 'z'", t0.Add(time.Hour)},
	)
}

func keys(rs []record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, string(r.key))
	}
	slices.Sort(out)
	return out
}

func TestDryRunListsAndWritesNothing(t *testing.T) {
	f := newFixture(t)
	f.standard(t)
	out, _ := f.redrive(t)
	for _, want := range []string{
		`partition=0 offset=0 time=2026-11-22T10:00:00Z key="a" error="invalid character 'x'"`,
		`partition=0 offset=1 time=2026-11-22T11:00:00Z key="b" error="schema_version 2 unsupported"`,
		`partition=0 offset=2 time=2026-11-22T12:00:00Z key="c" error="invalid character 'y'"`,
		`partition=1 offset=0 time=2026-11-22T11:00:00Z key="d" error="invalid character 'z'"`,
		"4 selected, 0 already redriven, 4 to republish",
		"dry run: nothing written",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	if got := f.messages(t, f.requests); len(got) != 0 {
		t.Errorf("dry run wrote %d messages to the request topic; want 0", len(got))
	}
	if got := f.messages(t, f.dlq); len(got) != 4 {
		t.Errorf("dead-letter topic holds %d messages; want the 4 written", len(got))
	}
}

func TestSelection(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"offsets", []string{"-offsets", "0:1-3"}, []string{"b", "c"}},
		{"offsets of two partitions", []string{"-offsets", "0:0-1,1:0-1"}, []string{"a", "d"}},
		{"offsets beyond the end", []string{"-offsets", "0:2-99"}, []string{"c"}},
		{"time", []string{"-from", "2026-11-22T10:30:00Z", "-to", "2026-11-22T11:30:00Z"}, []string{"b", "d"}},
		{"time open ended", []string{"-from", "2026-11-22T11:30:00Z"}, []string{"c"}},
		{"error text", []string{"-error-contains", "schema_version"}, []string{"b"}},
		{"error regexp", []string{"-error-regexp", "character '[xz]'"}, []string{"a", "d"}},
		{"time and error", []string{"-from", "2026-11-22T10:30:00Z", "-error-regexp", "^invalid"}, []string{"c", "d"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			f.standard(t)
			out, _ := f.redrive(t, append(c.args, "-execute")...)
			if got := keys(f.messages(t, f.requests)); !slices.Equal(got, c.want) {
				t.Errorf("republished keys: got %v; want %v\n%s", got, c.want, out)
			}
			if want := fmt.Sprintf("republished %d of %d", len(c.want), len(c.want)); !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		})
	}
}

func TestRepublishedMessagesCarryProvenance(t *testing.T) {
	f := newFixture(t)
	f.standard(t)
	_, stderr := f.redrive(t, "-offsets", "0:1-2", "-execute")
	got := f.messages(t, f.requests)
	if len(got) != 1 {
		t.Fatalf("got %d republished messages; want 1", len(got))
	}
	m := got[0]
	dl := f.messages(t, f.dlq)[1]
	if !bytes.Equal(m.key, dl.key) || !bytes.Equal(m.value, dl.value) {
		t.Errorf("got key %q value %q; want the dead letter's %q %q", m.key, m.value, dl.key, dl.value)
	}
	for k, want := range map[string]string{
		HeaderSourceTopic: f.dlq, HeaderSourcePartition: "0", HeaderSourceOffset: "1", HeaderBy: "tester",
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	} {
		if v := header(m.headers, k); v != want {
			t.Errorf("header %s: got %q; want %q", k, v, want)
		}
	}
	if at, err := time.Parse(time.RFC3339Nano, header(m.headers, HeaderAt)); err != nil || at.IsZero() {
		t.Errorf("header %s: got %q (%v); want an RFC 3339 time", HeaderAt, header(m.headers, HeaderAt), err)
	}
	for _, h := range m.headers {
		if strings.HasPrefix(h.Key, hdrDLQPrefix) {
			t.Errorf("republished message keeps dead-letter header %s=%q", h.Key, h.Value)
		}
	}
	// Back to the partition it came from: dlq_source_partition says 1.
	spans, err := resolve(context.Background(), f.cl, f.requests, selection{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range spans {
		if n, want := s.end-s.start, int64(s.partition); n != want {
			t.Errorf("request partition %d holds %d messages; want %d", s.partition, n, want)
		}
	}
	if !strings.Contains(stderr, "published 1/1 (100%)") {
		t.Errorf("progress lacks published 1/1 (100%%):\n%s", stderr)
	}
}

func TestRedrivingTwiceRepublishesOnce(t *testing.T) {
	f := newFixture(t)
	// Dead letters written now, so the provenance scan's time bound is real.
	now := time.Now()
	f.deadLetters(t, dlSpec{0, "a", "bad", now}, dlSpec{1, "b", "bad", now}, dlSpec{0, "c", "bad", now})
	f.redrive(t, "-offsets", "0:0-1", "-execute")
	out, stderr := f.redrive(t, "-execute")
	if !strings.Contains(out, `key="a" error="bad"  (already redriven: skipped)`) {
		t.Errorf("second run does not skip a:\n%s", out)
	}
	if !strings.Contains(out, "3 selected, 1 already redriven, 2 to republish") || !strings.Contains(stderr, "published 2/2 (100%)") {
		t.Errorf("second run: want 2 of 3 republished\nstdout:\n%s\nstderr:\n%s", out, stderr)
	}
	out, _ = f.redrive(t, "-execute")
	if !strings.Contains(out, "3 selected, 3 already redriven, 0 to republish") {
		t.Errorf("third run: want nothing to republish:\n%s", out)
	}
	if got := keys(f.messages(t, f.requests)); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("request topic keys: got %v; want [a b c], each once", got)
	}
}

func TestBadFlagsAreRefused(t *testing.T) {
	for _, args := range [][]string{
		{"-offsets", "0:5-1"},
		{"-offsets", "x"},
		{"-offsets", "0:1-2", "-from", "2026-11-22T10:00:00Z"},
		{"-from", "yesterday"},
		{"-from", "2026-11-22T10:00:00Z", "-to", "2026-11-22T09:00:00Z"},
		{"-error-regexp", "("},
		{"-kafka-sasl-mechanism", "gssapi"},
		{"-kafka-tls-ca-file", "ca.pem"},
		{"stray"},
	} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), append(args, "-brokers", "127.0.0.1:1"), &out, &errOut); err == nil {
			t.Errorf("%v: got no error; want one", args)
		}
	}
}
