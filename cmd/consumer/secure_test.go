package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/e2e"
	"github.com/wxterm/wxterm/internal/wxapi"
	"github.com/wxterm/wxterm/internal/wxsim"
)

// The secured services these tests need, started by scripts/kafka-secure.sh
// and scripts/redis-secure.sh, which print these variables (see scripts/test.sh).
const (
	envKafkaSecure        = "WXTERM_TEST_KAFKA_SECURE_ADDR"                   // SASL_SSL: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
	envKafkaSecureSASL    = "WXTERM_TEST_KAFKA_SECURE_SASL_PLAINTEXT_ADDR"    // SASL_PLAINTEXT, same secureMechanisms
	envKafkaSecureMTLS    = "WXTERM_TEST_KAFKA_SECURE_MTLS_ADDR"              // SSL, client certificate required
	envKafkaSecureCA      = "WXTERM_TEST_KAFKA_SECURE_CA_FILE"                // signs the broker and client certificates
	envKafkaSecureCert    = "WXTERM_TEST_KAFKA_SECURE_CERT_FILE"              // client certificate
	envKafkaSecureKey     = "WXTERM_TEST_KAFKA_SECURE_KEY_FILE"               // client key
	envKafkaSecureUser    = "WXTERM_TEST_KAFKA_SECURE_USER"                   // SASL user of every mechanism
	envKafkaSecurePlainPw = "WXTERM_TEST_KAFKA_SECURE_PLAIN_PASSWORD"         // its PLAIN password
	envKafkaSecure256Pw   = "WXTERM_TEST_KAFKA_SECURE_SCRAM_SHA_256_PASSWORD" // its SCRAM-SHA-256 password
	envKafkaSecure512Pw   = "WXTERM_TEST_KAFKA_SECURE_SCRAM_SHA_512_PASSWORD" // its SCRAM-SHA-512 password

	envRedisSecure          = "WXTERM_TEST_REDIS_SECURE_ADDR"             // TLS port only
	envRedisSecureCA        = "WXTERM_TEST_REDIS_SECURE_CA_FILE"          // signs the server and client certificates
	envRedisSecureCert      = "WXTERM_TEST_REDIS_SECURE_CERT_FILE"        // client certificate (optional for the server)
	envRedisSecureKey       = "WXTERM_TEST_REDIS_SECURE_KEY_FILE"         // client key
	envRedisSecureUser      = "WXTERM_TEST_REDIS_SECURE_USER"             // ACL user
	envRedisSecurePassword  = "WXTERM_TEST_REDIS_SECURE_PASSWORD"         // its password
	envRedisSecureDefaultPw = "WXTERM_TEST_REDIS_SECURE_DEFAULT_PASSWORD" // requirepass of the default user
)

// secureEnv returns the named variables; when one is unset it skips the test,
// or fails it under CI=true (CI must run against the real secured services).
func secureEnv(t *testing.T, names ...string) map[string]string {
	t.Helper()
	env := make(map[string]string, len(names))
	var missing []string
	for _, n := range names {
		if env[n] = os.Getenv(n); env[n] == "" {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		unset := missing[0]
		if len(missing) > 1 {
			unset += fmt.Sprintf(" and %d more", len(missing)-1)
		}
		msg := "secured services not configured: " + unset + " unset " +
			`(start them with: vars=$(scripts/kafka-secure.sh start) && eval "export $vars", likewise scripts/redis-secure.sh; scripts/test.sh does)`
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: " + msg)
		}
		t.Skip(msg)
	}
	return env
}

func secureKafkaEnv(t *testing.T) map[string]string {
	return secureEnv(t, envKafkaSecure, envKafkaSecureSASL, envKafkaSecureMTLS, envKafkaSecureCA, envKafkaSecureCert,
		envKafkaSecureKey, envKafkaSecureUser, envKafkaSecurePlainPw, envKafkaSecure256Pw, envKafkaSecure512Pw)
}

func secureRedisEnv(t *testing.T) map[string]string {
	return secureEnv(t, envRedisSecure, envRedisSecureCA, envRedisSecureCert, envRedisSecureKey, envRedisSecureUser,
		envRedisSecurePassword, envRedisSecureDefaultPw)
}

func secureRandHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// secureParse parses args as the consumer would.
func secureParse(t *testing.T, args ...string) *config {
	t.Helper()
	c, err := parse(args, io.Discard)
	if err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return c
}

// secureKafkaSecurity parses args and builds the dialer and transport the
// consumer would use; it fails the test if TLS or SASL comes out off.
func secureKafkaSecurity(t *testing.T, args ...string) (*kafka.Dialer, kafka.RoundTripper) {
	t.Helper()
	d, tr, err := kafkaSecurity(secureParse(t, args...))
	if err != nil {
		t.Fatalf("kafkaSecurity: %v", err)
	}
	if d == nil || tr == nil {
		t.Fatalf("kafkaSecurity(%q) = nil dialer or transport: want TLS and/or SASL", args)
	}
	if kt, ok := tr.(*kafka.Transport); ok {
		t.Cleanup(kt.CloseIdleConnections)
	}
	return d, tr
}

// secureKafkaTLSArgs are the flags of TLS to the secured broker, verified with its CA.
func secureKafkaTLSArgs(env map[string]string) []string {
	return []string{"-kafka-tls", "-kafka-tls-ca-file", env[envKafkaSecureCA]}
}

func secureSASLArgs(mech, user, password string) []string {
	return []string{"-kafka-sasl-mechanism", mech, "-kafka-sasl-username", user, "-kafka-sasl-password", password}
}

// securePassword is the secured broker's password of mech.
func securePassword(env map[string]string, mech string) string {
	switch mech {
	case "plain":
		return env[envKafkaSecurePlainPw]
	case "scram-sha-256":
		return env[envKafkaSecure256Pw]
	}
	return env[envKafkaSecure512Pw]
}

var secureMechanisms = []string{"plain", "scram-sha-256", "scram-sha-512"}

// secureCreateTopics creates single-partition topics through tr and waits for their leaders.
func secureCreateTopics(t *testing.T, addr string, tr kafka.RoundTripper, topics ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := &kafka.Client{Addr: kafka.TCP(addr), Transport: tr, Timeout: 10 * time.Second}
	cfgs := make([]kafka.TopicConfig, len(topics))
	for i, name := range topics {
		cfgs[i] = e2e.Topic(name, 1)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := cl.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: topics}); err != nil {
			t.Logf("delete topics %v: %v", topics, err)
		}
	})
	if err := e2e.CreateTopics(ctx, cl, cfgs...); err != nil {
		t.Fatal(err)
	}
}

// secureRoundTrip creates a topic, writes a message through the transport with
// acks=all, reads it back through the dialer in a consumer group, commits
// it and checks the commit.
func secureRoundTrip(t *testing.T, addr string, d *kafka.Dialer, tr kafka.RoundTripper) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topic, group := "wxterm-secure-"+secureRandHex(6), "wxterm-secure-"+secureRandHex(6)
	secureCreateTopics(t, addr, tr, topic)

	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: topic, Transport: tr, RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond, MaxAttempts: 3, WriteTimeout: 10 * time.Second}
	value := "hello " + secureRandHex(4)
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte(value)}); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close writer: %v", err)
	}

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Dialer: d, Topic: topic, GroupID: group,
		StartOffset: kafka.FirstOffset, MaxWait: 250 * time.Millisecond})
	defer r.Close()
	m, err := r.FetchMessage(ctx)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if string(m.Value) != value {
		t.Fatalf("read %q; want %q", m.Value, value)
	}
	if err := r.CommitMessages(ctx, m); err != nil {
		t.Fatalf("commit: %v", err)
	}
	cl := &kafka.Client{Addr: kafka.TCP(addr), Transport: tr, Timeout: 10 * time.Second}
	off, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0}}})
	if err != nil {
		t.Fatalf("offset fetch: %v", err)
	}
	if p := off.Topics[topic]; len(p) != 1 || p[0].CommittedOffset != m.Offset+1 {
		t.Fatalf("committed offsets %+v; want %d", off.Topics[topic], m.Offset+1)
	}
}

// secureMustFail asks the broker for metadata through tr and the dialer, and
// checks both fail within the time bound with an error that names none of
// the secrets.
func secureMustFail(t *testing.T, addr string, d *kafka.Dialer, tr kafka.RoundTripper, want func(error) bool, secrets ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	cl := &kafka.Client{Addr: kafka.TCP(addr), Transport: tr, Timeout: 10 * time.Second}
	_, err := cl.Metadata(ctx, &kafka.MetadataRequest{})
	check := func(what string, err error) {
		t.Helper()
		switch {
		case err == nil:
			t.Fatalf("%s: succeeded; want an error", what)
		case ctx.Err() != nil:
			t.Fatalf("%s: hung until the deadline (%v): %v", what, time.Since(start), err)
		case want != nil && !want(err):
			t.Errorf("%s: unexpected error: %v", what, err)
		}
		for _, s := range secrets {
			if s != "" && strings.Contains(err.Error(), s) {
				t.Errorf("%s: error text contains a password: %v", what, err)
			}
		}
		t.Logf("%s: %v (after %v)", what, err, time.Since(start).Round(time.Millisecond))
	}
	check("transport", err)
	if d != nil {
		start = time.Now()
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			// A dialer without SASL connects; the broker refuses the first request.
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			_, err = conn.ReadPartitions()
			conn.Close()
		}
		check("dialer", err)
	}
}

func secureAuthFailure(err error) bool {
	return errors.Is(err, kafka.SASLAuthenticationFailed) || strings.Contains(err.Error(), "SASL Authentication Failed")
}

func secureCertError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "x509") || strings.Contains(s, "certificate")
}

func TestSecureKafkaMechanismsOverTLS(t *testing.T) {
	env := secureKafkaEnv(t)
	addr, user := env[envKafkaSecure], env[envKafkaSecureUser]
	for _, mech := range secureMechanisms {
		t.Run(mech, func(t *testing.T) {
			args := append(secureKafkaTLSArgs(env), secureSASLArgs(mech, user, securePassword(env, mech))...)
			d, tr := secureKafkaSecurity(t, args...)
			secureRoundTrip(t, addr, d, tr)
		})
	}
	// TLS with a client certificate (the listener requests one) and SCRAM.
	t.Run("scram-sha-512 with client certificate", func(t *testing.T) {
		args := append(secureKafkaTLSArgs(env), "-kafka-tls-cert-file", env[envKafkaSecureCert], "-kafka-tls-key-file", env[envKafkaSecureKey],
			"-kafka-tls-server-name", "localhost")
		args = append(args, secureSASLArgs("SCRAM-SHA-512", user, securePassword(env, "scram-sha-512"))...)
		d, tr := secureKafkaSecurity(t, args...)
		secureRoundTrip(t, addr, d, tr)
	})
}

// SASL without TLS (the SASL_PLAINTEXT listener): the dialer and transport
// must carry the mechanism even when TLS is off.
func TestSecureKafkaSASLWithoutTLS(t *testing.T) {
	env := secureKafkaEnv(t)
	for _, mech := range []string{"plain", "scram-sha-256"} {
		t.Run(mech, func(t *testing.T) {
			d, tr := secureKafkaSecurity(t, secureSASLArgs(mech, env[envKafkaSecureUser], securePassword(env, mech))...)
			if d.TLS != nil {
				t.Fatal("TLS on without -kafka-tls")
			}
			secureRoundTrip(t, env[envKafkaSecureSASL], d, tr)
		})
	}
}

// Mutual TLS alone: the SSL listener requires a client certificate.
func TestSecureKafkaMutualTLS(t *testing.T) {
	env := secureKafkaEnv(t)
	addr := env[envKafkaSecureMTLS]
	t.Run("with client certificate", func(t *testing.T) {
		d, tr := secureKafkaSecurity(t, append(secureKafkaTLSArgs(env),
			"-kafka-tls-cert-file", env[envKafkaSecureCert], "-kafka-tls-key-file", env[envKafkaSecureKey])...)
		secureRoundTrip(t, addr, d, tr)
	})
	t.Run("without client certificate", func(t *testing.T) {
		d, tr := secureKafkaSecurity(t, secureKafkaTLSArgs(env)...)
		secureMustFail(t, addr, d, tr, nil)
	})
}

func TestSecureKafkaRefusals(t *testing.T) {
	env := secureKafkaEnv(t)
	addr, user := env[envKafkaSecure], env[envKafkaSecureUser]
	all := []string{env[envKafkaSecurePlainPw], env[envKafkaSecure256Pw], env[envKafkaSecure512Pw]}
	for _, mech := range secureMechanisms {
		t.Run("wrong password "+mech, func(t *testing.T) {
			wrong := "wrong-" + secureRandHex(8)
			d, tr := secureKafkaSecurity(t, append(secureKafkaTLSArgs(env), secureSASLArgs(mech, user, wrong)...)...)
			secureMustFail(t, addr, d, tr, secureAuthFailure, append(all, wrong)...)
		})
	}
	// Each mechanism has its own password: SCRAM must not accept PLAIN's.
	t.Run("another mechanism's password", func(t *testing.T) {
		d, tr := secureKafkaSecurity(t, append(secureKafkaTLSArgs(env), secureSASLArgs("scram-sha-512", user, env[envKafkaSecurePlainPw])...)...)
		secureMustFail(t, addr, d, tr, secureAuthFailure, all...)
	})
	t.Run("unknown user", func(t *testing.T) {
		d, tr := secureKafkaSecurity(t, append(secureKafkaTLSArgs(env), secureSASLArgs("scram-sha-256", "nobody-"+secureRandHex(4), env[envKafkaSecure256Pw])...)...)
		secureMustFail(t, addr, d, tr, secureAuthFailure, all...)
	})
	t.Run("plain TCP to the TLS port", func(t *testing.T) {
		d, tr := secureKafkaSecurity(t, secureSASLArgs("scram-sha-512", user, env[envKafkaSecure512Pw])...)
		secureMustFail(t, addr, d, tr, nil, all...)
	})
	t.Run("no TLS and no SASL to the TLS port", func(t *testing.T) {
		d, tr, err := kafkaSecurity(secureParse(t))
		if err != nil || d != nil || tr != nil {
			t.Fatalf("kafkaSecurity without flags = %v, %v, %v; want plain TCP", d, tr, err)
		}
		secureMustFail(t, addr, nil, &kafka.Transport{DialTimeout: 5 * time.Second}, nil)
	})
	t.Run("TLS without SASL", func(t *testing.T) {
		d, tr := secureKafkaSecurity(t, secureKafkaTLSArgs(env)...)
		secureMustFail(t, addr, d, tr, nil)
	})
	t.Run("TLS without the CA", func(t *testing.T) {
		d, tr := secureKafkaSecurity(t, append([]string{"-kafka-tls"}, secureSASLArgs("scram-sha-512", user, env[envKafkaSecure512Pw])...)...)
		secureMustFail(t, addr, d, tr, secureCertError, all...)
	})
	t.Run("TLS with the wrong server name", func(t *testing.T) {
		d, tr := secureKafkaSecurity(t, append(secureKafkaTLSArgs(env), append([]string{"-kafka-tls-server-name", "kafka.example.com"},
			secureSASLArgs("scram-sha-512", user, env[envKafkaSecure512Pw])...)...)...)
		secureMustFail(t, addr, d, tr, secureCertError, all...)
	})
}

// secureRedis builds the consumer's Redis client from args and closes it at the end.
func secureRedis(t *testing.T, args ...string) redis.UniversalClient {
	t.Helper()
	rdb, err := redisClient(secureParse(t, args...))
	if err != nil {
		t.Fatalf("redisClient: %v", err)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func secureRedisTLSArgs(env map[string]string) []string {
	return []string{"-redis-addrs", env[envRedisSecure], "-redis-tls", "-redis-tls-ca-file", env[envRedisSecureCA]}
}

// secureCheckDedupe runs the consumer's first Redis steps: load the scripts, then
// claim a contract, on a private key prefix deleted afterwards.
func secureCheckDedupe(t *testing.T, rdb redis.UniversalClient) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	prefix := "wxterm:securetest:" + secureRandHex(6) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		keys, _ := rdb.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
	store := dedupe.New(rdb, dedupe.Options{Prefix: prefix, TTL: time.Minute})
	if err := store.Load(ctx); err != nil {
		t.Fatalf("dedupe load: %v", err)
	}
	c, err := store.Claim(ctx, "SecureC1", "req-secure-1", "owner-1")
	if err != nil {
		t.Fatalf("dedupe claim: %v", err)
	}
	if c.Status != dedupe.Claimed {
		t.Fatalf("claim status %v; want Claimed", c.Status)
	}
}

func TestSecureRedis(t *testing.T) {
	env := secureRedisEnv(t)
	user, pw, defPw := env[envRedisSecureUser], env[envRedisSecurePassword], env[envRedisSecureDefaultPw]
	whoami := func(t *testing.T, rdb redis.UniversalClient, want string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := rdb.Ping(ctx).Err(); err != nil {
			t.Fatalf("ping: %v", err)
		}
		got, err := rdb.Do(ctx, "ACL", "WHOAMI").Text()
		if err != nil || got != want {
			t.Fatalf("ACL WHOAMI = %q, %v; want %q", got, err, want)
		}
	}
	t.Run("ACL user over TLS", func(t *testing.T) {
		rdb := secureRedis(t, append(secureRedisTLSArgs(env), "-redis-username", user, "-redis-password", pw)...)
		whoami(t, rdb, user)
		secureCheckDedupe(t, rdb)
	})
	t.Run("requirepass over TLS", func(t *testing.T) {
		rdb := secureRedis(t, append(secureRedisTLSArgs(env), "-redis-password", defPw)...)
		whoami(t, rdb, "default")
		secureCheckDedupe(t, rdb)
	})
	t.Run("ACL user over mutual TLS", func(t *testing.T) {
		rdb := secureRedis(t, append(secureRedisTLSArgs(env), "-redis-tls-cert-file", env[envRedisSecureCert],
			"-redis-tls-key-file", env[envRedisSecureKey], "-redis-tls-server-name", "localhost",
			"-redis-username", user, "-redis-password", pw)...)
		whoami(t, rdb, user)
	})

	refused := func(t *testing.T, want func(error) bool, args ...string) {
		t.Helper()
		rdb := secureRedis(t, args...)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		start := time.Now()
		err := rdb.Ping(ctx).Err()
		switch {
		case err == nil:
			t.Fatal("ping succeeded; want an error")
		case ctx.Err() != nil:
			t.Fatalf("hung until the deadline (%v): %v", time.Since(start), err)
		case want != nil && !want(err):
			t.Errorf("unexpected error: %v", err)
		}
		secrets := []string{pw, defPw}
		for i, a := range args {
			if a == "-redis-password" && i+1 < len(args) {
				secrets = append(secrets, args[i+1])
			}
		}
		for _, s := range secrets {
			if strings.Contains(err.Error(), s) {
				t.Errorf("error text contains a password: %v", err)
			}
		}
		t.Logf("%v (after %v)", err, time.Since(start).Round(time.Millisecond))
	}
	wrongPass := func(err error) bool { return strings.Contains(err.Error(), "WRONGPASS") }
	t.Run("wrong password of the ACL user", func(t *testing.T) {
		refused(t, wrongPass, append(secureRedisTLSArgs(env), "-redis-username", user, "-redis-password", "wrong-"+secureRandHex(8))...)
	})
	t.Run("wrong requirepass", func(t *testing.T) {
		refused(t, wrongPass, append(secureRedisTLSArgs(env), "-redis-password", "wrong-"+secureRandHex(8))...)
	})
	t.Run("another user's password", func(t *testing.T) {
		refused(t, wrongPass, append(secureRedisTLSArgs(env), "-redis-username", user, "-redis-password", defPw)...)
	})
	t.Run("no password", func(t *testing.T) {
		refused(t, func(err error) bool { return strings.Contains(err.Error(), "NOAUTH") }, secureRedisTLSArgs(env)...)
	})
	t.Run("no TLS to the TLS port", func(t *testing.T) {
		refused(t, nil, "-redis-addrs", env[envRedisSecure], "-redis-username", user, "-redis-password", pw)
	})
	t.Run("TLS without the CA", func(t *testing.T) {
		refused(t, secureCertError, "-redis-addrs", env[envRedisSecure], "-redis-tls", "-redis-username", user, "-redis-password", pw)
	})
}

// secureLog collects the consumer's log from its goroutines.
type secureLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *secureLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *secureLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// secureRig is a WeChat Pay simulator, fresh topics and a dedupe prefix for
// one consumer process on the secured services.
type secureRig struct {
	kenv, renv             map[string]string
	keys                   *wxsim.Keys
	sim                    *wxsim.Server
	simURL, keyDir         string
	suffix                 string
	requests, results, dlq string
	prefix                 string
	dialer                 *kafka.Dialer
	transport              kafka.RoundTripper
}

func newSecureRig(t *testing.T) *secureRig {
	t.Helper()
	r := &secureRig{kenv: secureKafkaEnv(t), renv: secureRedisEnv(t), suffix: secureRandHex(6), keyDir: t.TempDir()}
	var err error
	if r.keys, err = wxsim.NewKeys(); err != nil {
		t.Fatal(err)
	}
	if err := r.keys.WriteFiles(r.keyDir); err != nil {
		t.Fatal(err)
	}
	r.sim = wxsim.New(r.keys.SimOptions())
	srv := httptest.NewServer(r.sim)
	t.Cleanup(srv.Close)
	r.simURL = srv.URL
	r.requests, r.results, r.dlq = "wxterm-secure-req-"+r.suffix, "wxterm-secure-res-"+r.suffix, "wxterm-secure-dlq-"+r.suffix
	r.prefix = "wxterm:securee2e:" + r.suffix + ":"
	r.dialer, r.transport = secureKafkaSecurity(t, r.kafkaArgs(r.kenv[envKafkaSecure512Pw])...)
	secureCreateTopics(t, r.kenv[envKafkaSecure], r.transport, r.requests, r.results, r.dlq)
	rdb := secureRedis(t, append(secureRedisTLSArgs(r.renv), "-redis-username", r.renv[envRedisSecureUser],
		"-redis-password", r.renv[envRedisSecurePassword])...)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if keys, _ := rdb.Keys(ctx, r.prefix+"*").Result(); len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
	return r
}

// kafkaArgs: SCRAM-SHA-512 over TLS.
func (r *secureRig) kafkaArgs(password string) []string {
	return append(secureKafkaTLSArgs(r.kenv), secureSASLArgs("scram-sha-512", r.kenv[envKafkaSecureUser], password)...)
}

// args are the consumer's flags: no -embedded; Redis over TLS as the ACL user.
func (r *secureRig) args(kafkaPassword, redisPassword string) []string {
	return append([]string{
		"-brokers", r.kenv[envKafkaSecure], "-group", "wxterm-secure-" + r.suffix,
		"-request-topic", r.requests, "-result-topic", r.results, "-dlq-topic", r.dlq,
		"-redis-addrs", r.renv[envRedisSecure], "-redis-tls", "-redis-tls-ca-file", r.renv[envRedisSecureCA],
		"-redis-username", r.renv[envRedisSecureUser], "-redis-password", redisPassword,
		"-dedupe-prefix", r.prefix, "-dedupe-ttl", "10m",
		"-mchid", r.keys.MchID, "-mch-cert-serial", r.keys.MerchantCertSerial,
		"-mch-private-key-file", filepath.Join(r.keyDir, wxsim.FileMerchantKey),
		"-wechatpay-public-key-id", r.keys.PublicKeyID, "-wechatpay-public-key-file", filepath.Join(r.keyDir, wxsim.FilePublicKey),
		"-wechatpay-base-url", r.simURL, "-wechatpay-backup-url", r.simURL, "-wechatpay-global-url", r.simURL,
		"-http-addr", "127.0.0.1:0", "-log-format", "text", "-log-level", "debug",
		"-shutdown-timeout", "5s", "-session-timeout", "6s", "-heartbeat-interval", "1s",
	}, r.kafkaArgs(kafkaPassword)...)
}

// secureProc is runMain running in the background.
type secureProc struct {
	logs     *secureLog
	cancel   context.CancelFunc
	finished chan struct{} // closed when runMain returned; then err is its result
	err      error
}

// secureRun starts runMain; it is stopped when the test ends.
func secureRun(t *testing.T, ctx context.Context, args []string) *secureProc {
	t.Helper()
	rctx, cancel := context.WithCancel(ctx)
	p := &secureProc{logs: &secureLog{}, cancel: cancel, finished: make(chan struct{})}
	go func() {
		defer close(p.finished)
		p.err = runMain(rctx, args, p.logs, p.logs)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("consumer log:\n%s", p.logs.String())
		}
	})
	return p
}

// stop cancels runMain's context and returns its error, failing the test
// if it does not return within 45 s.
func (p *secureProc) stop(t *testing.T) error {
	t.Helper()
	p.cancel()
	select {
	case <-p.finished:
		return p.err
	case <-time.After(45 * time.Second):
		t.Errorf("runMain did not return within 45s of cancel")
		return nil
	}
}

// secureStopped checks how runMain ended after its context was cancelled.
// A cancelled context is a requested stop: nil, or context.Canceled as
// run.SignalHandler reports it (see main.go).
func secureStopped(t *testing.T, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("runMain returned %v after cancel; want nil or context.Canceled", err)
	}
	t.Logf("runMain returned %v after cancel", err)
}

// The consumer process against the secured services: Kafka with
// SCRAM-SHA-512 over TLS, Redis with TLS and an ACL user, WeChat Pay
// simulated. One intent in, its contract-terminated result out.
func TestSecureEndToEnd(t *testing.T) {
	r := newSecureRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := "SecureE2E" + r.suffix
	r.sim.Seed(wxsim.Contract{API: wxapi.CreditRepayment, OutContractCode: code, DisplayName: "secure test"})
	kafkaPw, redisPw := r.kenv[envKafkaSecure512Pw], r.renv[envRedisSecurePassword]
	p := secureRun(t, ctx, r.args(kafkaPw, redisPw))

	var in event.Intent
	ex, err := os.ReadFile("../../schemas/examples/intent-credit_repayment.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(ex, &in); err != nil {
		t.Fatal(err)
	}
	in.RequestID, in.OutContractCode, in.RequestedAt = "req-secure-"+r.suffix, code, time.Now()
	if err := event.ValidateIntent(in); err != nil {
		t.Fatalf("intent: %v", err)
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	addr := r.kenv[envKafkaSecure]
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: r.requests, Transport: r.transport, RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond, WriteTimeout: 10 * time.Second}
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte(code), Value: b}); err != nil {
		t.Fatalf("publish intent: %v", err)
	}
	w.Close()

	rd := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Dialer: r.dialer, Topic: r.results, Partition: 0,
		StartOffset: kafka.FirstOffset, MaxWait: 250 * time.Millisecond})
	defer rd.Close()
	// Stop waiting as soon as the consumer exits.
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	go func() {
		select {
		case <-p.finished:
			wcancel()
		case <-wctx.Done():
		}
	}()
	var res event.Result
	for {
		m, err := rd.ReadMessage(wctx)
		if err != nil {
			select {
			case <-p.finished:
				t.Fatalf("runMain returned before the result: %v", p.err)
			default:
			}
			t.Fatalf("no result for %s: %v", in.RequestID, err)
		}
		if err := json.Unmarshal(m.Value, &res); err != nil {
			t.Fatalf("result %q: %v", m.Value, err)
		}
		if res.RequestID == in.RequestID {
			break
		}
	}
	if res.EventType != event.TypeTerminated || res.OutContractCode != code || res.Contract == nil {
		t.Fatalf("result %+v; want %s for %s", res, event.TypeTerminated, code)
	}
	if n := r.sim.Terminations(code); n != 1 {
		t.Errorf("simulator terminated %s %d times; want 1", code, n)
	}

	// The dedupe record was written as the ACL user over TLS.
	rdb := secureRedis(t, append(secureRedisTLSArgs(r.renv), "-redis-username", r.renv[envRedisSecureUser], "-redis-password", redisPw)...)
	rec, err := dedupe.New(rdb, dedupe.Options{Prefix: r.prefix}).Get(ctx, code)
	if err != nil || rec.Kind != dedupe.KindTerminated {
		t.Errorf("dedupe record of %s: %+v, %v; want kind %s", code, rec, err, dedupe.KindTerminated)
	}

	secureStopped(t, p.stop(t))
	out := p.logs.String()
	if !strings.Contains(out, "consumer started") {
		t.Errorf("consumer log lacks its start line")
	}
	if strings.Contains(out, kafkaPw) || strings.Contains(out, redisPw) {
		t.Errorf("the consumer log contains a password")
	}
}

// Wrong credentials in the consumer process: a wrong Redis password stops
// start-up with a clear error; a wrong Kafka password keeps the consumer
// out of the group (not ready) and logs why. Neither echoes the password.
func TestSecureEndToEndWrongPasswords(t *testing.T) {
	r := newSecureRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("redis", func(t *testing.T) {
		wrong := "wrong-" + secureRandHex(8)
		p := secureRun(t, ctx, r.args(r.kenv[envKafkaSecure512Pw], wrong))
		select {
		case <-p.finished:
			err := p.err
			if err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
				t.Fatalf("runMain = %v; want a WRONGPASS error", err)
			}
			if strings.Contains(err.Error(), wrong) {
				t.Errorf("error text contains the password: %v", err)
			}
			t.Logf("runMain: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("runMain with a wrong Redis password still running after 30s")
		}
	})

	t.Run("kafka", func(t *testing.T) {
		wrong := "wrong-" + secureRandHex(8)
		p := secureRun(t, ctx, r.args(wrong, r.renv[envRedisSecurePassword]))
		logs := p.logs
		httpRe := regexp.MustCompile(`msg="consumer started".* http=(\S+)`)
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(logs.String(), "SASL Authentication Failed") || httpRe.FindStringSubmatch(logs.String()) == nil {
			select {
			case <-p.finished:
				t.Fatalf("runMain returned early: %v", p.err)
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatal("no SASL authentication failure logged within 30s")
			}
		}
		readyURL := "http://" + httpRe.FindStringSubmatch(logs.String())[1] + "/readyz"
		resp, err := http.Get(readyURL)
		if err != nil {
			t.Fatalf("readyz: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("readyz = %d %q; want 503 while Kafka refuses the credentials", resp.StatusCode, body)
		}
		secureStopped(t, p.stop(t))
		if strings.Contains(logs.String(), wrong) {
			t.Errorf("the consumer log contains the password")
		}
	})
}
