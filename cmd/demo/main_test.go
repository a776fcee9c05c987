package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// The demo is the README's first command: it must run the real job on the
// embedded services and prove its own promise (one result per intent, one
// terminate call per contract, a user's termination in WeChat reaching
// the results through its notification), exiting 0.
func TestDemoRunsToCompletion(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err := runMain(ctx, []string{"-embedded-kafka-port", "0", "-http-addr", "127.0.0.1:0"}, &out, &errOut)
	if err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
	}
	for _, want := range []string{
		"contract-terminated", "terminate-failed", "reason=rejected error=400 PARAM_ERROR",
		"reason=invalid_request", "already_terminated", "dead letter",
		"request_id=notification:", "origin=notification termination_mode=user",
		"every intent has exactly one result; every contract saw one terminate call",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}
