package consumer

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/wxapi"
)

// topics are the topics the consumer group subscribes to: the request topic
// and, when set, the notification topic.
func (c *Consumer) topics() []string {
	if c.opts.NotificationTopic == "" {
		return []string{c.opts.RequestTopic}
	}
	return []string{c.opts.RequestTopic, c.opts.NotificationTopic}
}

// isNotification reports whether m comes from the notification topic.
func (c *Consumer) isNotification(m kafka.Message) bool {
	return c.opts.NotificationTopic != "" && m.Topic == c.opts.NotificationTopic
}

// handleNotification takes one message of the notification topic (written
// by cmd/notify) to its end, with handle's contract: false only when ctx
// ended first.
//
// A termination becomes one contract-terminated result (origin
// notification), however often WeChat Pay delivers it: the dedupe store
// records the first termination of a contract, and only the notification
// whose termination it recorded publishes (docs/notify.md). A signing
// notification is acknowledged and ignored: nothing in the consumer acts on
// a signing.
func (c *Consumer) handleNotification(ctx context.Context, m kafka.Message) bool {
	src := event.Source{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}
	n, err := decodeNotification(m)
	if err != nil {
		return c.publish(ctx, *c.reject(m, src, err)) == nil
	}
	if n.Kind != event.KindTermination {
		return true
	}
	log := c.opts.Logger.With("request_id", n.RequestID(), "out_contract_code", n.OutContractCode, "event_type", n.EventType)
	outcome, err := json.Marshal(notificationResult(n, src, c.opts.Now()))
	if err != nil {
		log.Error("encode notification result", "err", err) // unreachable: the result is plain data
		return true
	}
	for {
		t, err := tracedStore(ctx, c, storeRecordTermination, func(ctx context.Context) (dedupe.Termination, error) { // trace.go
			return retryStore(ctx, c, func() (dedupe.Termination, error) {
				return c.opts.Store.RecordTermination(ctx, n.OutContractCode, n.RequestID(), outcome)
			})
		})
		if errors.Is(err, dedupe.ErrInvalidArgument) {
			// The store refuses this message for good: dead-letter it like
			// an undecodable one rather than block its partition.
			return c.publish(ctx, *c.reject(m, src, &event.InvalidError{Detail: "dedupe store refuses it: " + err.Error()})) == nil
		}
		if err != nil {
			return false
		}
		switch {
		case t.Status == dedupe.TermBusy:
			// An intent's call is in flight: it meets the terminated contract
			// and records the termination, or its lease runs out. Wait,
			// rather than commit past the notification.
			wait := min(max(time.Until(t.LeaseUntil), 50*time.Millisecond), time.Second)
			if !sleep(ctx, wait) {
				return false
			}
			continue
		case t.Status == dedupe.TermAlreadyTerminated:
			log.Info("notification absorbed by an earlier termination", "terminated_by", t.TerminatedBy)
			c.duplicate()
			return true
		case !t.MustPublish():
			c.duplicate()
			return true
		}
		// The stored outcome, not this delivery's: a redelivery after a
		// crash between recording and publishing publishes the same bytes.
		var r event.Result
		if err := json.Unmarshal(t.Outcome, &r); err != nil {
			// Like an intent's (unreadableOutcome): dead-lettered, never
			// acknowledged in silence.
			cause := fmt.Errorf("stored termination of %s (notification %s) unreadable: %w", n.OutContractCode, n.RequestID(), err)
			log.Error("stored notification outcome unreadable: dead-lettering the notification", "err", cause)
			return c.publish(ctx, c.unreadableDeadLetter(m.Key, m.Value, src, cause)) == nil
		}
		return c.publish(ctx, output{result: &r, encoded: t.Outcome, claimed: true}) == nil
	}
}

// decodeNotification decodes and validates a notification message.
func decodeNotification(m kafka.Message) (event.Notification, error) {
	n, err := event.DecodeNotification(m.Value)
	if err == nil && len(m.Key) > 0 && string(m.Key) != n.OutContractCode {
		err = &event.InvalidError{Detail: "message key does not match out_contract_code"}
	}
	if ie, ok := err.(*event.InvalidNotificationError); ok {
		err = &event.InvalidError{Detail: ie.Detail}
	}
	return n, err
}

// notificationResult is the contract-terminated result of termination
// notification n: its request id is n.RequestID(), so its event_id is the
// same for every delivery of n, and its contract is built from n, since
// later intents for the contract derive their already_terminated answers
// from it.
func notificationResult(n event.Notification, src event.Source, now time.Time) event.Result {
	var res struct {
		DisplayName       string `json:"display_name"`
		DisplayAccount    string `json:"contract_display_account"`
		UserDisplayName   string `json:"user_display_name"`
		AppID             string `json:"appid"`
		SpAppID           string `json:"sp_appid"`
		SubAppID          string `json:"sub_appid"`
		ContractState     string `json:"contract_state"`
		ContractSigned    string `json:"contract_signed_time"`
		TerminationRemark string `json:"contract_termination_remark"`
		TerminateInfo     struct {
			Remark string `json:"contract_termination_remark"`
		} `json:"contract_terminate_info"`
	}
	_ = json.Unmarshal(n.Resource, &res) // best effort: the notification's own fields are what matter
	ct := event.Contract{
		ContractID: n.ContractID, PlanID: n.PlanID, OutContractCode: n.OutContractCode,
		DisplayName: cmp.Or(res.DisplayName, res.DisplayAccount, res.UserDisplayName),
		SpMchID:     n.MchID, SubMchID: n.SubMchID, AppID: res.AppID, SpAppID: res.SpAppID, SubAppID: res.SubAppID,
		ContractState: res.ContractState, ContractSignedTime: res.ContractSigned,
		ContractTerminatedTime:    n.TerminatedTime,
		ContractTerminationMode:   n.RawTerminationMode,
		ContractTerminationRemark: cmp.Or(res.TerminationRemark, res.TerminateInfo.Remark),
		State:                     string(wxapi.StatusTerminated),
		TerminationMode:           string(n.TerminationMode),
	}
	if at, err := time.Parse(time.RFC3339, n.TerminatedTime); err == nil {
		at = at.UTC()
		ct.TerminatedAt = &at
	}
	return event.Result{
		SchemaVersion: event.SchemaVersion, EventType: event.TypeTerminated,
		EventID:   event.EventID(n.RequestID(), n.OutContractCode, event.TypeTerminated),
		RequestID: n.RequestID(), OutContractCode: n.OutContractCode, API: n.API, MchID: n.MchID,
		OccurredAt: now.UTC(), Source: src, Origin: event.OriginNotification, Contract: &ct,
	}
}
