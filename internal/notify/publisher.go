package notify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// Publisher makes a notification durable. Publish returns nil only once
// the message is stored as durably as the publisher can make it: the
// endpoint acknowledges WeChat Pay after it, and never before.
type Publisher interface {
	Publish(ctx context.Context, key, value []byte) error
}

// KafkaPublisher writes notifications to one Kafka topic, synchronously,
// with acks=all.
type KafkaPublisher struct {
	w      *kafka.Writer
	client *kafka.Client
	topic  string
}

// NewKafkaPublisher writes to topic on brokers; transport carries TLS and
// SASL (nil: plain TCP).
func NewKafkaPublisher(brokers []string, topic string, transport kafka.RoundTripper) *KafkaPublisher {
	w := &kafka.Writer{
		Addr:  kafka.TCP(brokers...),
		Topic: topic,
		// A contract's notifications land on the partition Java clients and
		// cmd/producer pick for its intents (same key, same partition count).
		Balancer: kafka.Murmur2Balancer{},
		// The default, RequireNone, would report a lost write as written,
		// and WeChat Pay would stop retrying a notification never stored.
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 2 * time.Millisecond, // the default, 1 s, would delay every answer
		Transport:    transport,
	}
	return &KafkaPublisher{w: w, client: &kafka.Client{Addr: w.Addr, Transport: transport}, topic: topic}
}

// Publish writes one message and waits for every in-sync replica.
func (p *KafkaPublisher) Publish(ctx context.Context, key, value []byte) error {
	if err := p.w.WriteMessages(ctx, kafka.Message{Key: key, Value: value}); err != nil {
		return fmt.Errorf("kafka: write %s: %w", p.topic, err)
	}
	return nil
}

// Ready reports whether the broker answers and serves the topic.
func (p *KafkaPublisher) Ready(ctx context.Context) error {
	md, err := p.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{p.topic}})
	if err != nil {
		return fmt.Errorf("kafka: metadata: %w", err)
	}
	for _, t := range md.Topics {
		if t.Name == p.topic {
			if t.Error != nil {
				return fmt.Errorf("kafka: topic %s: %w", p.topic, t.Error)
			}
			return nil
		}
	}
	return errors.New("kafka: topic " + p.topic + " not served")
}

// Close flushes and closes the writer.
func (p *KafkaPublisher) Close() error { return p.w.Close() }
