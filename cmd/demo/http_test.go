package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/wxterm/wxterm/internal/e2e"
)

// Regression: the local run lost /healthz, /readyz and /metrics when it
// left cmd/consumer (the old -demo served them on -http-addr). The demo
// serves them again, from the service's own handler.
func TestDemoServesHealthReadinessAndMetrics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runMain(ctx, []string{"-embedded", "-embedded-kafka-port", "0", "-http-addr", "127.0.0.1:0"}, pw, io.Discard)
		pw.Close()
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo: %v", err)
		}
	}()
	var addr string
	sc := bufio.NewScanner(pr)
	for addr == "" && sc.Scan() {
		if m := regexp.MustCompile(`/metrics on http://(\S+)`).FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if addr == "" {
		t.Fatal("the demo never printed its HTTP address")
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	if err := e2e.WaitReady(ctx, hc, addr, nil); err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: got %d; want 200", resp.StatusCode)
	}
	if v, err := e2e.Metric(ctx, hc, "http://"+addr+"/metrics", "wxterm_ready"); err != nil || v != 1 {
		t.Errorf("wxterm_ready: got %v, %v; want 1", v, err)
	}
	if _, err := e2e.Metric(ctx, hc, "http://"+addr+"/metrics", "wxterm_in_flight"); err != nil {
		t.Errorf("wxterm_in_flight: %v; want the consumer's metrics served", err)
	}
}
