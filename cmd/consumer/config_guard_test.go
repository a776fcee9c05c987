package main

import (
	"context"
	"io"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/wxterm/wxterm/event"
)

// Review of issue 11: every flag the service had at 6f90542 (before the
// restructuring) still exists with the same default; only the local run's
// -demo, -embedded, -keep-running and -embedded-kafka-port moved to cmd/demo.
// Deployments set these flags (or their WXTERM_ variables): losing one, or
// changing its default, changes a running service.
func TestFlagsOfBeforeTheRestructuringRemain(t *testing.T) {
	// name, default as `consumer -h` printed it at 6f90542 ("" is the zero value).
	before := []struct{ name, def string }{
		{"allowed-apis", "credit_repayment,papay_partner,papay_direct,global_papay"},
		{"allowed-sub-mchids", ""},
		{"brokers", "127.0.0.1:9092"},
		{"commit-interval", "200ms"},
		{"dedupe-prefix", "wxterm:contract:"},
		{"dedupe-ttl", "720h0m0s"},
		{"dlq-topic", "contract-termination.dlq"},
		{"group", "contract-terminator"},
		{"heartbeat-interval", "3s"},
		{"http-addr", ":8080"},
		{"kafka-sasl-mechanism", ""},
		{"kafka-sasl-password", ""},
		{"kafka-sasl-username", ""},
		{"kafka-tls", ""},
		{"kafka-tls-ca-file", ""},
		{"kafka-tls-cert-file", ""},
		{"kafka-tls-key-file", ""},
		{"kafka-tls-server-name", ""},
		{"lease", "30s"},
		{"log-format", "json"},
		{"log-level", "info"},
		{"max-in-flight", "64"},
		{"mch-cert-serial", ""},
		{"mch-private-key-file", ""},
		{"mchid", ""},
		{"merchants-file", ""},
		{"rate-limit", ""},
		{"redis-addrs", "127.0.0.1:6379"},
		{"redis-db", ""},
		{"redis-password", ""},
		{"redis-tls", ""},
		{"redis-tls-ca-file", ""},
		{"redis-tls-cert-file", ""},
		{"redis-tls-key-file", ""},
		{"redis-tls-server-name", ""},
		{"redis-username", ""},
		{"replay", ""},
		{"replay-dry-run", ""},
		{"replay-from", ""},
		{"replay-offsets", ""},
		{"replay-reemit", ""},
		{"replay-to", ""},
		{"request-topic", "contract-termination.requested"},
		{"result-topic", "contract-termination.results"},
		{"retry-initial", "200ms"},
		{"retry-jitter", "0.5"},
		{"retry-max", "10s"},
		{"retry-max-elapsed", "2m0s"},
		{"retry-multiplier", "2"},
		{"session-timeout", "10s"},
		{"shutdown-timeout", "20s"},
		{"systemic-probe-interval", "5s"},
		{"wechatpay-backup-url", "https://api2.mch.weixin.qq.com"},
		{"wechatpay-base-url", "https://api.mch.weixin.qq.com"},
		{"wechatpay-global-url", "https://apihk.mch.weixin.qq.com"},
		{"wechatpay-public-key-file", ""},
		{"wechatpay-public-key-id", ""},
		{"wechatpay-timeout", "10s"},
	}
	fs := newFlagSet(&config{}, io.Discard)
	zero := []string{"", "0", "false", "0s"}
	for _, f := range before {
		got := fs.Lookup(f.name)
		if got == nil {
			t.Errorf("-%s: gone; want it kept", f.name)
			continue
		}
		if f.def == "" && !slices.Contains(zero, got.DefValue) || f.def != "" && got.DefValue != f.def {
			t.Errorf("-%s default: got %q; want %q", f.name, got.DefValue, f.def)
		}
	}
}

// The list flags now parse their value themselves: from the environment, a
// list with spaces and empty items still means what it meant.
func TestListFlagsFromEnvironment(t *testing.T) {
	t.Setenv("WXTERM_BROKERS", "k1:9092, k2:9092,")
	t.Setenv("WXTERM_ALLOWED_APIS", "papay_direct , global_papay")
	c, err := parse(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"k1:9092", "k2:9092"}; !slices.Equal(c.opts.Brokers, want) {
		t.Errorf("brokers: got %q; want %q", c.opts.Brokers, want)
	}
	if want := []event.API{event.PapayDirect, event.GlobalPapay}; !slices.Equal(c.opts.APIs, want) {
		t.Errorf("allowed apis: got %q; want %q", c.opts.APIs, want)
	}
}

// Issue 11 acceptance: nothing is written into the configuration after
// parsing. Found in review: buildMerchants (wiring.go) writes
// -allowed-sub-mchids into c.merchants.SubMchIDs.
func TestBuildDoesNotMutateConfig(t *testing.T) {
	args := append(standInArgs(t, "127.0.0.1:0"), "-allowed-sub-mchids", "1900009991,1900009992")
	c, err := parse(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	before := *c
	s, err := build(context.Background(), c, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s.close()
	if !reflect.DeepEqual(before, *c) {
		if !reflect.DeepEqual(before.merchants, c.merchants) {
			t.Errorf("build changed c.merchants: got %+v; want %+v", c.merchants, before.merchants)
		} else {
			t.Errorf("build changed the configuration it was given")
		}
	}
}

// Issue 11 acceptance: the service binary links no stand-in (kfake,
// franz-go, miniredis, the simulator), so the image does not ship them.
func TestServiceLinksNoStandIns(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		for _, s := range []string{"kfake", "franz-go", "miniredis", "wxsim"} {
			if strings.Contains(p, s) {
				t.Errorf("cmd/consumer links %s; want no stand-in", p)
			}
		}
	}
}

// Regression: -max-in-flight 0 silently became 64 (the consumer took zero
// for unset). No call could ever start with a bound of 0, so it is refused.
func TestZeroMaxInFlightRefused(t *testing.T) {
	for _, v := range []string{"0", "-3"} {
		if _, err := parse([]string{"-max-in-flight", v}, io.Discard); err == nil || !strings.Contains(err.Error(), "max-in-flight") {
			t.Errorf("-max-in-flight %s: got %v; want an error naming the flag", v, err)
		}
	}
}

// Regression: -retry-jitter 0 silently became 0.5; it now means no jitter.
func TestZeroRetryJitterKept(t *testing.T) {
	c, err := parse([]string{"-retry-jitter", "0"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.opts.Retry.Jitter != 0 {
		t.Errorf("jitter: got %v; want 0", c.opts.Retry.Jitter)
	}
}
