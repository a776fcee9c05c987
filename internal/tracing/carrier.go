// Package tracing carries OpenTelemetry traces through the consumer: the W3C
// trace context (traceparent, tracestate) of an intent's Kafka headers
// continues into spans for claim, each WeChat Pay call, store and publish,
// and into the result's headers. Off by default: a no-op provider then only
// passes the intent's trace context through to the result.
package tracing

import (
	"github.com/segmentio/kafka-go"
)

// Headers is a propagation.TextMapCarrier over a Kafka message's headers.
// Keys are compared exactly: the W3C keys are lowercase, and Kafka header
// names are case-sensitive.
type Headers []kafka.Header

// Get returns the first value of key, or "": the one lookup of a Kafka
// header by name, for the trace context and every other header alike.
func (h Headers) Get(key string) string {
	for _, x := range h {
		if x.Key == key {
			return string(x.Value)
		}
	}
	return ""
}

// Set replaces every value of key with value.
func (h *Headers) Set(key, value string) {
	out := (*h)[:0:0]
	for _, x := range *h {
		if x.Key != key {
			out = append(out, x)
		}
	}
	*h = append(out, kafka.Header{Key: key, Value: []byte(value)})
}

// Keys lists the header names.
func (h *Headers) Keys() []string {
	keys := make([]string, len(*h))
	for i, x := range *h {
		keys[i] = x.Key
	}
	return keys
}
