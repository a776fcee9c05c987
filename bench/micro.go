package main

import (
	"testing"
	"time"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/intentid"
)

// Micro-benchmarks behind the profile's findings, run in the same bench run
// (testing.Benchmark) and by `go test -bench . ./bench/`.

// sampleIntent is one encoded intent as the bench produces them.
var sampleIntent = intent("BBENCH0000001", time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)).Value

// benchDecodeIntent is what the replay and the live path pay per message to
// validate and decode an intent (JSON Schema, then encoding/json).
func benchDecodeIntent(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := event.DecodeIntent(sampleIntent); err != nil {
			b.Fatal(err)
		}
	}
}

// benchPeek reads only the two fields the replay needs to look an intent up
// in the dedupe store (intentid.Peek, the replay's fast path).
func benchPeek(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := intentid.Peek(sampleIntent, nil); !ok {
			b.Fatal("not peeked")
		}
	}
}

// micro runs f for at least 200 ms and returns its time per operation.
func micro(f func(*testing.B)) (time.Duration, int64) {
	r := testing.Benchmark(f)
	if r.N == 0 {
		return 0, 0
	}
	return time.Duration(r.NsPerOp()), r.AllocsPerOp()
}
