package consumer

import "testing"

// Regression: setDefaults treated a jitter of zero as unset and replaced it
// with 0.5, so -retry-jitter 0 silently kept the randomization. Zero now
// means no jitter; DefaultOptions carries the 0.5.
func TestZeroJitterMeansNoJitter(t *testing.T) {
	o := DefaultOptions()
	o.Retry.Jitter = 0
	o.setDefaults()
	if got := o.Retry.backoff().RandomizationFactor; got != 0 {
		t.Errorf("randomization factor of jitter 0: got %v; want 0", got)
	}
	if got := DefaultOptions().Retry.Jitter; got != 0.5 {
		t.Errorf("default jitter: got %v; want 0.5", got)
	}
}
