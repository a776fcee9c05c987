// Package offsetrange selects offset ranges of a Kafka topic for the
// commands that re-read it (the consumer's -replay and redrive): it parses
// the "partition:start-end" lists their flags take and lists a topic's
// partitions, and parses the RFC 3339 time windows they take instead.
package offsetrange

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// Parse reads a comma-separated list of partition:start-end, such as
// "0:100-200,3:0-50", into [start, end] by partition. Blank items are
// skipped; a list without any item, a malformed item, a negative number, an
// end before its start or a partition given twice is an error.
func Parse(s string) (map[int][2]int64, error) {
	out := map[int][2]int64{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, rng, ok := strings.Cut(part, ":")
		st, en, ok2 := strings.Cut(rng, "-")
		pi, err1 := strconv.Atoi(p)
		si, err2 := strconv.ParseInt(st, 10, 64)
		ei, err3 := strconv.ParseInt(en, 10, 64)
		if !ok || !ok2 || err1 != nil || err2 != nil || err3 != nil || pi < 0 || si < 0 || ei < si {
			return nil, fmt.Errorf("%q: want partition:start-end, e.g. 0:100-200", part)
		}
		if _, dup := out[pi]; dup {
			return nil, fmt.Errorf("partition %d given twice", pi)
		}
		out[pi] = [2]int64{si, ei}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%q: want partition:start-end, e.g. 0:100-200", s)
	}
	return out, nil
}

// Window parses a time window [from, to) given as RFC 3339 flag values; an
// empty value is the zero time, and a set to must come after from. fromFlag
// and toFlag name the flags in errors.
func Window(from, to, fromFlag, toFlag string) (start, end time.Time, err error) {
	if from != "" {
		if start, err = time.Parse(time.RFC3339, from); err != nil {
			return start, end, fmt.Errorf("%s: %w", fromFlag, err)
		}
	}
	if to != "" {
		if end, err = time.Parse(time.RFC3339, to); err != nil {
			return start, end, fmt.Errorf("%s: %w", toFlag, err)
		}
		if !end.After(start) {
			return start, end, fmt.Errorf("%s must be after %s", toFlag, fromFlag)
		}
	}
	return start, end, nil
}

// Partitions returns the IDs of topic's partitions in ascending order; a
// topic without partitions is an error.
func Partitions(ctx context.Context, cl *kafka.Client, topic string) ([]int, error) {
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	var parts []int
	for _, t := range md.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("topic %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			parts = append(parts, p.ID)
		}
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("topic %s has no partitions", topic)
	}
	sort.Ints(parts)
	return parts, nil
}
