package consumer

// A notification the dedupe store refuses for good is dead-lettered, not
// retried forever (review of issue 14).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/testenv"
)

// poisonNotification is a schema-valid termination notification event.
func poisonNotification(id, code string) []byte {
	n := event.Notification{
		SchemaVersion: event.SchemaVersion, ID: id, EventType: event.NotifyEntrustTerminate, Kind: event.KindTermination,
		CreateTime: time.Now().UTC().Truncate(time.Second), ReceivedAt: time.Now().UTC(), MchID: "1900000100",
		API: event.PapayDirect, OutContractCode: code, ContractID: "W" + code, PlanID: "12535",
		TerminationMode: event.ModeUser, RawTerminationMode: "USER_TERMINATE", TerminatedTime: "2026-01-01T10:00:00+08:00",
		Resource: json.RawMessage(fmt.Sprintf(`{"mchid":"1900000100","out_contract_code":%q}`, code)),
	}
	b, _ := json.Marshal(n)
	return b
}

// Regression (review of issue 14): a poison message blocks the notification partition
// forever. A notification event whose id holds white space passes
// event.ValidateNotification (the schema only asks for minLength 1), but
// dedupe's checkID refuses "notification:<id>", and handleNotification
// retries that permanent refusal through retryStore with no end: the
// message is never dead-lettered, its offset never committed, the consumer
// reports "dedupe store unreachable" in Ready, and every later message
// behind it on the partition waits (on a restart or rebalance the whole
// tail is redelivered and blocks again). Any message on the topic that the
// store refuses for good must be dead-lettered, like an undecodable one.
func TestPoisonNotificationIsDeadLettered(t *testing.T) {
	h := newHarness(t, harnessOpts{partitions: 1})
	topic := testenv.Topic(t, "ntf")
	testenv.CreateTopics(t, h.brokers, 1, topic)
	// Since the fix the schema refuses the id too (it may hold no white
	// space): the message is dead-lettered at decoding, before the store is
	// asked. retryStore's stop on dedupe.ErrInvalidArgument, for any other
	// argument the store refuses, is TestRetryStoreStopsOnInvalidArgument.
	if err := event.ValidateNotification(poisonNotification("evil id", "POISON1")); err == nil {
		t.Fatalf("the schema accepts the id %q, which the dedupe store refuses", "evil id")
	}
	w := &kafka.Writer{Addr: kafka.TCP(h.brokers...), Topic: topic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx,
		kafka.Message{Key: []byte("POISON1"), Value: poisonNotification("evil id", "POISON1")},
		kafka.Message{Key: []byte("AFTER1"), Value: poisonNotification("good-id-1", "AFTER1")},
	); err != nil {
		t.Fatal(err)
	}
	o := h.options(0)
	o.NotificationTopic = topic
	c, _ := h.start(o)
	var letter kafka.Message
	h.waitFor("the poison message dead-lettered and the next notification's result", 30*time.Second,
		func(ev []event.Result, dead []kafka.Message) bool {
			if len(dead) == 1 {
				letter = dead[0]
			}
			return len(dead) == 1 && len(byRequest(ev)["notification:good-id-1"]) == 1
		})
	var cause string
	for _, hd := range letter.Headers {
		if hd.Key == event.HeaderDLQError {
			cause = string(hd.Value)
		}
	}
	if !strings.Contains(cause, "/id") {
		t.Errorf("dead letter's %s = %q; want it to name the id", event.HeaderDLQError, cause)
	}
	if err := c.Ready(); err != nil {
		t.Fatalf("Ready after the poison message: %v; want nil", err)
	}
}

// Regression (review of issue 14): retryStore retried the store's refusal of
// an argument as if Redis were down, for ever, and Ready reported the store
// unreachable meanwhile (Ready reads storeErr).
func TestRetryStoreStopsOnInvalidArgument(t *testing.T) {
	c := &Consumer{opts: Options{Logger: slog.New(slog.DiscardHandler)}}
	refused := fmt.Errorf("dedupe: record termination X: id %q contains white space: %w", "a b", dedupe.ErrInvalidArgument)
	calls := 0
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := retryStore(ctx, c, func() (struct{}, error) { calls++; return struct{}{}, refused })
	if !errors.Is(err, dedupe.ErrInvalidArgument) || calls != 1 {
		t.Errorf("retryStore = %v after %d calls; want ErrInvalidArgument after 1", err, calls)
	}
	if p := c.storeErr.Load(); p != nil {
		t.Errorf("the store is reported unreachable after a refused argument: %v; want not", *p)
	}
}
