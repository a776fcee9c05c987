package consumer

import (
	"sync/atomic"

	"github.com/wxterm/wxterm/event"
)

// Stats counts what the consumer did since it started. Each count has one
// site, below, which also updates its Prometheus instrument.
type Stats struct {
	Consumed   atomic.Int64 // intents fetched
	Terminated atomic.Int64 // contract-terminated events published
	Failed     atomic.Int64 // terminate-failed events published
	DeadLetter atomic.Int64 // messages sent to the dead-letter topic
	Duplicates atomic.Int64 // intents answered before: no call, no event
}

// Label values of the DedupeHits counter.
const (
	hitDuplicate       = "duplicate"
	hitUnpublished     = "unpublished"
	hitTerminatedOther = "terminated_other"
)

// consumed counts a message fetched from the request topic.
func (c *Consumer) consumed() {
	c.stats.Consumed.Add(1)
	c.opts.Metrics.Consumed.Inc()
}

// published counts a result event written to Kafka.
func (c *Consumer) published(r *event.Result) {
	if r.EventType == event.TypeTerminated {
		c.stats.Terminated.Add(1)
	} else {
		c.stats.Failed.Add(1)
	}
	c.opts.Metrics.Outcomes.WithLabelValues(string(r.API), r.EventType, r.Reason).Inc()
}

// deadLettered counts a message written to the dead-letter topic.
func (c *Consumer) deadLettered() {
	c.stats.DeadLetter.Add(1)
	c.opts.Metrics.DeadLetters.Inc()
}

// duplicate counts an intent whose answer was published before.
func (c *Consumer) duplicate() {
	c.stats.Duplicates.Add(1)
	c.opts.Metrics.DedupeHits.WithLabelValues(hitDuplicate).Inc()
}
