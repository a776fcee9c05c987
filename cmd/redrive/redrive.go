package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/consumer"
	"github.com/wxterm/wxterm/internal/offsetrange"
	"github.com/wxterm/wxterm/internal/tracing"
)

// hdrDLQPrefix starts every header the consumer adds to a dead letter
// (event.HeaderDLQ*): a redrive strips them all.
const hdrDLQPrefix = "dlq_"

// Provenance headers on every republished message: which dead letter it is,
// when and by whom it was redriven. They also let a later run find the
// redrives already done (see earlier).
const (
	HeaderSourceTopic     = "redrive_source_topic"
	HeaderSourcePartition = "redrive_source_partition"
	HeaderSourceOffset    = "redrive_source_offset"
	HeaderAt              = "redrive_at"
	HeaderBy              = "redrive_by"
	hdrRedrivePrefix      = "redrive_"
)

const (
	fetchMaxBytes = 4 << 20
	produceBatch  = 200
)

// redriver reads the dead-letter topic and republishes each dead letter to
// the topic it came from: the request topic, or the notification topic when
// it is given.
type redriver struct {
	brokers       []string
	transport     kafka.RoundTripper
	dlq           string
	requests      string
	notifications string // empty: notification dead letters are not redriven
	by            string
	skew          time.Duration
	check         bool
	now           func() time.Time
	progress      io.Writer
}

// deadLetter is one selected message of the dead-letter topic.
type deadLetter struct {
	partition  int
	offset     int64
	time       time.Time
	key, value []byte
	headers    []kafka.Header
	err        string
	topic      string // the source topic it goes back to; empty: not redrivable
	skip       string // why it is not redrivable
	target     int    // partition of topic it goes to
	done       bool   // an earlier run already republished it
}

// span is a half-open offset range of one partition.
type span struct {
	partition  int
	start, end int64
}

// dlKey identifies a dead letter in provenance headers.
type dlKey struct {
	partition int
	offset    int64
}

func (r *redriver) run(ctx context.Context, sel selection, execute bool, stdout io.Writer) error {
	cl := &kafka.Client{Addr: kafka.TCP(r.brokers...), Timeout: 30 * time.Second, Transport: r.transport}
	// A dead letter stamped before -to by a pod whose clock is behind may
	// follow the first one stamped at -to: read on for the allowed skew
	// (within drops what is out of range).
	rsel := sel
	if !rsel.to.IsZero() {
		rsel.to = rsel.to.Add(r.skew)
	}
	spans, err := resolve(ctx, cl, r.dlq, rsel)
	if err != nil {
		return err
	}
	var dls []*deadLetter
	for _, s := range spans {
		err := read(ctx, cl, r.dlq, s, func(rec record) {
			e := header(rec.headers, event.HeaderDLQError)
			if sel.matches(e) && sel.within(rec.time) {
				d := &deadLetter{partition: s.partition, offset: rec.offset, time: rec.time,
					key: rec.key, value: rec.value, headers: rec.headers, err: e}
				d.topic, d.skip = r.route(d)
				dls = append(dls, d)
			}
		})
		if err != nil {
			return err
		}
	}
	parts := map[string][]int{}
	for _, d := range dls {
		if d.topic == "" {
			continue
		}
		if _, ok := parts[d.topic]; !ok {
			if parts[d.topic], err = partitions(ctx, cl, d.topic); err != nil {
				return err
			}
		}
		d.target = r.target(d, parts[d.topic])
	}
	if r.check && len(parts) > 0 {
		if err := r.markEarlier(ctx, cl, dls); err != nil {
			return err
		}
	}
	todo, done, skipped := 0, 0, 0
	fmt.Fprintf(stdout, "dead letters of %s selected:\n", r.dlq)
	for _, d := range dls {
		var mark string
		switch {
		case d.skip != "":
			mark = "  (not redrivable: " + d.skip + ")"
			skipped++
		case d.done:
			mark = "  (already redriven: skipped)"
			done++
		default:
			mark = fmt.Sprintf("  -> %s partition %d", d.topic, d.target)
			todo++
		}
		fmt.Fprintf(stdout, "  partition=%d offset=%d time=%s key=%q error=%q%s\n",
			d.partition, d.offset, d.time.UTC().Format(time.RFC3339), d.key, d.err, mark)
	}
	fmt.Fprintf(stdout, "%d selected, %d already redriven, %d to republish, %d not redrivable\n", len(dls), done, todo, skipped)
	if !execute {
		fmt.Fprintln(stdout, "dry run: nothing written; run again with -execute to republish")
		return nil
	}
	n, err := r.publish(ctx, cl, dls, todo)
	fmt.Fprintf(stdout, "republished %d of %d\n", n, todo)
	return err
}

// route is the topic a dead letter goes back to, or why it cannot be
// redriven. Only the request topic and the notification topic (when given)
// are written, each receiving only its own dead letters: a notification put
// on the request topic would be refused there as a malformed intent and
// never reach its result. A reduced dead letter (the consumer's publish
// reduce: Kafka refused the full form) holds no original message, or a
// prefix of one, or stands for a refused result: republishing it would only
// be refused again.
func (r *redriver) route(d *deadLetter) (topic, why string) {
	if refused := header(d.headers, consumer.HeaderRefused); refused != "" {
		return "", fmt.Sprintf("a reduced dead letter (%s refused the full form: %s), not the original message",
			cmp.Or(header(d.headers, consumer.HeaderRefusedTopic), "Kafka"), refused)
	}
	switch src := header(d.headers, event.HeaderDLQSourceTopic); {
	case src == "":
		return "", "no " + event.HeaderDLQSourceTopic + " header: its source topic is unknown"
	case src == r.requests:
		return src, ""
	case src == r.notifications:
		return src, ""
	case r.notifications == "":
		return "", fmt.Sprintf("from %s, not the request topic (a notification topic is redriven only with -notification-topic)", src)
	default:
		return "", fmt.Sprintf("from %s, neither the request topic nor the notification topic", src)
	}
}

// target is the partition of d.topic a dead letter goes back to: the one it
// came from when the header says so, else one chosen by its key (or, with
// no key, by its place in the dead-letter topic), so that every run picks
// the same partition and markEarlier reads only those.
func (r *redriver) target(d *deadLetter, parts []int) int {
	if p, err := strconv.Atoi(header(d.headers, event.HeaderDLQSourcePartition)); err == nil && slices.Contains(parts, p) {
		return p
	}
	h := fnv.New32a()
	if len(d.key) > 0 {
		h.Write(d.key)
	} else {
		fmt.Fprintf(h, "%s/%d/%d", r.dlq, d.partition, d.offset)
	}
	return parts[int(h.Sum32()%uint32(len(parts)))]
}

// markEarlier marks the dead letters an earlier run already republished: it
// reads the partitions they go to from the oldest one's time (less the
// allowed clock skew), since a redrive is written after its dead letter, and
// collects the provenance headers written there. Only redrives that
// retention has since deleted go unseen; the consumer's dedupe record (kept
// at least as long as the request topic's retention) answers those once.
func (r *redriver) markEarlier(ctx context.Context, cl *kafka.Client, dls []*deadLetter) error {
	var oldest time.Time
	targets := map[string]map[int]bool{}
	for _, d := range dls {
		if d.topic == "" {
			continue
		}
		if oldest.IsZero() || d.time.Before(oldest) {
			oldest = d.time
		}
		if targets[d.topic] == nil {
			targets[d.topic] = map[int]bool{}
		}
		targets[d.topic][d.target] = true
	}
	since := oldest.Add(-r.skew)
	seen := map[dlKey]bool{}
	for _, topic := range slices.Sorted(maps.Keys(targets)) {
		if err := r.scanEarlier(ctx, cl, topic, targets[topic], since, seen); err != nil {
			return err
		}
	}
	for _, d := range dls {
		d.done = seen[dlKey{d.partition, d.offset}]
	}
	return nil
}

// scanEarlier collects into seen the dead letters republished to the given
// partitions of topic since then.
func (r *redriver) scanEarlier(ctx context.Context, cl *kafka.Client, topic string, targets map[int]bool, since time.Time, seen map[dlKey]bool) error {
	spans, err := resolve(ctx, cl, topic, selection{from: since})
	if err != nil {
		return err
	}
	scanned := 0
	for _, s := range spans {
		if !targets[s.partition] {
			continue
		}
		err := read(ctx, cl, topic, s, func(rec record) {
			scanned++
			if header(rec.headers, HeaderSourceTopic) != r.dlq {
				return
			}
			p, err1 := strconv.Atoi(header(rec.headers, HeaderSourcePartition))
			o, err2 := strconv.ParseInt(header(rec.headers, HeaderSourceOffset), 10, 64)
			if err1 == nil && err2 == nil {
				seen[dlKey{p, o}] = true
			}
		})
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(r.progress, "redrive: looked for earlier redrives in %d messages of %s partitions %v since %s\n",
		scanned, topic, slices.Sorted(maps.Keys(targets)), since.UTC().Format(time.RFC3339))
	return nil
}

// publish republishes the dead letters not done yet, per topic and
// partition in batches acknowledged by every in-sync replica, and returns
// how many were written. It stops at the first error.
func (r *redriver) publish(ctx context.Context, cl *kafka.Client, dls []*deadLetter, total int) (int, error) {
	at := r.now().UTC()
	type dest struct {
		topic     string
		partition int
	}
	byDest := map[dest][]*deadLetter{}
	var dests []dest
	for _, d := range dls {
		if d.done || d.topic == "" {
			continue
		}
		k := dest{d.topic, d.target}
		if _, ok := byDest[k]; !ok {
			dests = append(dests, k)
		}
		byDest[k] = append(byDest[k], d)
	}
	sort.Slice(dests, func(i, j int) bool {
		return cmp.Or(cmp.Compare(dests[i].topic, dests[j].topic), cmp.Compare(dests[i].partition, dests[j].partition)) < 0
	})
	written := 0
	for _, k := range dests {
		topic, p := k.topic, k.partition
		todo := byDest[k]
		for len(todo) > 0 {
			batch := todo[:min(produceBatch, len(todo))]
			todo = todo[len(batch):]
			err := retry(ctx, func() error {
				// A try consumes the records' bytes: build them per try.
				recs := make([]kafka.Record, len(batch))
				for i, d := range batch {
					recs[i] = kafka.Record{Time: at, Key: bytesOrNil(d.key), Value: bytesOrNil(d.value), Headers: r.provenance(d, at)}
				}
				res, err := cl.Produce(ctx, &kafka.ProduceRequest{
					Topic: topic, Partition: p, RequiredAcks: kafka.RequireAll,
					Records: kafka.NewRecordReader(recs...),
				})
				if err == nil {
					err = res.Error
				}
				if err == nil && len(res.RecordErrors) > 0 {
					err = errors.Join(slices.Collect(maps.Values(res.RecordErrors))...)
				}
				return err
			})
			if err != nil {
				return written, fmt.Errorf("redrive: publish to %s partition %d: %w", topic, p, err)
			}
			written += len(batch)
			fmt.Fprintf(r.progress, "redrive: published %d/%d (%.0f%%)\n", written, total, float64(written)*100/float64(total))
		}
	}
	return written, nil
}

// provenance is a dead letter's headers for republishing: its own headers
// without the dead-letter ones (the consumer adds fresh ones if it fails
// again) or an earlier redrive's, then this redrive's.
func (r *redriver) provenance(d *deadLetter, at time.Time) []kafka.Header {
	var hs []kafka.Header
	for _, h := range d.headers {
		if !strings.HasPrefix(h.Key, hdrDLQPrefix) && !strings.HasPrefix(h.Key, hdrRedrivePrefix) {
			hs = append(hs, h)
		}
	}
	return append(hs,
		kafka.Header{Key: HeaderSourceTopic, Value: []byte(r.dlq)},
		kafka.Header{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(d.partition))},
		kafka.Header{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(d.offset, 10))},
		kafka.Header{Key: HeaderAt, Value: []byte(at.Format(time.RFC3339Nano))},
		kafka.Header{Key: HeaderBy, Value: []byte(r.by)},
	)
}

// retry runs op until it succeeds, fails for good, or the budget ends;
// Kafka's temporary errors (a leader moving, stale metadata) are retried.
// A produce retried after a lost reply may write a batch twice: the next run
// sees both as redriven and the consumer answers each intent once.
func retry(ctx context.Context, op func() error) error {
	b := backoff.NewExponentialBackOff(backoff.WithInitialInterval(100*time.Millisecond), backoff.WithMaxElapsedTime(30*time.Second))
	return backoff.Retry(func() error {
		err := op()
		var kerr kafka.Error
		if err != nil && !(errors.As(err, &kerr) && kerr.Temporary()) {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(b, ctx))
}

func bytesOrNil(b []byte) kafka.Bytes {
	if b == nil {
		return nil
	}
	return kafka.NewBytes(b)
}

// header is the first value of header key in hs, or "".
func header(hs []kafka.Header, key string) string { return tracing.Headers(hs).Get(key) }

// partitions lists a topic's partitions.
func partitions(ctx context.Context, cl *kafka.Client, topic string) ([]int, error) {
	parts, err := offsetrange.Partitions(ctx, cl, topic)
	if err != nil {
		return nil, fmt.Errorf("redrive: %w", err)
	}
	return parts, nil
}

// resolve turns a selection into offset spans of topic, clamped to what the
// partitions hold.
func resolve(ctx context.Context, cl *kafka.Client, topic string, sel selection) ([]span, error) {
	parts, err := partitions(ctx, cl, topic)
	if err != nil {
		return nil, err
	}
	var reqs []kafka.OffsetRequest
	for _, p := range parts {
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	bounds, err := listOffsets(ctx, cl, topic, reqs)
	if err != nil {
		return nil, err
	}
	var out []span
	if sel.offsets != nil {
		for p, se := range sel.offsets {
			b, ok := bounds[p]
			if !ok {
				return nil, fmt.Errorf("redrive: %s has no partition %d", topic, p)
			}
			out = append(out, span{p, max(se[0], b.FirstOffset), min(se[1], b.LastOffset)})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].partition < out[j].partition })
		return out, nil
	}
	at := func(t time.Time, dflt func(kafka.PartitionOffsets) int64) (map[int]int64, error) {
		res := map[int]int64{}
		if t.IsZero() {
			for _, p := range parts {
				res[p] = dflt(bounds[p])
			}
			return res, nil
		}
		var reqs []kafka.OffsetRequest
		for _, p := range parts {
			reqs = append(reqs, kafka.TimeOffsetOf(p, t))
		}
		po, err := listOffsets(ctx, cl, topic, reqs)
		if err != nil {
			return nil, err
		}
		for _, p := range parts {
			// No message at or after t: the partition's end.
			res[p] = bounds[p].LastOffset
			for off := range po[p].Offsets {
				if off >= 0 {
					res[p] = off
				}
			}
		}
		return res, nil
	}
	from, err := at(sel.from, func(b kafka.PartitionOffsets) int64 { return b.FirstOffset })
	if err != nil {
		return nil, err
	}
	to, err := at(sel.to, func(b kafka.PartitionOffsets) int64 { return b.LastOffset })
	if err != nil {
		return nil, err
	}
	for _, p := range parts {
		out = append(out, span{p, from[p], to[p]})
	}
	return out, nil
}

// listOffsets asks for reqs' offsets, retrying Kafka's temporary errors: a
// topic created a moment ago answers "not leader" until its leaders are
// elected.
func listOffsets(ctx context.Context, cl *kafka.Client, topic string, reqs []kafka.OffsetRequest) (map[int]kafka.PartitionOffsets, error) {
	var out map[int]kafka.PartitionOffsets
	err := retry(ctx, func() error {
		resp, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
		if err != nil {
			return fmt.Errorf("redrive: list offsets of %s: %w", topic, err)
		}
		out = map[int]kafka.PartitionOffsets{}
		for _, po := range resp.Topics[topic] {
			if po.Error != nil {
				return fmt.Errorf("redrive: list offsets of %s partition %d: %w", topic, po.Partition, po.Error)
			}
			out[po.Partition] = po
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// record is one message read, copied out of the fetch buffer.
type record struct {
	offset     int64
	time       time.Time
	key, value []byte
	headers    []kafka.Header
}

// read calls fn for every message of span s of topic, in offset order.
func read(ctx context.Context, cl *kafka.Client, topic string, s span, fn func(record)) error {
	off := s.start
	for off < s.end {
		var res *kafka.FetchResponse
		err := retry(ctx, func() error {
			var err error
			res, err = cl.Fetch(ctx, &kafka.FetchRequest{
				Topic: topic, Partition: s.partition, Offset: off,
				MinBytes: 1, MaxBytes: fetchMaxBytes, MaxWait: 500 * time.Millisecond,
			})
			if err == nil {
				err = res.Error
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("redrive: read %s partition %d at %d: %w", topic, s.partition, off, err)
		}
		next, err := drain(res.Records, off, s.end, fn)
		if closer, ok := res.Records.(io.Closer); ok {
			closer.Close()
		}
		if err != nil {
			return fmt.Errorf("redrive: read %s partition %d at %d: %w", topic, s.partition, off, err)
		}
		switch {
		case next > off:
			off = next
		case res.HighWatermark <= off:
			return nil // the span outran the partition (it was truncated)
		default:
			off++ // an offset with no record (a transaction marker)
		}
	}
	return nil
}

// drain reads the records of one fetch in [from, end) and returns the
// offset after the last one.
func drain(rr kafka.RecordReader, from, end int64, fn func(record)) (int64, error) {
	next := from
	for rr != nil {
		rec, err := rr.ReadRecord()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return next, err
		}
		if rec.Offset < from {
			continue // a batch may start before the offset asked for
		}
		if rec.Offset >= end {
			break
		}
		out := record{offset: rec.Offset, time: rec.Time}
		for _, h := range rec.Headers {
			out.headers = append(out.headers, kafka.Header{Key: h.Key, Value: slices.Clone(h.Value)})
		}
		if out.key, err = readBytes(rec.Key); err == nil {
			out.value, err = readBytes(rec.Value)
		}
		if err != nil {
			return next, err
		}
		fn(out)
		next = rec.Offset + 1
	}
	return next, nil
}

func readBytes(b protocol.Bytes) ([]byte, error) {
	if b == nil {
		return nil, nil
	}
	defer b.Close()
	return protocol.ReadAll(b)
}
