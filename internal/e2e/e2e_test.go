package e2e_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/internal/e2e"
	"github.com/wxterm/wxterm/internal/testenv"
)

func TestMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	outcomes := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "outcomes_total"}, []string{"api", "reason"})
	stage := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "stage_seconds"}, []string{"stage"})
	gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "in_flight"})
	reg.MustRegister(outcomes, stage, gauge)
	outcomes.WithLabelValues("a", "x").Add(2)
	outcomes.WithLabelValues("b", "x").Add(3)
	outcomes.WithLabelValues("b", "y").Add(5)
	stage.WithLabelValues("claim").Observe(0.25)
	stage.WithLabelValues("claim").Observe(0.5)
	stage.WithLabelValues("store").Observe(1)
	gauge.Set(7)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	for _, tc := range []struct {
		name string
		want float64
	}{
		{"outcomes_total", 10},
		{`outcomes_total{api="b"}`, 8},
		{`outcomes_total{api="b",reason="y"}`, 5},
		{`stage_seconds_sum{stage="claim"}`, 0.75},
		{`stage_seconds_count`, 3},
		{"in_flight", 7},
	} {
		got, err := e2e.Metric(context.Background(), http.DefaultClient, srv.URL, tc.name)
		if err != nil || got != tc.want {
			t.Errorf("Metric(%s): got %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	if _, err := e2e.Metric(context.Background(), http.DefaultClient, srv.URL, "absent"); !errors.Is(err, e2e.ErrNoMetric) {
		t.Errorf("Metric(absent): got %v; want ErrNoMetric", err)
	}
}

func TestCreateTopics(t *testing.T) {
	brokers := testenv.Kafka(t)
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	req, dlq := testenv.Topic(t, "req"), testenv.Topic(t, "dlq")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for range 2 { // a second creation keeps what exists
		if err := e2e.CreateTopics(ctx, cl, e2e.Topic(req, 3), e2e.Topic(dlq, 1)); err != nil {
			t.Fatal(err)
		}
	}
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{req, dlq}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, tp := range md.Topics {
		got[tp.Name] = len(tp.Partitions)
	}
	if got[req] != 3 || got[dlq] != 1 {
		t.Errorf("partitions: got %v; want %s:3 %s:1", got, req, dlq)
	}
}

func TestReadPartition(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.Topic(t, "res")
	testenv.CreateTopics(t, brokers, 1, topic)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Value: []byte("a")}, kafka.Message{Value: []byte("b")}, kafka.Message{Value: []byte("c")}); err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	var got []string
	e2e.ReadPartition(rctx, kafka.ReaderConfig{Brokers: brokers, Topic: topic, MaxWait: 100 * time.Millisecond},
		func(m kafka.Message) {
			if got = append(got, string(m.Value)); len(got) == 3 {
				stop()
			}
		},
		func(err error) bool { t.Errorf("read: %v", err); return false })
	if strings.Join(got, "") != "abc" {
		t.Errorf("read: got %q; want a, b, c in order", got)
	}
}
