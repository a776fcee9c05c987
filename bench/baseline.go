package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/wxapi"
)

// runBaseline is the consumer most teams would write: one kafka-go Reader
// in a consumer group and one message at a time, through the same steps as
// the real consumer (validate, claim, call WeChat Pay, store the outcome,
// publish with acks=all, mark published, commit). It runs in the bench
// process against the same simulator, Redis and Kafka, and stops after n
// messages. It does not retry: the benchmark injects no faults into it.
func (e *env) runBaseline(ctx context.Context, t topics, s *sim, n int) error {
	client, err := wxapi.New(s.keys.ClientConfig(s.url))
	if err != nil {
		return err
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: e.brokers, GroupID: t.group, Topic: t.requests, StartOffset: kafka.FirstOffset,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 250 * time.Millisecond,
	})
	defer r.Close()
	w := &kafka.Writer{
		Addr: kafka.TCP(e.brokers...), Topic: t.results, Balancer: kafka.Murmur2Balancer{},
		// kafka-go's defaults (no acks, 1 s batches) would be wrong and slow;
		// every team that measures sets these.
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond,
	}
	defer w.Close()
	for i := range n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return err
		}
		in, err := event.DecodeIntent(m.Value)
		if err != nil {
			return fmt.Errorf("offset %d/%d: %w", m.Partition, m.Offset, err)
		}
		owner := fmt.Sprintf("baseline-%s-%d", e.runID, i)
		cl, err := e.store.Claim(ctx, in.OutContractCode, in.RequestID, owner)
		if err != nil {
			return err
		}
		if cl.Status != dedupe.Claimed {
			return fmt.Errorf("%s: claim: %s (the benchmark's contracts are fresh)", in.OutContractCode, cl.Status)
		}
		ct, err := client.Terminate(ctx, wxapi.Request{API: wxapi.API(in.API), OutContractCode: in.OutContractCode, Remark: in.Remark})
		if err != nil {
			return fmt.Errorf("%s: terminate: %w", in.OutContractCode, err)
		}
		src := event.Source{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}
		res := event.Terminated(in, src, event.Contract{
			ContractID: ct.ContractID, OutContractCode: ct.OutContractCode, PlanID: ct.PlanID, ContractState: ct.State(),
			ContractTerminatedTime: ct.ContractTerminatedTime, ContractTerminationRemark: ct.ContractTerminationRemark,
		}, 1, false, time.Now())
		b, err := json.Marshal(res)
		if err != nil {
			return err
		}
		if err := e.store.Complete(ctx, in.OutContractCode, in.RequestID, owner, dedupe.KindTerminated, b); err != nil {
			return err
		}
		err = w.WriteMessages(ctx, kafka.Message{
			Key: []byte(in.OutContractCode), Value: b,
			Headers: []kafka.Header{{Key: event.HeaderEventType, Value: []byte(res.EventType)}},
		})
		if err != nil {
			return err
		}
		if err := e.store.MarkPublished(ctx, in.OutContractCode, in.RequestID); err != nil {
			return err
		}
		if err := r.CommitMessages(ctx, m); err != nil {
			return err
		}
	}
	return nil
}
