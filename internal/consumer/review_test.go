package consumer

// Review of issue 14 (independent reviewer): scenarios that try to break the
// consumer's handling of the notifications topic.

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/testenv"
)

// reviewNotification is a schema-valid termination notification event.
func reviewNotification(id, code string) []byte {
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

// Review finding: a poison message blocks the notification partition
// forever. A notification event whose id holds white space passes
// event.ValidateNotification (the schema only asks for minLength 1), but
// dedupe's checkID refuses "notification:<id>", and handleNotification
// retries that permanent refusal through retryStore with no end: the
// message is never dead-lettered, its offset never committed, the consumer
// reports "dedupe store unreachable" in Ready, and every later message
// behind it on the partition waits (on a restart or rebalance the whole
// tail is redelivered and blocks again). Any message on the topic that the
// store refuses for good must be dead-lettered, like an undecodable one.
func TestReviewPoisonNotificationIsDeadLettered(t *testing.T) {
	h := newHarness(t, harnessOpts{partitions: 1})
	topic := testenv.Topic(t, "ntf")
	testenv.CreateTopics(t, h.brokers, 1, topic)
	if err := event.ValidateNotification(reviewNotification("evil id", "POISON1")); err != nil {
		t.Fatalf("the poison message must be schema-valid for this test: %v", err)
	}
	w := &kafka.Writer{Addr: kafka.TCP(h.brokers...), Topic: topic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx,
		kafka.Message{Key: []byte("POISON1"), Value: reviewNotification("evil id", "POISON1")},
		kafka.Message{Key: []byte("AFTER1"), Value: reviewNotification("good-id-1", "AFTER1")},
	); err != nil {
		t.Fatal(err)
	}
	o := h.options(0)
	o.NotificationTopic = topic
	c, _ := h.start(o)
	h.waitFor("the poison message dead-lettered and the next notification's result", 30*time.Second,
		func(ev []event.Result, dead []kafka.Message) bool {
			return len(dead) == 1 && len(byRequest(ev)["notification:good-id-1"]) == 1
		})
	if err := c.Ready(); err != nil {
		t.Fatalf("Ready after the poison message: %v; want nil", err)
	}
}
