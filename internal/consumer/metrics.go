package consumer

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the consumer's Prometheus instruments. main registers them;
// the consumer only updates them.
type Metrics struct {
	Consumed     prometheus.Counter
	Outcomes     *prometheus.CounterVec   // api, event_type, reason
	CallDuration *prometheus.HistogramVec // api, op, status
	Stage        *prometheus.HistogramVec // stage: where an intent's time goes besides the call
	Retries      *prometheus.CounterVec   // api
	DedupeHits   *prometheus.CounterVec   // status: duplicate, unpublished, terminated_other
	InFlight     prometheus.Gauge
	CommitLag    *prometheus.GaugeVec // partition
	DeadLetters  prometheus.Counter
	Systemic     prometheus.Gauge
	Held         *prometheus.GaugeVec   // mchid, host
	OutputFault  prometheus.Gauge       // 1 while Kafka refuses output in a way that holds a partition
	Reduced      *prometheus.CounterVec // topic: answers published in a reduced form
}

// NewMetrics creates the instruments and registers them with reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Consumed: prometheus.NewCounter(prometheus.CounterOpts{Name: "wxterm_intents_consumed_total",
			Help: "Messages fetched from the request topic."}),
		Outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wxterm_outcomes_total",
			Help: "Result events published, by API, event type and failure reason."}, []string{"api", "event_type", "reason"}),
		CallDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "wxterm_wechat_call_duration_seconds",
			Help:    "WeChat Pay call latency by API, operation and HTTP status (\"error\" without an answer).",
			Buckets: []float64{.01, .025, .05, .1, .2, .3, .5, .75, 1, 2, 5, 10}}, []string{"api", "op", "status"}),
		Stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "wxterm_stage_duration_seconds",
			Help:    "Time an intent spends in each step around the WeChat Pay call: claim and store (dedupe scripts), publish (Kafka, acks=all), mark (dedupe published flag).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}}, []string{"stage"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wxterm_retries_total",
			Help: "Transient WeChat Pay failures retried, by API."}, []string{"api"}),
		DedupeHits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wxterm_dedupe_hits_total",
			Help: "Intents answered from the dedupe record without a call: duplicate (nothing published), unpublished (stored result published), terminated_other (contract terminated by another request)."},
			[]string{"status"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wxterm_in_flight",
			Help: "Intents fetched and not finished."}),
		CommitLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wxterm_commit_lag",
			Help: "Messages between the committed offset and the partition's end."}, []string{"partition"}),
		DeadLetters: prometheus.NewCounter(prometheus.CounterOpts{Name: "wxterm_dead_letters_total",
			Help: "Messages sent to the dead-letter topic."}),
		Systemic: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wxterm_systemic_fault",
			Help: "1 while a systemic WeChat Pay fault holds some merchant's calls (wxterm_held names which)."}),
		Held: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wxterm_held",
			Help: "1 while a systemic fault (its signature refused, answers not validating against its keys, NO_AUTH across its contracts) holds a merchant's calls to a WeChat Pay host; 0 once it cleared."},
			[]string{"mchid", "host"}),
		OutputFault: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wxterm_output_fault",
			Help: "1 while Kafka refuses the consumer's output so that a partition is held: a configuration fault (authorization, missing topic) or a headers-only dead letter refused."}),
		Reduced: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wxterm_outputs_reduced_total",
			Help: "Answers Kafka refused in full (too large, invalid) and published in a reduced form, by the topic the reduced form went to."}, []string{"topic"}),
	}
	if reg != nil {
		reg.MustRegister(m.Consumed, m.Outcomes, m.CallDuration, m.Stage, m.Retries, m.DedupeHits, m.InFlight, m.CommitLag, m.DeadLetters, m.Systemic, m.Held, m.OutputFault, m.Reduced)
	}
	return m
}

// Stages of an intent, the Stage histogram's label values.
const (
	stageClaim   = "claim"
	stageStore   = "store"
	stagePublish = "publish"
	stageMark    = "mark"
)

func (m *Metrics) observeStage(stage string, start time.Time) {
	m.Stage.WithLabelValues(stage).Observe(time.Since(start).Seconds())
}
