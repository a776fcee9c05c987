package consumer

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
)

// output is one answer the consumer publishes, and what publishing it means.
type output struct {
	result     *event.Result  // a result event for the result topic
	encoded    []byte         // result's stored encoding, published byte for byte; nil: encode result
	deadLetter *kafka.Message // instead of a result: a message for the dead-letter topic
	claimed    bool           // answers a claimed request: mark it published in the dedupe store
	replayed   bool           // a replay's re-emit: the replay counts it, not the outcome metrics
}

// publish is the one way an answer leaves the consumer: it writes o to Kafka
// with acks=all, retrying until Kafka acknowledges it or ctx ends, counts it,
// and marks a claimed request published. nil means o is durable in Kafka.
func (c *Consumer) publish(ctx context.Context, o output) error {
	msg, err := c.message(o)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := c.write(ctx, msg); err != nil {
		return err
	}
	switch {
	case o.deadLetter != nil:
		c.deadLettered()
	case !o.replayed:
		c.published(o.result)
	}
	if o.claimed {
		c.opts.Metrics.observeStage(stagePublish, start)
		c.markPublished(ctx, o.result.OutContractCode, o.result.RequestID)
	}
	return nil
}

// message is the Kafka message of o: a result is keyed by its contract and
// carries its event type in a header.
func (c *Consumer) message(o output) (kafka.Message, error) {
	if o.deadLetter != nil {
		return *o.deadLetter, nil
	}
	b := o.encoded
	if b == nil {
		var err error
		if b, err = json.Marshal(o.result); err != nil {
			return kafka.Message{}, fmt.Errorf("encode result of %s: %w", o.result.RequestID, err)
		}
	}
	return kafka.Message{
		Topic:   c.opts.ResultTopic,
		Key:     []byte(o.result.OutContractCode),
		Value:   b,
		Headers: []kafka.Header{{Key: event.HeaderEventType, Value: []byte(o.result.EventType)}},
	}, nil
}

// write publishes m with RequiredAcks=all, retrying until Kafka acknowledges
// it or ctx is done: the intent is not done until its answer is durable.
func (c *Consumer) write(ctx context.Context, m kafka.Message) error {
	b := c.opts.Retry.backoff()
	b.MaxElapsedTime = 0
	for {
		err := c.pub.write(ctx, m)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.opts.Logger.Warn("publish", "topic", m.Topic, "out_contract_code", string(m.Key), "err", err)
		if !sleep(ctx, b.NextBackOff()) {
			return ctx.Err()
		}
	}
}
