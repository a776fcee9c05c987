// Package connflags declares the flags of a command's connections (TLS to
// Kafka or Redis, Redis's address and credentials) and builds from them, so
// that the consumer and the operator commands (cmd/status) take the same
// settings under the same names. Errors never echo a password or key.
package connflags

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"
)

// TLS configures TLS to a server; enabled with no files means the system
// roots and no client certificate.
type TLS struct {
	Enabled                   bool
	CAFile, CertFile, KeyFile string
	ServerName                string
}

// Register declares -<name>-tls and its -<name>-tls-* flags into fs.
func (t *TLS) Register(fs *flag.FlagSet, name string) {
	fs.BoolVar(&t.Enabled, name+"-tls", false, "connect to "+name+" over TLS")
	fs.StringVar(&t.CAFile, name+"-tls-ca-file", "", "PEM CA bundle to verify "+name+" (empty: system roots)")
	fs.StringVar(&t.CertFile, name+"-tls-cert-file", "", "PEM client certificate for "+name+" (mutual TLS)")
	fs.StringVar(&t.KeyFile, name+"-tls-key-file", "", "PEM client key for "+name+" (mutual TLS)")
	fs.StringVar(&t.ServerName, name+"-tls-server-name", "", "server name to verify in "+name+"'s certificate (empty: the host dialled)")
}

// Config builds the TLS client configuration t describes, or nil when TLS
// is off; name is the flags' prefix, for errors.
func (t TLS) Config(name string) (*tls.Config, error) {
	if !t.Enabled {
		if t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" {
			return nil, fmt.Errorf("-%s-tls-* settings given but -%s-tls is off", name, name)
		}
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("-%s-tls-ca-file: %w", name, err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-%s-tls-ca-file %s: no PEM certificates", name, t.CAFile)
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, fmt.Errorf("-%s-tls-cert-file and -%s-tls-key-file go together", name, name)
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("-%s-tls-cert-file/-key-file: cannot load the key pair", name) // never echo key material
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Redis is the connection to the dedupe store's Redis.
type Redis struct {
	Addrs, User, Password string
	DB                    int
	TLS                   TLS
}

// DefaultRedisAddr is -redis-addrs' default.
const DefaultRedisAddr = "127.0.0.1:6379"

// Register declares the -redis-* connection flags into fs.
func (r *Redis) Register(fs *flag.FlagSet) {
	fs.StringVar(&r.Addrs, "redis-addrs", DefaultRedisAddr, "Redis address; several (comma-separated) mean a Redis Cluster")
	fs.StringVar(&r.User, "redis-username", "", "Redis ACL user")
	fs.StringVar(&r.Password, "redis-password", "", "Redis password (prefer the environment variable)")
	fs.IntVar(&r.DB, "redis-db", 0, "Redis database (not with a Cluster)")
	r.TLS.Register(fs, "redis")
}

// Client dials Redis (a Cluster when several addresses are given).
func (r *Redis) Client() (redis.UniversalClient, error) {
	tlsCfg, err := r.TLS.Config("redis")
	if err != nil {
		return nil, err
	}
	addrs := strings.Split(r.Addrs, ",")
	if len(addrs) > 1 && r.DB != 0 {
		return nil, errors.New("-redis-db must be 0 with a Redis Cluster")
	}
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs: addrs, Username: r.User, Password: r.Password, DB: r.DB, TLSConfig: tlsCfg,
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
