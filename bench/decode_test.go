package main

import (
	"testing"

	"github.com/wxterm/wxterm/event"
)

// go test -run - -bench . ./bench/ : the micro-benchmarks of micro.go.

func BenchmarkDecodeIntent(b *testing.B) { benchDecodeIntent(b) }
func BenchmarkPeek(b *testing.B)         { benchPeek(b) }

func TestSampleIntentIsValid(t *testing.T) {
	if _, err := event.DecodeIntent(sampleIntent); err != nil {
		t.Fatal(err)
	}
}
