package consumer

// A replay's re-emits (ReplayOptions.Reemit): answered intents publish
// their stored answer again, marked replayed.

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/dedupe"
)

// reemit publishes the stored answer to in again, marked replayed.
func (rp *replayPartition) reemit(ctx context.Context, in event.Intent, m kafka.Message, rec dedupe.Record) error {
	var r event.Result
	if err := json.Unmarshal(rec.Outcome, &r); err != nil {
		return fmt.Errorf("stored outcome of %s unreadable: %w", in.OutContractCode, err)
	}
	if r.RequestID != in.RequestID {
		// Answered from another request's termination: derive its event.
		if r.Contract == nil {
			return fmt.Errorf("stored outcome of %s lacks the contract", in.OutContractCode)
		}
		r = event.Terminated(in, event.Source{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}, *r.Contract, 0, true, rp.c.opts.Now())
	}
	r.Replayed = true
	return rp.publishReplayed(ctx, r)
}

func (rp *replayPartition) reemitInvalid(ctx context.Context, m kafka.Message) error {
	req, code, ok := event.Identify(m.Value, m.Key)
	if !ok {
		return nil // it went to the dead-letter topic; that is not repeated
	}
	detail := "invalid intent"
	if _, err := decode(m); err != nil {
		detail = invalidDetail(err)
	}
	r := event.Failed(req, code, "", "", event.Source{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset},
		event.Failure{Reason: event.ReasonInvalidRequest, Detail: detail}, 0, rp.c.opts.Now())
	r.Replayed = true
	return rp.publishReplayed(ctx, r)
}

func (rp *replayPartition) publishReplayed(ctx context.Context, r event.Result) error {
	if err := rp.c.publish(ctx, output{result: &r, replayed: true}); err != nil {
		return err
	}
	rp.reemitted.Add(1)
	return nil
}
