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

// reemit publishes the stored answer to in again, marked replayed: the
// request's own outcome (a failure stays that request's failure), else the
// contract-terminated event derived from the contract's termination by
// another request or notification. A record that answers nothing for in
// (expired, or its failure dropped beyond MaxFailures) or whose event
// cannot be read is skipped and counted: one record never aborts the
// partition's replay.
func (rp *replayPartition) reemit(ctx context.Context, in event.Intent, m kafka.Message, rec dedupe.Record) error {
	a, ok := rec.Answer(in.RequestID)
	if !ok {
		return rp.skip(in, "nothing stored answers the request", nil)
	}
	var r event.Result
	if err := json.Unmarshal(a.Event, &r); err != nil {
		return rp.skip(in, "stored outcome unreadable", err)
	}
	if !a.Own {
		if r.Contract == nil {
			return rp.skip(in, "stored termination lacks the contract", nil)
		}
		r = event.Terminated(in, event.Source{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}, *r.Contract, 0, true, rp.c.opts.Now())
	} else if r.RequestID != in.RequestID || r.OutContractCode != in.OutContractCode {
		return rp.skip(in, "stored outcome answers another request", fmt.Errorf("request %s of %s", r.RequestID, r.OutContractCode))
	}
	r.Replayed = true
	return rp.publishReplayed(ctx, r)
}

// skip counts an answered intent whose answer cannot be re-emitted.
func (rp *replayPartition) skip(in event.Intent, why string, err error) error {
	rp.skipped.Add(1)
	rp.c.opts.Logger.Warn("replay: not re-emitted: "+why, "request_id", in.RequestID,
		"out_contract_code", in.OutContractCode, "err", err)
	return nil
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
