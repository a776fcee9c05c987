// Package e2e is the kit that the end-to-end tests, the benchmarks (bench/)
// and the fault suite (faults/) share to drive a consumer from the outside:
// creating topics and reading a consumer's /metrics.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/segmentio/kafka-go"
)

// CreateTopics creates topics (a topic that exists already is kept) and
// waits, up to 30 s, until each has its partitions and every partition a
// leader: a group that joins a topic without them never rebalances
// (kafka-go #1314).
func CreateTopics(ctx context.Context, cl *kafka.Client, topics ...kafka.TopicConfig) error {
	names := make([]string, len(topics))
	want := make(map[string]int, len(topics))
	for i, t := range topics {
		names[i], want[t.Topic] = t.Topic, t.NumPartitions
	}
	resp, err := cl.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: topics})
	if err != nil {
		return fmt.Errorf("create topics %v: %w", names, err)
	}
	for name, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", name, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
		if err == nil && topicsReady(md, want) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topics %v have no leaders after 30s (%v)", names, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topics %v not ready: %w", names, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Topics is the request, result and dead-letter topics of one consumer:
// the dead-letter topic with one partition, the others with partitions.
func Topics(partitions int, requests, results, dlq string) []kafka.TopicConfig {
	return []kafka.TopicConfig{
		{Topic: requests, NumPartitions: partitions, ReplicationFactor: 1},
		{Topic: results, NumPartitions: partitions, ReplicationFactor: 1},
		{Topic: dlq, NumPartitions: 1, ReplicationFactor: 1},
	}
}

// Topic is a topic configuration of one replica.
func Topic(name string, partitions int) kafka.TopicConfig {
	return kafka.TopicConfig{Topic: name, NumPartitions: partitions, ReplicationFactor: 1}
}

func topicsReady(md *kafka.MetadataResponse, want map[string]int) bool {
	if len(md.Topics) != len(want) {
		return false
	}
	for _, t := range md.Topics {
		if t.Error != nil || len(t.Partitions) != want[t.Name] {
			return false
		}
		for _, p := range t.Partitions {
			if p.Error != nil || p.Leader.Host == "" {
				return false
			}
		}
	}
	return true
}

// ErrNoMetric means the page has no sample of the metric asked for.
var ErrNoMetric = errors.New("metric not found")

// Metric reads a consumer's /metrics at url and sums the samples of one
// metric over all its label sets; a name with labels, as in
// m{stage="claim"}, sums the series that carry those labels. A histogram or
// summary is read through its _sum and _count.
func Metric(ctx context.Context, hc *http.Client, url, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("get %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", url, err)
	}
	fams := make([]*dto.MetricFamily, 0, len(families))
	for _, f := range families {
		fams = append(fams, f)
	}
	samples, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: model.Now()}, fams...)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", url, err)
	}
	metric, labels, err := parseSelector(name)
	if err != nil {
		return 0, err
	}
	sum, found := 0.0, false
	for _, s := range samples {
		if string(s.Metric[model.MetricNameLabel]) != metric || !hasLabels(s.Metric, labels) {
			continue
		}
		sum += float64(s.Value)
		found = true
	}
	if !found {
		return 0, fmt.Errorf("%s: %w", name, ErrNoMetric)
	}
	return sum, nil
}

// parseSelector splits m{a="x",b="y"} into m and its labels.
func parseSelector(sel string) (string, map[string]string, error) {
	name, rest, ok := strings.Cut(sel, "{")
	if !ok {
		return sel, nil, nil
	}
	labels := map[string]string{}
	rest, ok = strings.CutSuffix(rest, "}")
	if !ok {
		return "", nil, fmt.Errorf("metric selector %q: want name{label=\"value\",…}", sel)
	}
	for _, kv := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(kv, "=")
		uq, err := strconv.Unquote(v)
		if !ok || err != nil {
			return "", nil, fmt.Errorf("metric selector %q: want name{label=\"value\",…}", sel)
		}
		labels[k] = uq
	}
	return name, labels, nil
}

func hasLabels(m model.Metric, labels map[string]string) bool {
	for k, v := range labels {
		if string(m[model.LabelName(k)]) != v {
			return false
		}
	}
	return true
}
