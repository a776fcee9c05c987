package dedupe_test

import (
	"fmt"
	"testing"

	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/testenv"
)

// BenchmarkHotPath measures one intent's store path: Claim, Complete
// (terminated) and MarkPublished, three round trips, on a fresh contract.
func BenchmarkHotPath(b *testing.B) {
	rdb := testenv.Redis(b)
	s := dedupe.New(rdb, dedupe.Options{})
	if err := s.Load(b.Context()); err != nil {
		b.Fatal(err)
	}
	ev := make([]byte, 900)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		c, req := fmt.Sprint("HOT", i), fmt.Sprint("r", i)
		if _, err := s.Claim(b.Context(), c, req, "w"); err != nil {
			b.Fatal(err)
		}
		if err := s.Complete(b.Context(), c, req, "w", dedupe.KindTerminated, ev); err != nil {
			b.Fatal(err)
		}
		if err := s.MarkPublished(b.Context(), c, req); err != nil {
			b.Fatal(err)
		}
	}
}
