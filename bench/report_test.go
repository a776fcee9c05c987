package main

import (
	"testing"
	"time"
)

func TestMedianRound(t *testing.T) {
	r := func(perIntent time.Duration) bRound { return bRound{perIntent: perIntent, sigCPU: 1000} }
	for _, tc := range []struct {
		name        string
		in          []bRound
		med, lo, hi float64
	}{
		{"one", []bRound{r(1250)}, 1.25, 1.25, 1.25},
		{"odd, out of order", []bRound{r(1320), r(1210), r(1260), r(1400), r(1190)}, 1.26, 1.19, 1.40},
		{"even: the higher middle", []bRound{r(1300), r(1200), r(1250), r(1220)}, 1.25, 1.20, 1.30},
	} {
		med, lo, hi := medianRound(tc.in)
		if med.ratio() != tc.med || lo != tc.lo || hi != tc.hi {
			t.Errorf("%s: median %.2f, range %.2f..%.2f; want %.2f, %.2f..%.2f", tc.name, med.ratio(), lo, hi, tc.med, tc.lo, tc.hi)
		}
	}
}

func TestStealShare(t *testing.T) {
	a := cpuSample{total: 1000, steal: 10}
	if got := stealShare(a, cpuSample{total: 1200, steal: 40}); got != 0.15 {
		t.Errorf("stealShare = %v; want 0.15 (30 of 200 ticks)", got)
	}
	if got := stealShare(a, a); got != 0 {
		t.Errorf("stealShare over no time = %v; want 0", got)
	}
}
