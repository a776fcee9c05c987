package notify

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the endpoint. Build them once per process with NewMetrics.
type Metrics struct {
	received  prometheus.Counter
	verified  *prometheus.CounterVec // by event_type
	rejected  *prometheus.CounterVec // by cause
	published *prometheus.CounterVec // by event_type
	latency   *prometheus.HistogramVec
}

// NewMetrics registers the endpoint's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wxterm_notify_received_total", Help: "Notification requests received.",
		}),
		verified: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxterm_notify_verified_total", Help: "Notifications whose signature verified and whose resource decrypted, by event type.",
		}, []string{"event_type"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxterm_notify_rejected_total", Help: "Notification requests answered with a failure (WeChat Pay retries them), by cause.",
		}, []string{"cause"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxterm_notify_published_total", Help: "Notifications written to Kafka (acks=all) and acknowledged, by event type.",
		}, []string{"event_type"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "wxterm_notify_duration_seconds", Help: "Time to answer a notification request, by outcome (accepted or rejected).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"outcome"}),
	}
	reg.MustRegister(m.received, m.verified, m.rejected, m.published, m.latency)
	for _, c := range causes {
		m.rejected.WithLabelValues(string(c))
	}
	return m
}
