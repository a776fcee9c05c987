package main

import (
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
)

// This file is a minimal copy of cmd/consumer/wiring.go's tlsFiles.config and
// kafkaSecurity (the transport half only): package main cannot be imported.
// Moving both into a shared internal package would remove the copy.

// tlsFiles configures TLS to a server; enabled with no files means the
// system roots and no client certificate.
type tlsFiles struct {
	enabled                   bool
	caFile, certFile, keyFile string
	serverName                string
}

func (t tlsFiles) config() (*tls.Config, error) {
	if !t.enabled {
		if t.caFile != "" || t.certFile != "" || t.keyFile != "" || t.serverName != "" {
			return nil, errors.New("-kafka-tls-* settings given but -kafka-tls is off")
		}
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.serverName}
	if t.caFile != "" {
		pem, err := os.ReadFile(t.caFile)
		if err != nil {
			return nil, fmt.Errorf("-kafka-tls-ca-file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
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
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// transport builds the Kafka transport for the configured TLS and SASL; nil
// means kafka-go's default (plain TCP).
func (c *config) transport() (kafka.RoundTripper, error) {
	tlsCfg, err := c.kafkaTLS.config()
	if err != nil {
		return nil, err
	}
	var mech sasl.Mechanism
	name := strings.ToLower(c.kafkaSASL)
	switch {
	case name == "":
		if c.kafkaUser != "" || c.kafkaPwd != "" {
			return nil, errors.New("-kafka-sasl-username/-password given but -kafka-sasl-mechanism is empty")
		}
	case name != "plain" && name != "scram-sha-256" && name != "scram-sha-512":
		return nil, fmt.Errorf("-kafka-sasl-mechanism %q: want plain, scram-sha-256 or scram-sha-512", c.kafkaSASL)
	case c.kafkaUser == "" || c.kafkaPwd == "":
		return nil, fmt.Errorf("-kafka-sasl-mechanism %s needs -kafka-sasl-username and -kafka-sasl-password", c.kafkaSASL)
	case name == "plain":
		mech = plain.Mechanism{Username: c.kafkaUser, Password: c.kafkaPwd}
	default:
		algo := scram.SHA256
		if name == "scram-sha-512" {
			algo = scram.SHA512
		}
		if mech, err = scram.Mechanism(algo, c.kafkaUser, c.kafkaPwd); err != nil {
			return nil, fmt.Errorf("-kafka-sasl-mechanism %s: %w", c.kafkaSASL, err)
		}
	}
	if tlsCfg == nil && mech == nil {
		return nil, nil
	}
	return &kafka.Transport{TLS: tlsCfg, SASL: mech, DialTimeout: 10 * time.Second}, nil
}
