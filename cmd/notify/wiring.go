package main

import (
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/wxterm/wxterm/internal/merchants"
	"github.com/wxterm/wxterm/internal/notify"
)

// kafkaTransport builds the writer's transport for the configured TLS and
// SASL (nil: plain TCP), as cmd/consumer's kafkaSecurity does.
func kafkaTransport(c *config) (kafka.RoundTripper, error) {
	t := c.kafkaTLS
	var tlsCfg *tls.Config
	switch {
	case !t.enabled && (t.caFile != "" || t.certFile != "" || t.keyFile != "" || t.serverName != ""):
		return nil, errors.New("-kafka-tls-* settings given but -kafka-tls is off")
	case t.enabled:
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.serverName}
		if t.caFile != "" {
			pem, err := os.ReadFile(t.caFile)
			if err != nil {
				return nil, fmt.Errorf("-kafka-tls-ca-file: %w", err)
			}
			tlsCfg.RootCAs = x509.NewCertPool()
			if !tlsCfg.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("-kafka-tls-ca-file %s: no PEM certificates", t.caFile)
			}
		}
		if (t.certFile == "") != (t.keyFile == "") {
			return nil, errors.New("-kafka-tls-cert-file and -kafka-tls-key-file go together")
		}
		if t.certFile != "" {
			cert, err := tls.LoadX509KeyPair(t.certFile, t.keyFile)
			if err != nil {
				return nil, errors.New("-kafka-tls-cert-file/-key-file: cannot load the key pair") // never echo key material
			}
			tlsCfg.Certificates = []tls.Certificate{cert}
		}
	}
	var mech sasl.Mechanism
	switch name := strings.ToLower(c.kafkaSASL); {
	case name == "" && (c.kafkaUser != "" || c.kafkaPwd != ""):
		return nil, errors.New("-kafka-sasl-username/-password given but -kafka-sasl-mechanism is empty")
	case name == "":
	case c.kafkaUser == "" || c.kafkaPwd == "":
		return nil, fmt.Errorf("-kafka-sasl-mechanism %s needs -kafka-sasl-username and -kafka-sasl-password", c.kafkaSASL)
	case name == "plain":
		mech = plain.Mechanism{Username: c.kafkaUser, Password: c.kafkaPwd}
	case name == "scram-sha-256" || name == "scram-sha-512":
		algo := scram.SHA256
		if name == "scram-sha-512" {
			algo = scram.SHA512
		}
		var err error
		if mech, err = scram.Mechanism(algo, c.kafkaUser, c.kafkaPwd); err != nil {
			return nil, fmt.Errorf("-kafka-sasl-mechanism %s: %w", c.kafkaSASL, err)
		}
	default:
		return nil, fmt.Errorf("-kafka-sasl-mechanism %q: want plain, scram-sha-256 or scram-sha-512", c.kafkaSASL)
	}
	if tlsCfg == nil && mech == nil {
		return nil, nil
	}
	return &kafka.Transport{TLS: tlsCfg, SASL: mech, DialTimeout: 10 * time.Second}, nil
}

// merchantSpec is one merchant's verification settings, from the file or
// the flags.
type merchantSpec struct {
	mchID, pubID, pubFile string
	certFiles             []string
	apiV3                 merchants.Entry // reads the APIv3 key (file or environment)
}

// loadMerchants loads every merchant's keys: from -merchants-file, or the one
// merchant of the -mchid flags.
func loadMerchants(c *config) ([]notify.Merchant, error) {
	var specs []merchantSpec
	if c.merchantsFile != "" {
		if c.mchID != "" {
			return nil, errors.New("use either -merchants-file or -mchid, not both")
		}
		f, err := merchants.ReadFile(c.merchantsFile)
		if err != nil {
			return nil, err
		}
		for _, m := range f.Merchants {
			specs = append(specs, merchantSpec{m.MchID, m.PublicKeyID, m.PublicKeyFile, m.PlatformCertFiles, m})
		}
	} else {
		if c.mchID == "" || c.apiV3KeyFile == "" {
			return nil, errors.New("merchant settings missing: set -mchid, -apiv3-key-file and -wechatpay-public-key-id/-file or -wechatpay-platform-cert-files, or -merchants-file")
		}
		specs = append(specs, merchantSpec{c.mchID, c.pubKeyID, c.pubKeyFile, splitList(c.platformCertFiles), merchants.Entry{APIv3KeyFile: c.apiV3KeyFile}})
	}
	out := make([]notify.Merchant, 0, len(specs))
	for _, s := range specs {
		m, err := s.load()
		if err != nil {
			return nil, fmt.Errorf("merchant %s: %w", s.mchID, err)
		}
		out = append(out, m)
	}
	return out, nil
}

func (s merchantSpec) load() (notify.Merchant, error) {
	m := notify.Merchant{MchID: s.mchID}
	var err error
	if m.APIv3Key, err = s.apiV3.APIv3Key(); err != nil {
		return m, err
	}
	if m.APIv3Key == "" {
		return m, errors.New("no APIv3 key (apiv3_key_file or apiv3_key_env)")
	}
	if (s.pubID == "") != (s.pubFile == "") {
		return m, errors.New("a WeChat Pay public key needs both its id and its file")
	}
	var pubKey *rsa.PublicKey
	if s.pubFile != "" {
		if pubKey, err = utils.LoadPublicKeyWithPath(s.pubFile); err != nil {
			return m, fmt.Errorf("cannot load a public key from %s", s.pubFile)
		}
	}
	var certs core.CertificateGetter
	if len(s.certFiles) > 0 {
		var list []*x509.Certificate
		for _, f := range s.certFiles {
			cert, err := utils.LoadCertificateWithPath(f)
			if err != nil {
				return m, fmt.Errorf("cannot load a platform certificate from %s", f)
			}
			list = append(list, cert)
		}
		certs = core.NewCertificateMapWithList(list)
	}
	if m.Keys, err = notify.NewKeys(s.pubID, pubKey, certs); err != nil {
		return m, err
	}
	return m, nil
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
