package main

// Issue 13 item 7 (verification per merchant) and issue 12 item 5 (the Redis
// durability check) at the service's start-up.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/e2e"
	"github.com/wxterm/wxterm/internal/testenv"
	"github.com/wxterm/wxterm/internal/wxapi"
	"github.com/wxterm/wxterm/internal/wxsim"
)

// verifyRig is a simulator, its keys on disk, and fresh topics for one
// consumer process.
type verifyRig struct {
	keys                   *wxsim.Keys
	sim                    *wxsim.Server
	url, dir               string
	brokers                []string
	requests, results, dlq string
}

func newVerifyRig(t *testing.T) *verifyRig {
	t.Helper()
	r := &verifyRig{dir: t.TempDir(), brokers: testenv.Kafka(t)}
	var err error
	if r.keys, err = wxsim.NewKeys(); err != nil {
		t.Fatal(err)
	}
	if err := r.keys.WriteFiles(r.dir); err != nil {
		t.Fatal(err)
	}
	r.sim = wxsim.New(r.keys.SimOptions())
	srv := httptest.NewServer(r.sim)
	t.Cleanup(srv.Close)
	r.url = srv.URL
	r.requests, r.results, r.dlq = testenv.Topic(t, "req"), testenv.Topic(t, "res"), testenv.Topic(t, "dlq")
	testenv.CreateTopics(t, r.brokers, 1, r.requests, r.results, r.dlq)
	return r
}

// merchantsFile writes a merchants file of the rig's merchant with extra
// fields, and returns its path.
func (r *verifyRig) merchantsFile(t *testing.T, extra map[string]any) string {
	t.Helper()
	m := map[string]any{
		"mchid": r.keys.MchID, "cert_serial": r.keys.MerchantCertSerial,
		"private_key_file": filepath.Join(r.dir, wxsim.FileMerchantKey),
	}
	for k, v := range extra {
		m[k] = v
	}
	b, err := json.Marshal(map[string]any{"merchants": []any{m}})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(r.dir, "merchants.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// args are the consumer's flags for the rig, its merchants from file.
func (r *verifyRig) args(t *testing.T, file, redisAddr string) []string {
	return []string{
		"-brokers", strings.Join(r.brokers, ","), "-redis-addrs", redisAddr,
		"-request-topic", r.requests, "-result-topic", r.results, "-dlq-topic", r.dlq,
		"-group", "g-" + testenv.Unique(t), "-dedupe-prefix", "wxterm:" + testenv.Unique(t) + ":",
		"-merchants-file", file,
		"-wechatpay-base-url", r.url, "-wechatpay-backup-url", r.url, "-wechatpay-global-url", r.url,
		"-http-addr", "127.0.0.1:0", "-log-format", "text",
	}
}

// A merchant in certificates mode, end to end through the service: the
// simulator signs with its platform certificate only, which the consumer
// downloads with the APIv3 key; an intent comes out terminated. Without the
// mode wired, the consumer verifies with the public key and every answer
// fails verification.
func TestCertificatesModeEndToEnd(t *testing.T) {
	r := newVerifyRig(t)
	r.sim.SetSigning(wxsim.SignCertificate)
	code := "CERTMODE" + strconv.FormatInt(time.Now().UnixNano(), 36)
	r.sim.Seed(wxsim.Contract{API: wxapi.CreditRepayment, OutContractCode: code})
	file := r.merchantsFile(t, map[string]any{
		"verification": "certificates", "apiv3_key_file": filepath.Join(r.dir, wxsim.FileAPIv3Key),
	})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	p := secureRun(t, ctx, r.args(t, file, testenv.RedisAddr(t)))

	in := event.Intent{SchemaVersion: event.SchemaVersion, RequestID: "req-" + code, RequestedAt: time.Now(), Source: "test",
		API: event.CreditRepayment, OutContractCode: code, Remark: "certificates mode"}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	w := &kafka.Writer{Addr: kafka.TCP(r.brokers...), Topic: r.requests, RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte(code), Value: b}); err != nil {
		t.Fatalf("publish intent: %v", err)
	}
	w.Close()

	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	go func() {
		select {
		case <-p.finished:
			rcancel()
		case <-rctx.Done():
		}
	}()
	var res event.Result
	e2e.ReadPartition(rctx, kafka.ReaderConfig{Brokers: r.brokers, Topic: r.results, Partition: 0, MaxWait: 250 * time.Millisecond},
		func(m kafka.Message) {
			if json.Unmarshal(m.Value, &res) == nil && res.RequestID == in.RequestID {
				rcancel()
			}
		}, func(error) bool { return rctx.Err() == nil })
	if res.RequestID != in.RequestID {
		t.Fatalf("no result for %s (consumer finished: %v)", in.RequestID, p.err)
	}
	if res.EventType != event.TypeTerminated || r.sim.Terminations(code) != 1 {
		t.Fatalf("got %s (%s %s), %d terminations; want %s and 1", res.EventType, res.Reason, res.Detail, r.sim.Terminations(code), event.TypeTerminated)
	}
	if err := p.stop(t); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("stop: %v", err)
	}
}

// A wrong APIv3 key cannot decrypt the platform certificates: start-up is
// refused, the error says what failed and never holds the key.
func TestWrongAPIv3KeyRefusedAtStart(t *testing.T) {
	r := newVerifyRig(t)
	const wrong = "0123456789abcdef0123456789ABCDEF"
	t.Setenv("TEST_WRONG_APIV3_KEY", wrong)
	for _, tt := range []struct {
		name string
		args func() []string
	}{
		{"merchants file, key from the environment", func() []string {
			return r.args(t, r.merchantsFile(t, map[string]any{"verification": "both", "apiv3_key_env": "TEST_WRONG_APIV3_KEY",
				"public_key_id": r.keys.PublicKeyID, "public_key_file": filepath.Join(r.dir, wxsim.FilePublicKey)}), testenv.RedisAddr(t))
		}},
		{"flags, key from WXTERM_APIV3_KEY", func() []string {
			t.Setenv("WXTERM_APIV3_KEY", wrong)
			a := e2e.Consumer{Brokers: r.brokers, Redis: testenv.RedisAddr(t), Requests: r.requests, Results: r.results, DLQ: r.dlq,
				Group: "g", DedupePrefix: "p:", Keys: r.keys, MerchantKeyDir: r.dir, PubKeyDir: r.dir, WeChatURL: r.url, HTTPAddr: "127.0.0.1:0"}
			return a.Args("-wechatpay-verification", "certificates")
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs secureLog
			err := runMain(t.Context(), tt.args(), &logs, &logs)
			if err == nil || !strings.Contains(err.Error(), "download platform certificates") || !strings.Contains(err.Error(), r.keys.MchID) {
				t.Fatalf("got %v; want a refusal naming the merchant and the certificate download", err)
			}
			if strings.Contains(err.Error(), wrong) || strings.Contains(logs.String(), wrong) {
				t.Errorf("the error or the log holds the APIv3 key: %v", err)
			}
		})
	}
}

// The APIv3 key's own checks never echo it either.
func TestAPIv3KeyErrorsDoNotEchoIt(t *testing.T) {
	r := newVerifyRig(t)
	const short = "tooshort-secret"
	keyFile := filepath.Join(r.dir, "short.key")
	if err := os.WriteFile(keyFile, []byte(short), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_SHORT_APIV3_KEY", short)
	for _, tt := range []struct {
		extra   map[string]any
		wantErr string
	}{
		{map[string]any{"verification": "certificates", "apiv3_key_file": keyFile}, "is not 32 bytes"},
		{map[string]any{"verification": "certificates", "apiv3_key_env": "TEST_SHORT_APIV3_KEY"}, "$TEST_SHORT_APIV3_KEY is not 32 bytes"},
		{map[string]any{"verification": "certificates", "apiv3_key_env": "TEST_UNSET_APIV3_KEY"}, "$TEST_UNSET_APIV3_KEY is not set"},
		{map[string]any{"verification": "certificates", "apiv3_key_env": "TEST_SHORT_APIV3_KEY", "apiv3_key_file": keyFile}, "keep one"},
		{map[string]any{"verification": "certificates"}, "apiv3 key of 32 bytes is required"},
		{map[string]any{"verification": "sometimes"}, `verification "sometimes"`},
	} {
		err := runMain(t.Context(), r.args(t, r.merchantsFile(t, tt.extra), testenv.RedisAddr(t)), &secureLog{}, &secureLog{})
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%v: got %v; want an error containing %q", tt.extra, err, tt.wantErr)
		} else if strings.Contains(err.Error(), short) {
			t.Errorf("%v: the error holds the key: %v", tt.extra, err)
		}
	}
}

func TestVerificationFlagsAreChecked(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"-wechatpay-verification", "sometimes"}, "not one of public_key, certificates, both"},
		{[]string{"-redis-durability-check", "lax"}, "want one of strict, warn, off"},
	} {
		if _, err := parse(tt.args, &secureLog{}); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%q: got %v; want an error containing %q", tt.args, err, tt.wantErr)
		}
	}
	// certificates mode needs no public key, but the APIv3 key.
	c, err := parse([]string{"-mchid", "1", "-mch-cert-serial", "S", "-mch-private-key-file", "k.pem", "-wechatpay-verification", "certificates"}, &secureLog{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.merchants.Entries(); err == nil || !strings.Contains(err.Error(), "needs the APIv3 key") {
		t.Errorf("certificates mode without a key: got %v; want an error naming the APIv3 key", err)
	}
}

// Issue 12 item 5: a Redis that may evict records is refused at start-up
// with a clear error (strict, the default); warn starts with a warning;
// a noeviction Redis starts under strict.
func TestEvictingRedisRefusedAtStart(t *testing.T) {
	r := newVerifyRig(t)
	lru := testenv.PrivateRedis(t, "--maxmemory-policy", "allkeys-lru")
	safe := testenv.PrivateRedis(t, "--maxmemory-policy", "noeviction")
	file := r.merchantsFile(t, map[string]any{"public_key_id": r.keys.PublicKeyID, "public_key_file": filepath.Join(r.dir, wxsim.FilePublicKey)})

	err := runMain(t.Context(), r.args(t, file, lru), &secureLog{}, &secureLog{})
	if err == nil || !strings.Contains(err.Error(), "maxmemory-policy noeviction") || !strings.Contains(err.Error(), "allkeys-lru") {
		t.Fatalf("strict on allkeys-lru: got %v; want a refusal naming the policy and the fix", err)
	}

	for _, tt := range []struct {
		name, addr, mode, wantLog string
	}{
		{"warn on allkeys-lru", lru, "warn", "redis durability not confirmed"},
		{"strict on noeviction", safe, "strict", ""},
		{"off on allkeys-lru", lru, "off", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			p := secureRun(t, ctx, append(r.args(t, file, tt.addr), "-redis-durability-check", tt.mode))
			for !strings.Contains(p.logs.String(), "consumer started") {
				select {
				case <-p.finished:
					t.Fatalf("consumer exited: %v", p.err)
				case <-ctx.Done():
					t.Fatal("consumer never started")
				case <-time.After(20 * time.Millisecond): // polling the log, not a timed assertion
				}
			}
			if got := strings.Contains(p.logs.String(), "redis durability not confirmed"); got != (tt.wantLog != "") {
				t.Errorf("warning logged: got %v; want %v\n%s", got, tt.wantLog != "", p.logs.String())
			}
		})
	}
}

// The chart's certificates render (scripts/helm.sh): the one merchant
// verifies with platform certificates, its APIv3 key comes from the chart's
// Secret as WXTERM_APIV3_KEY (never the ConfigMap), and no public key is
// asked for; the default render says public_key and asks for no APIv3 key.
func TestHelmVerificationMode(t *testing.T) {
	for _, tc := range []struct {
		render, mode string
		apiv3        bool
	}{
		{"default", "public_key", false},
		{"certificates", "certificates", true},
	} {
		t.Run(tc.render, func(t *testing.T) {
			r := loadRender(t, tc.render)
			for _, pc := range r.podContainers() {
				env := r.containerEnv(t, pc.c)
				if v := env["WXTERM_WECHATPAY_VERIFICATION"]; !v.literal || v.value != tc.mode {
					t.Errorf("%s: WXTERM_WECHATPAY_VERIFICATION %+v; want %s", pc.owner, v, tc.mode)
				}
				key, ok := env["WXTERM_APIV3_KEY"]
				if ok != tc.apiv3 {
					t.Fatalf("%s: WXTERM_APIV3_KEY set: %v; want %v", pc.owner, ok, tc.apiv3)
				}
				if !tc.apiv3 {
					continue
				}
				ref := key.secretRef
				if ref == nil {
					t.Fatalf("%s: WXTERM_APIV3_KEY from %s; want a secretKeyRef", pc.owner, key.source)
				}
				sec, ok := r.secrets[ref.Name]
				if !ok || len(sec.Data[ref.Key]) != 32 {
					t.Errorf("%s: WXTERM_APIV3_KEY refers to %s/%s; want the chart's Secret holding the 32-byte key", pc.owner, ref.Name, ref.Key)
				}
				for _, name := range []string{"WXTERM_WECHATPAY_PUBLIC_KEY_ID", "WXTERM_WECHATPAY_PUBLIC_KEY_FILE"} {
					if _, ok := env[name]; ok {
						t.Errorf("%s: got %s in certificates mode; want no public key", pc.owner, name)
					}
				}
			}
		})
	}
}
