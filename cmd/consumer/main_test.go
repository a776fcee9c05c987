package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/consumer"
	"github.com/wxterm/wxterm/internal/e2e"
	"github.com/wxterm/wxterm/internal/testenv"
	"github.com/wxterm/wxterm/internal/wxsim"
)

// standInArgs are the service's flags for a Kafka and Redis from testenv
// (real ones when the environment names them) and a WeChat Pay simulator:
// the service binary itself links no stand-in.
func standInArgs(t *testing.T, httpAddr string) []string {
	t.Helper()
	brokers := testenv.Kafka(t)
	req, res, dlq := testenv.Topic(t, "req"), testenv.Topic(t, "res"), testenv.Topic(t, "dlq")
	testenv.CreateTopics(t, brokers, 2, req, res, dlq)
	keys, err := wxsim.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := keys.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	sim := httptest.NewServer(wxsim.New(keys.SimOptions()))
	t.Cleanup(sim.Close)
	c := e2e.Consumer{
		Brokers: brokers, Redis: testenv.RedisAddr(t),
		Requests: req, Results: res, DLQ: dlq, Group: "g-" + testenv.Unique(t), DedupePrefix: "wxterm:" + testenv.Unique(t) + ":",
		Keys: keys, MerchantKeyDir: dir, PubKeyDir: dir, WeChatURL: sim.URL, HTTPAddr: httpAddr,
	}
	return c.Args()
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(*config) bool
		wantErr string
	}{
		{"defaults", nil, nil, func(c *config) bool {
			return c.opts.RequestTopic == "contract-termination.requested" && c.opts.MaxInFlight == 64 && c.dedupeTTL == 720*time.Hour &&
				strings.Join(c.opts.Brokers, ",") == "127.0.0.1:9092" && len(c.opts.APIs) == len(event.APIs)
		}, ""},
		{"env fills flags", nil, map[string]string{"WXTERM_REQUEST_TOPIC": "t1", "WXTERM_MAX_IN_FLIGHT": "8"}, func(c *config) bool {
			return c.opts.RequestTopic == "t1" && c.opts.MaxInFlight == 8
		}, ""},
		{"flag beats env", []string{"-request-topic", "t2"}, map[string]string{"WXTERM_REQUEST_TOPIC": "t1"}, func(c *config) bool {
			return c.opts.RequestTopic == "t2"
		}, ""},
		{"lists bind into the options", []string{"-brokers", "b1:9092,b2:9092", "-allowed-apis", "papay_direct"}, nil, func(c *config) bool {
			return strings.Join(c.opts.Brokers, ",") == "b1:9092,b2:9092" && len(c.opts.APIs) == 1 && c.opts.APIs[0] == event.PapayDirect
		}, ""},
		{"unknown api", []string{"-allowed-apis", "alipay"}, nil, nil, `unknown api "alipay"`},
		{"unknown flag", []string{"-nope"}, nil, nil, "flag provided but not defined"},
		{"stray argument", []string{"extra"}, nil, nil, "unexpected arguments"},
		{"bad duration", []string{"-lease", "soon"}, nil, nil, "invalid value"},
		{"clock skew binds into the options", []string{"-clock-skew", "3s"}, nil, func(c *config) bool {
			return c.opts.ClockSkew == 3*time.Second
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var stderr bytes.Buffer
			c, err := parse(tt.args, &stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v; want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("got %+v", c)
			}
		})
	}
}

func TestHelpListsSettings(t *testing.T) {
	var stderr bytes.Buffer
	_, err := parse([]string{"-h"}, &stderr)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("got %v; want flag.ErrHelp", err)
	}
	for _, f := range []string{"-brokers", "-redis-addrs", "-mch-private-key-file", "-retry-max-elapsed", "-max-in-flight"} {
		if !strings.Contains(stderr.String(), f) {
			t.Errorf("help lacks %s", f)
		}
	}
}

func TestMissingMerchantSettingsIsAClearError(t *testing.T) {
	var out, errOut bytes.Buffer
	err := runMain(context.Background(), []string{"-http-addr", "127.0.0.1:0", "-redis-addrs", "127.0.0.1:1"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "-mchid") {
		t.Fatalf("got %v; want an error naming the missing merchant flags", err)
	}
}

func TestReplayRangeFlags(t *testing.T) {
	tests := []struct {
		in      replayConfig
		wantErr string
		check   func(consumer.ReplayRange) bool
	}{
		{replayConfig{offsets: "0:100-200, 3:0-50"}, "", func(r consumer.ReplayRange) bool {
			return r.Offsets[0] == [2]int64{100, 200} && r.Offsets[3] == [2]int64{0, 50} && len(r.Offsets) == 2
		}},
		{replayConfig{from: "2026-11-22T10:00:00+08:00"}, "", func(r consumer.ReplayRange) bool {
			return r.From.Equal(time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)) && r.To.IsZero()
		}},
		{replayConfig{}, "needs -replay-from", nil},
		{replayConfig{offsets: "0:200-100"}, "partition:start-end", nil},
		{replayConfig{offsets: "x"}, "partition:start-end", nil},
		{replayConfig{offsets: "1:0-5,1:6-9"}, "given twice", nil},
		{replayConfig{offsets: "0:1-2", from: "2026-11-22T10:00:00Z"}, "excludes", nil},
		{replayConfig{from: "yesterday"}, "-replay-from", nil},
		{replayConfig{from: "2026-11-22T10:00:00Z", to: "2026-11-22T09:00:00Z"}, "after", nil},
	}
	for _, tt := range tests {
		r, err := tt.in.replayRange()
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%+v: got %v; want an error containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !tt.check(r) {
			t.Errorf("%+v: got %+v, %v", tt.in, r, err)
		}
	}
}

// The README's settings table must list every flag with its variable, so
// the docs cannot drift from the code.
func TestReadmeListsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	newFlagSet(&config{}, io.Discard).VisitAll(func(f *flag.Flag) {
		env := envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		row := "| `-" + f.Name + "` | `" + env + "` |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README lacks the settings row for -%s (%s)", f.Name, env)
		}
	})
}

func TestSecuritySettingsAreChecked(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{nil, ""},
		{[]string{"-kafka-sasl-mechanism", "scram-sha-512", "-kafka-sasl-username", "u", "-kafka-sasl-password", "p"}, ""},
		{[]string{"-kafka-sasl-mechanism", "plain", "-kafka-sasl-username", "u", "-kafka-sasl-password", "p", "-kafka-tls"}, ""},
		{[]string{"-kafka-sasl-mechanism", "gssapi", "-kafka-sasl-username", "u", "-kafka-sasl-password", "p"}, "want plain"},
		{[]string{"-kafka-sasl-mechanism", "plain", "-kafka-sasl-username", "u"}, "needs -kafka-sasl-username and -kafka-sasl-password"},
		{[]string{"-kafka-sasl-username", "u"}, "mechanism is empty"},
		{[]string{"-kafka-tls-server-name", "kafka"}, "-kafka-tls is off"},
		{[]string{"-kafka-tls", "-kafka-tls-cert-file", "c.pem"}, "go together"},
		{[]string{"-kafka-tls", "-kafka-tls-ca-file", "/nonexistent/ca.pem"}, "-kafka-tls-ca-file"},
	}
	for _, tt := range tests {
		c, err := parse(tt.args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = kafkaSecurity(c)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%q: got %v; want %q", tt.args, err, tt.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "-kafka-sasl-password p") {
			t.Errorf("%q: the error echoes the password", tt.args)
		}
	}
}

// Regression: the consumer panicked on SIGTERM (a *run.SignalError matched
// into a value). SIGTERM must stop it cleanly with a nil error.
func TestSIGTERMStopsCleanly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	done := make(chan error, 1)
	args := standInArgs(t, addr)
	go func() {
		done <- runMain(context.Background(), args, io.Discard, io.Discard)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hc := &http.Client{Timeout: 5 * time.Second}
	if err := e2e.WaitReady(ctx, hc, addr, done); err != nil {
		t.Fatalf("consumer: %v", err)
	}
	if v, err := e2e.Metric(ctx, hc, "http://"+addr+"/metrics", "wxterm_ready"); err != nil || v != 1 {
		t.Errorf("/metrics wxterm_ready: got %v, %v; want 1", v, err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after SIGTERM: got %v; want nil", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("consumer did not stop within 40s of SIGTERM")
	}
}

func TestMerchantsFile(t *testing.T) {
	dir := t.TempDir()
	keys, err := wxsim.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	key, pub := filepath.Join(dir, wxsim.FileMerchantKey), filepath.Join(dir, wxsim.FilePublicKey)
	write := func(body string) string {
		p := filepath.Join(dir, "merchants.json")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	entry := func(mchid string, subs string) string {
		return fmt.Sprintf(`{"mchid":%q,"cert_serial":%q,"private_key_file":%q,"public_key_id":%q,"public_key_file":%q,"sub_mchids":[%s]}`,
			mchid, keys.MerchantCertSerial, key, keys.PublicKeyID, pub, subs)
	}
	tests := []struct {
		name, body  string
		args        []string
		wantDefault string
		wantSubs    map[string]int
		wantErr     string
	}{
		{"two merchants", `{"default":"1900000109","merchants":[` + entry("1900000109", `"1900000201"`) + `,` + entry("1900000110", "") + `]}`,
			nil, "1900000109", map[string]int{"1900000109": 1, "1900000110": 0}, ""},
		{"one merchant is the default", `{"merchants":[` + entry("1900000109", "") + `]}`, nil, "1900000109", map[string]int{"1900000109": 0}, ""},
		{"listed twice", `{"merchants":[` + entry("1", "") + `,` + entry("1", "") + `]}`, nil, "", nil, "listed twice"},
		{"unknown field", `{"merchants":[],"extra":1}`, nil, "", nil, "unknown field"},
		{"empty", `{"merchants":[]}`, nil, "", nil, "lists no merchants"},
		{"bad key file", `{"merchants":[{"mchid":"1","private_key_file":"/nonexistent"}]}`, nil, "", nil, "cannot load a private key"},
		{"with -mchid", `{"merchants":[]}`, []string{"-mchid", "1"}, "", nil, "not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parse(append([]string{"-merchants-file", write(tt.body)}, tt.args...), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			ms, def, err := buildMerchants(c)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v; want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if def != tt.wantDefault || len(ms) != len(tt.wantSubs) {
				t.Fatalf("got default %q and %d merchants; want %q and %d", def, len(ms), tt.wantDefault, len(tt.wantSubs))
			}
			for id, n := range tt.wantSubs {
				if m, ok := ms[id]; !ok || m.Client == nil || len(m.SubMchIDs) != n {
					t.Errorf("merchant %s: got %+v; want a client and %d sub-merchants", id, m, n)
				}
			}
		})
	}
}
