package consumer

// The replay's range: which offsets of which partitions a replay covers.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/internal/offsetrange"
)

// ReplayRange selects messages of the request topic: by time (From
// inclusive, To exclusive; a zero To is the partition's end) or, if Offsets
// is set, by partition offsets [start, end).
type ReplayRange struct {
	From, To time.Time
	Offsets  map[int][2]int64
}

// PartitionRange is the resolved range of one partition: [Start, End).
type PartitionRange struct {
	Partition  int
	Start, End int64
}

// Messages is how many offsets the range spans.
func (r PartitionRange) Messages() int64 { return max(r.End-r.Start, 0) }

// ResolveRange turns r into offsets per partition of the request topic.
func (c *Consumer) ResolveRange(ctx context.Context, r ReplayRange) ([]PartitionRange, error) {
	cl := &kafka.Client{Addr: kafka.TCP(c.opts.Brokers...), Timeout: 10 * time.Second, Transport: c.opts.Transport}
	parts, err := offsetrange.Partitions(ctx, cl, c.opts.RequestTopic)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	var reqs []kafka.OffsetRequest
	for _, p := range parts {
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	bounds, err := c.listOffsets(ctx, cl, reqs)
	if err != nil {
		return nil, err
	}
	var out []PartitionRange
	if r.Offsets != nil {
		for p, se := range r.Offsets {
			b, ok := bounds[p]
			if !ok {
				return nil, fmt.Errorf("replay: partition %d does not exist", p)
			}
			if se[0] > se[1] {
				return nil, fmt.Errorf("replay: partition %d: start %d after end %d", p, se[0], se[1])
			}
			out = append(out, PartitionRange{Partition: p, Start: max(se[0], b.FirstOffset), End: min(se[1], b.LastOffset)})
		}
	} else {
		if r.From.IsZero() {
			return nil, errors.New("replay: a range needs a start time or offsets")
		}
		at := func(t time.Time) (map[int]kafka.PartitionOffsets, error) {
			var reqs []kafka.OffsetRequest
			for _, p := range parts {
				reqs = append(reqs, kafka.TimeOffsetOf(p, t))
			}
			return c.listOffsets(ctx, cl, reqs)
		}
		from, err := at(r.From)
		if err != nil {
			return nil, err
		}
		to := bounds
		if !r.To.IsZero() {
			if to, err = at(r.To); err != nil {
				return nil, err
			}
		}
		for _, p := range parts {
			out = append(out, PartitionRange{Partition: p, Start: timeOffset(from[p], bounds[p]), End: timeOffset(to[p], bounds[p])})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition })
	return out, nil
}

// timeOffset is the first offset at or after the requested time; a
// partition with no such message answers -1, meaning its end.
func timeOffset(at, bounds kafka.PartitionOffsets) int64 {
	for off := range at.Offsets {
		if off >= 0 {
			return off
		}
	}
	return bounds.LastOffset
}

func (c *Consumer) listOffsets(ctx context.Context, cl *kafka.Client, reqs []kafka.OffsetRequest) (map[int]kafka.PartitionOffsets, error) {
	resp, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{c.opts.RequestTopic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("replay: list offsets: %w", err)
	}
	out := make(map[int]kafka.PartitionOffsets)
	for _, po := range resp.Topics[c.opts.RequestTopic] {
		if po.Error != nil {
			return nil, fmt.Errorf("replay: list offsets of partition %d: %w", po.Partition, po.Error)
		}
		prev, ok := out[po.Partition]
		if !ok {
			prev = kafka.PartitionOffsets{Partition: po.Partition, FirstOffset: -1, LastOffset: -1, Offsets: map[int64]time.Time{}}
		}
		if po.FirstOffset >= 0 {
			prev.FirstOffset = po.FirstOffset
		}
		if po.LastOffset >= 0 {
			prev.LastOffset = po.LastOffset
		}
		for off, ts := range po.Offsets {
			prev.Offsets[off] = ts
		}
		out[po.Partition] = prev
	}
	return out, nil
}
