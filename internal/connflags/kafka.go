package connflags

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// Kafka is the security of a command's Kafka connections: TLS and SASL.
type Kafka struct {
	TLS                                   TLS
	SASLMechanism, SASLUser, SASLPassword string
}

// DefaultBrokers is -brokers' default: a broker on this machine.
const DefaultBrokers = "127.0.0.1:9092"

// RegisterBrokers declares -brokers, the comma-separated Kafka bootstrap
// brokers, into fs, with DefaultBrokers as its default.
func RegisterBrokers(fs *flag.FlagSet, dst *string) {
	fs.StringVar(dst, "brokers", DefaultBrokers, "Kafka bootstrap brokers, comma-separated")
}

// Register declares -kafka-tls, its -kafka-tls-* flags and the
// -kafka-sasl-* flags into fs.
func (k *Kafka) Register(fs *flag.FlagSet) {
	k.TLS.Register(fs, "kafka")
	fs.StringVar(&k.SASLMechanism, "kafka-sasl-mechanism", "", "Kafka SASL mechanism: plain, scram-sha-256 or scram-sha-512 (empty: none)")
	fs.StringVar(&k.SASLUser, "kafka-sasl-username", "", "Kafka SASL user")
	fs.StringVar(&k.SASLPassword, "kafka-sasl-password", "", "Kafka SASL password (prefer the environment variable)")
}

// dialTimeout bounds one connection attempt to a broker.
const dialTimeout = 10 * time.Second

// Security builds the dialer (consumer groups and readers) and the
// transport (writers and clients) for the configured TLS and SASL; both nil
// mean plain TCP.
func (k Kafka) Security() (*kafka.Dialer, kafka.RoundTripper, error) {
	tlsCfg, err := k.TLS.Config("kafka")
	if err != nil {
		return nil, nil, err
	}
	mech, err := k.mechanism()
	if err != nil {
		return nil, nil, err
	}
	if tlsCfg == nil && mech == nil {
		return nil, nil, nil
	}
	dialer := &kafka.Dialer{Timeout: dialTimeout, DualStack: true, TLS: tlsCfg, SASLMechanism: mech}
	transport := &kafka.Transport{TLS: tlsCfg, SASL: mech, DialTimeout: dialTimeout}
	return dialer, transport, nil
}

// mechanism is the SASL mechanism the flags name, nil for none.
func (k Kafka) mechanism() (sasl.Mechanism, error) {
	name := strings.ToLower(k.SASLMechanism)
	switch {
	case name == "":
		if k.SASLUser != "" || k.SASLPassword != "" {
			return nil, errors.New("-kafka-sasl-username/-password given but -kafka-sasl-mechanism is empty")
		}
		return nil, nil
	case name != "plain" && name != "scram-sha-256" && name != "scram-sha-512":
		return nil, fmt.Errorf("-kafka-sasl-mechanism %q: want plain, scram-sha-256 or scram-sha-512", k.SASLMechanism)
	case k.SASLUser == "" || k.SASLPassword == "":
		return nil, fmt.Errorf("-kafka-sasl-mechanism %s needs -kafka-sasl-username and -kafka-sasl-password", k.SASLMechanism)
	case name == "plain":
		return plain.Mechanism{Username: k.SASLUser, Password: k.SASLPassword}, nil
	}
	algo := scram.SHA256
	if name == "scram-sha-512" {
		algo = scram.SHA512
	}
	mech, err := scram.Mechanism(algo, k.SASLUser, k.SASLPassword)
	if err != nil {
		return nil, fmt.Errorf("-kafka-sasl-mechanism %s: %w", k.SASLMechanism, err)
	}
	return mech, nil
}
