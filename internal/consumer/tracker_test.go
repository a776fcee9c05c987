package consumer

import "testing"

func TestTrackerCommitsLowestUnfinished(t *testing.T) {
	tr := newTracker()
	if _, ok := tr.committable(); ok {
		t.Fatal("got a committable offset before any fetch")
	}
	for _, off := range []int64{10, 11, 12, 13} {
		tr.add(off)
	}
	steps := []struct {
		done int64
		want int64
	}{
		{12, 10}, // a later offset finishing first commits nothing past 10
		{11, 10},
		{10, 13}, // 10, 11, 12 done: 13 is the lowest unfinished
		{13, 14}, // all done: commit past the last fetched
	}
	for _, s := range steps {
		tr.done(s.done)
		if got, _ := tr.committable(); got != s.want {
			t.Errorf("after done(%d): got %d; want %d", s.done, got, s.want)
		}
	}
	if n := tr.inFlight(); n != 0 {
		t.Errorf("got %d in flight; want 0", n)
	}
}
