package main

import "testing"

// The bench read the replay's summary with a pattern the consumer's line had
// outgrown (it gained the count of intents nothing answers), so scenario c
// failed with "replay printed no final progress line".
func TestReplayLineMatchesTheConsumersSummary(t *testing.T) {
	for _, l := range []string{
		"replayed 20000/20000 (100%): 20000 already answered (0 re-emitted, 0 not re-emitted: nothing answers them, see the log), 0 processed; 0.3s",
		"replayed 550/550 (100%): 550 already answered (545 re-emitted), 0 processed; 0.1s",
	} {
		m := replayLine.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("%q: got no match; want the summary parsed", l)
			continue
		}
		if m[1] != m[2] || m[6] == "" {
			t.Errorf("%q: got groups %q; want read, total, answered, re-emitted, processed, seconds", l, m[1:])
		}
	}
}
