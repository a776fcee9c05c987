package main

// Which dead letters go where: each back to its own source topic, reduced
// ones nowhere, and a time range by each record's own timestamp (review of
// issue 15).

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/consumer"
	"github.com/wxterm/wxterm/internal/testenv"
)

// produce writes the record rec builds to partition p of topic, retrying a
// new topic's unknown leader (each try builds the record again: a try
// consumes its bytes).
func (f *fixture) produce(t *testing.T, topic string, p int, rec func() kafka.Record) {
	t.Helper()
	err := retry(context.Background(), func() error {
		res, err := f.cl.Produce(context.Background(), &kafka.ProduceRequest{
			Topic: topic, Partition: p, RequiredAcks: kafka.RequireAll, Records: kafka.NewRecordReader(rec()),
		})
		if err == nil {
			err = res.Error
		}
		return err
	})
	if err != nil {
		t.Fatalf("write to %s: %v", topic, err)
	}
}

// Review finding (medium): the consumer also reads the notification topic
// and dead-letters a notification it cannot decode (handleNotification →
// reject) to the same dead-letter topic, with dlq_source_topic naming the
// notification topic. redrive republishes every selected dead letter to the
// request topic, whatever its source: the notification lands on the
// request topic, is refused there as a malformed intent, and is dead-
// lettered again with dlq_source_topic = the request topic, so WeChat Pay's
// termination (already acknowledged 200 by cmd/notify) can never be
// redriven to where it belongs and never yields its result. A dead letter
// from another topic must be skipped (or sent back to its own topic), not
// put on the request topic.
func TestReviewNotificationDeadLetterIsNotRedrivenToTheRequestTopic(t *testing.T) {
	f := newFixture(t)
	notifications := "contract-termination.notifications"
	f.produce(t, f.dlq, 0, func() kafka.Record {
		return kafka.Record{
			Time: time.Now(), Key: kafka.NewBytes([]byte("NOTE1")),
			Value: kafka.NewBytes([]byte(`{"id":"EV-1","out_contract_code":"NOTE1","kind":"termination","new_field":1}`)),
			Headers: []kafka.Header{
				{Key: event.HeaderDLQError, Value: []byte("unknown field new_field")},
				{Key: event.HeaderDLQSourceTopic, Value: []byte(notifications)},
				{Key: event.HeaderDLQSourcePartition, Value: []byte("0")},
				{Key: event.HeaderDLQSourceOffset, Value: []byte("7")},
			},
		}
	})
	out, stderr := f.redrive(t, "-execute")
	for _, m := range f.messages(t, f.requests) {
		if string(m.key) == "NOTE1" {
			t.Errorf("a dead letter of %s was republished to the request topic %s: got %q; want it skipped or sent back to its source topic\nstdout:\n%s\nstderr:\n%s",
				notifications, f.requests, m.value, out, stderr)
		}
	}
}

// Review finding (low): a reduced or headers-only dead letter (publish.go's
// reduce: Kafka refused the full form; wxterm_refused set) holds no intent,
// or a 256-byte prefix of one, or a refused *result*. redrive republishes
// it to the request topic as if it were an intent: an empty value there is
// refused again (one more dead letter per run) and never does what the
// operator meant. It should be left out (and said so) rather than written.
func TestReviewRefusedDeadLetterIsNotRepublishedAsAnIntent(t *testing.T) {
	f := newFixture(t)
	f.produce(t, f.dlq, 0, func() kafka.Record {
		return kafka.Record{
			Time: time.Now(), Key: kafka.NewBytes([]byte("REFUSED1")),
			Headers: []kafka.Header{
				{Key: event.HeaderDLQError, Value: []byte("contract-terminated")},
				{Key: event.HeaderDLQSourceTopic, Value: []byte(f.requests)},
				{Key: event.HeaderDLQSourcePartition, Value: []byte("0")},
				{Key: event.HeaderDLQSourceOffset, Value: []byte("3")},
				{Key: "wxterm_refused", Value: []byte("[10] Message Size Too Large")},
				{Key: "wxterm_refused_topic", Value: []byte("contract-termination.results")},
				{Key: "wxterm_refused_request_id", Value: []byte("req-1")},
			},
		}
	})
	out, stderr := f.redrive(t, "-execute")
	for _, m := range f.messages(t, f.requests) {
		if string(m.key) == "REFUSED1" {
			t.Errorf("a headers-only dead letter of a refused result was republished as an intent (value %q); want it skipped\nstdout:\n%s\nstderr:\n%s",
				m.value, out, stderr)
		}
	}
}

// stamped is a dead letter keyed key with timestamp ts and no source.
func stamped(key string, ts time.Time) func() kafka.Record {
	return func() kafka.Record {
		return kafka.Record{Time: ts, Key: kafka.NewBytes([]byte(key)), Value: kafka.NewBytes([]byte(`{"x"`)),
			Headers: []kafka.Header{{Key: event.HeaderDLQError, Value: []byte("bad")}}}
	}
}

// Review finding (low): -from/-to select by Kafka's offset-for-time lookup
// only, and every message of the resulting offset span is taken, whatever
// its own timestamp. Dead-letter timestamps are the writing consumer's
// clock (CreateTime), so they are not monotonic across consumer pods: a
// dead letter stamped before -from, written between two inside the range,
// is selected (and listed with its out-of-range time).
func TestReviewTimeSelectionKeepsOnlyTheRange(t *testing.T) {
	f := newFixture(t)
	f.produce(t, f.dlq, 0, stamped("in1", t0.Add(time.Hour)))
	f.produce(t, f.dlq, 0, stamped("early", t0.Add(-time.Hour))) // a pod whose clock is behind
	f.produce(t, f.dlq, 0, stamped("in2", t0.Add(90*time.Minute)))
	from, to := t0.Format(time.RFC3339), t0.Add(2*time.Hour).Format(time.RFC3339)
	out, _ := f.redrive(t, "-from", from, "-to", to, "-no-check")
	if strings.Contains(out, `key="early"`) {
		t.Errorf("-from %s -to %s selected a dead letter stamped %s:\n%s", from, to, t0.Add(-time.Hour).Format(time.RFC3339), out)
	}
	if !strings.Contains(out, `key="in1"`) || !strings.Contains(out, `key="in2"`) {
		t.Errorf("want in1 and in2 selected:\n%s", out)
	}
}

// With -notification-topic, a notification's dead letter goes back to the
// notification topic (its own partition, provenance headers), while the
// request topic's goes back there; the reduced one is listed as not
// redrivable and written nowhere.
func TestDeadLettersGoBackToTheirOwnTopic(t *testing.T) {
	f := newFixture(t)
	notifications := testenv.Topic(t, "notifications")
	testenv.CreateTopics(t, f.brokers, 2, notifications)
	dl := func(key, src string, p int, extra ...kafka.Header) func() kafka.Record {
		return func() kafka.Record {
			return kafka.Record{Time: time.Now(), Key: kafka.NewBytes([]byte(key)), Value: kafka.NewBytes([]byte(`{"k":"` + key + `"}`)),
				Headers: append([]kafka.Header{
					{Key: event.HeaderDLQError, Value: []byte("bad")},
					{Key: event.HeaderDLQSourceTopic, Value: []byte(src)},
					{Key: event.HeaderDLQSourcePartition, Value: []byte(strconv.Itoa(p))},
					{Key: event.HeaderDLQSourceOffset, Value: []byte("5")},
				}, extra...)}
		}
	}
	f.produce(t, f.dlq, 0, dl("NOTE1", notifications, 1))
	f.produce(t, f.dlq, 0, dl("REQ1", f.requests, 0))
	f.produce(t, f.dlq, 0, dl("OTHER1", "somebody-elses.topic", 0))
	f.produce(t, f.dlq, 0, dl("RED1", f.requests, 0, kafka.Header{Key: consumer.HeaderRefused, Value: []byte("[10] Message Size Too Large")}))

	out, _ := f.redrive(t, "-notification-topic", notifications)
	for _, want := range []string{
		`key="NOTE1" error="bad"  -> ` + notifications + ` partition 1`,
		`key="REQ1" error="bad"  -> ` + f.requests + ` partition 0`,
		`key="OTHER1" error="bad"  (not redrivable: from somebody-elses.topic, neither the request topic nor the notification topic)`,
		`key="RED1" error="bad"  (not redrivable: a reduced dead letter`,
		"4 selected, 0 already redriven, 2 to republish, 2 not redrivable",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	f.redrive(t, "-notification-topic", notifications, "-execute")
	if got := keys(f.messages(t, f.requests)); !slices.Equal(got, []string{"REQ1"}) {
		t.Errorf("request topic: got %v; want [REQ1]", got)
	}
	got := f.messages(t, notifications)
	if len(got) != 1 || string(got[0].key) != "NOTE1" || header(got[0].headers, HeaderSourceTopic) != f.dlq {
		t.Fatalf("notification topic: got %d messages (%v); want NOTE1 with provenance", len(got), keys(got))
	}
	out, _ = f.redrive(t, "-notification-topic", notifications, "-execute")
	if !strings.Contains(out, "4 selected, 2 already redriven, 0 to republish, 2 not redrivable") {
		t.Errorf("second run: want both found redriven:\n%s", out)
	}
}

// A dead letter stamped inside -from/-to written after one stamped past -to
// (a pod whose clock is ahead) is still selected.
func TestTimeSelectionReadsPastTheFirstLaterTimestamp(t *testing.T) {
	f := newFixture(t)
	f.produce(t, f.dlq, 0, stamped("in1", t0.Add(time.Hour)))
	f.produce(t, f.dlq, 0, stamped("late", t0.Add(2*time.Hour+time.Minute)))
	f.produce(t, f.dlq, 0, stamped("in2", t0.Add(119*time.Minute)))
	out, _ := f.redrive(t, "-from", t0.Format(time.RFC3339), "-to", t0.Add(2*time.Hour).Format(time.RFC3339), "-no-check")
	if !strings.Contains(out, `key="in1"`) || !strings.Contains(out, `key="in2"`) || strings.Contains(out, `key="late"`) {
		t.Errorf("want in1 and in2 selected, late not:\n%s", out)
	}
}
