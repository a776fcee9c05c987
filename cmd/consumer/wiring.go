package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/wxterm/wxterm/internal/consumer"
	"github.com/wxterm/wxterm/internal/tracing"
	"github.com/wxterm/wxterm/internal/wxapi"
)

// tlsConfig builds the TLS client configuration t describes, or nil when
// TLS is off.
func (t tlsFiles) config(name string) (*tls.Config, error) {
	if !t.enabled {
		if t.caFile != "" || t.certFile != "" || t.keyFile != "" || t.serverName != "" {
			return nil, fmt.Errorf("-%s-tls-* settings given but -%s-tls is off", name, name)
		}
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.serverName}
	if t.caFile != "" {
		pem, err := os.ReadFile(t.caFile)
		if err != nil {
			return nil, fmt.Errorf("-%s-tls-ca-file: %w", name, err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-%s-tls-ca-file %s: no PEM certificates", name, t.caFile)
		}
	}
	if (t.certFile == "") != (t.keyFile == "") {
		return nil, fmt.Errorf("-%s-tls-cert-file and -%s-tls-key-file go together", name, name)
	}
	if t.certFile != "" {
		cert, err := tls.LoadX509KeyPair(t.certFile, t.keyFile)
		if err != nil {
			return nil, fmt.Errorf("-%s-tls-cert-file/-key-file: cannot load the key pair", name) // never echo key material
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// kafkaSecurity builds the dialer (group and readers) and transport (writer)
// for the configured TLS and SASL; both nil mean plain TCP.
func kafkaSecurity(c *config) (*kafka.Dialer, kafka.RoundTripper, error) {
	tlsCfg, err := c.kafkaTLS.config("kafka")
	if err != nil {
		return nil, nil, err
	}
	var mech sasl.Mechanism
	name := strings.ToLower(c.kafkaSASL)
	switch {
	case name == "":
		if c.kafkaUser != "" || c.kafkaPwd != "" {
			return nil, nil, errors.New("-kafka-sasl-username/-password given but -kafka-sasl-mechanism is empty")
		}
	case name != "plain" && name != "scram-sha-256" && name != "scram-sha-512":
		return nil, nil, fmt.Errorf("-kafka-sasl-mechanism %q: want plain, scram-sha-256 or scram-sha-512", c.kafkaSASL)
	case c.kafkaUser == "" || c.kafkaPwd == "":
		return nil, nil, fmt.Errorf("-kafka-sasl-mechanism %s needs -kafka-sasl-username and -kafka-sasl-password", c.kafkaSASL)
	case name == "plain":
		mech = plain.Mechanism{Username: c.kafkaUser, Password: c.kafkaPwd}
	default:
		algo := scram.SHA256
		if name == "scram-sha-512" {
			algo = scram.SHA512
		}
		if mech, err = scram.Mechanism(algo, c.kafkaUser, c.kafkaPwd); err != nil {
			return nil, nil, fmt.Errorf("-kafka-sasl-mechanism %s: %w", c.kafkaSASL, err)
		}
	}
	if tlsCfg == nil && mech == nil {
		return nil, nil, nil
	}
	dialer := &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: tlsCfg, SASLMechanism: mech}
	transport := &kafka.Transport{TLS: tlsCfg, SASL: mech, DialTimeout: 10 * time.Second}
	return dialer, transport, nil
}

// redisClient dials Redis (a Cluster when several addresses are given).
func redisClient(c *config) (redis.UniversalClient, error) {
	tlsCfg, err := c.redisTLS.config("redis")
	if err != nil {
		return nil, err
	}
	addrs := strings.Split(c.redisAddrs, ",")
	if len(addrs) > 1 && c.redisDB != 0 {
		return nil, errors.New("-redis-db must be 0 with a Redis Cluster")
	}
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs: addrs, Username: c.redisUser, Password: c.redisPwd, DB: c.redisDB, TLSConfig: tlsCfg,
		ContextTimeoutEnabled: true,
		// A claim retried after a lost reply could look like someone else's;
		// the dedupe store's owner tokens make a retry safe, so keep retries.
		MaxRetries: 3,
		// One dial attempt per try: the consumer retries store operations
		// itself, with backoff and /readyz reporting the outage; go-redis's
		// default of 5 dials 100 ms apart, under MaxRetries, kept a failing
		// operation quiet for about 2.5 s after Redis went away.
		DialerRetries: 1,
	}), nil
}

// merchantsFile is the -merchants-file format.
type merchantsFile struct {
	Default   string `json:"default"`
	Merchants []struct {
		MchID          string   `json:"mchid"`
		CertSerial     string   `json:"cert_serial"`
		PrivateKeyFile string   `json:"private_key_file"`
		PublicKeyID    string   `json:"public_key_id"`
		PublicKeyFile  string   `json:"public_key_file"`
		SubMchIDs      []string `json:"sub_mchids"`
	} `json:"merchants"`
}

// merchants builds the WeChat Pay clients: from -merchants-file, or the one
// merchant of the -mchid flags.
func merchants(c *config) (map[string]consumer.Merchant, string, error) {
	type spec struct {
		mchID, serial, keyFile, pubID, pubFile string
		subs                                   []string
	}
	var specs []spec
	def := c.mchID
	if c.merchantsFile != "" {
		if c.mchID != "" {
			return nil, "", errors.New("use either -merchants-file or -mchid, not both")
		}
		b, err := os.ReadFile(c.merchantsFile)
		if err != nil {
			return nil, "", fmt.Errorf("-merchants-file: %w", err)
		}
		var f merchantsFile
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return nil, "", fmt.Errorf("-merchants-file %s: %w", c.merchantsFile, err)
		}
		for _, m := range f.Merchants {
			specs = append(specs, spec{m.MchID, m.CertSerial, m.PrivateKeyFile, m.PublicKeyID, m.PublicKeyFile, m.SubMchIDs})
		}
		def = f.Default
		if def == "" && len(specs) == 1 {
			def = specs[0].mchID
		}
	} else {
		if c.mchID == "" || c.keyFile == "" || c.pubKeyFile == "" || c.certSerial == "" || c.pubKeyID == "" {
			return nil, "", errors.New("WeChat Pay merchant settings missing: set -mchid, -mch-cert-serial, -mch-private-key-file, -wechatpay-public-key-id and -wechatpay-public-key-file, or -merchants-file (or run cmd/demo)")
		}
		specs = append(specs, spec{c.mchID, c.certSerial, c.keyFile, c.pubKeyID, c.pubKeyFile, splitList(c.allowedSubMchIDs)})
	}
	if len(specs) == 0 {
		return nil, "", fmt.Errorf("-merchants-file %s lists no merchants", c.merchantsFile)
	}
	out := make(map[string]consumer.Merchant, len(specs))
	for _, s := range specs {
		if _, dup := out[s.mchID]; dup || s.mchID == "" {
			return nil, "", fmt.Errorf("merchant %q is empty or listed twice", s.mchID)
		}
		key, err := utils.LoadPrivateKeyWithPath(s.keyFile)
		if err != nil {
			return nil, "", fmt.Errorf("merchant %s: cannot load a private key from %s", s.mchID, s.keyFile) // never echo the key
		}
		pub, err := utils.LoadPublicKeyWithPath(s.pubFile)
		if err != nil {
			return nil, "", fmt.Errorf("merchant %s: cannot load a public key from %s", s.mchID, s.pubFile)
		}
		client, err := wxapi.New(wxapi.Config{
			MchID: s.mchID, CertSerial: s.serial, PrivateKey: key, PublicKeyID: s.pubID, PublicKey: pub,
			BaseURL: c.baseURL, BackupURL: c.backupURL, GlobalBaseURL: c.globalURL, Timeout: c.wxTimeout,
		})
		if err != nil {
			return nil, "", fmt.Errorf("merchant %s: %w", s.mchID, err)
		}
		out[s.mchID] = consumer.Merchant{Client: client, SubMchIDs: s.subs}
	}
	return out, def, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// startTracing builds the tracer from the standard OTEL_* environment (off
// by default) and makes s.close flush and stop it.
func startTracing(ctx context.Context, s *service) (*tracing.Tracer, error) {
	version := "dev"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	t, err := tracing.New(ctx, version)
	if err != nil {
		return nil, err
	}
	closeRest := s.close
	s.close = func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := t.Shutdown(sctx); err != nil {
			s.log.Warn("tracing shutdown", "err", err)
		}
		cancel()
		closeRest()
	}
	if t.Enabled() {
		s.log.Info("tracing: exporting spans over OTLP")
	}
	return t, nil
}
