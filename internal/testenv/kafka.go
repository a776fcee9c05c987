package testenv

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wxterm/wxterm/internal/e2e"
)

// EnvKafka names a real Kafka broker (host:port) for the integration tests.
const EnvKafka = "WXTERM_TEST_KAFKA"

// Kafka returns broker addresses: WXTERM_TEST_KAFKA's broker, else a fresh
// in-process kfake cluster closed when the test ends. Topics on a real
// broker are shared by all tests: name them with Unique.
func Kafka(t testing.TB) []string {
	t.Helper()
	if addr := os.Getenv(EnvKafka); addr != "" {
		return strings.Split(addr, ",")
	}
	requireUnlessCI(t, EnvKafka)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.ListenFn(func(network, _ string) (net.Listener, error) {
		return net.Listen(network, "127.0.0.1:0")
	}))
	if err != nil {
		t.Fatalf("testenv: kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// RealKafka reports whether Kafka returns a real broker.
func RealKafka() bool { return os.Getenv(EnvKafka) != "" }

// CreateTopics creates each topic with the given partitions and waits
// until the broker serves it.
func CreateTopics(t testing.TB, brokers []string, partitions int, topics ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	cfgs := make([]kafka.TopicConfig, len(topics))
	for i, name := range topics {
		cfgs[i] = e2e.Topic(name, partitions)
	}
	if err := e2e.CreateTopics(ctx, cl, cfgs...); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// Topic returns a topic name unique to this test run.
func Topic(t testing.TB, base string) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, Unique(t))
	return base + "." + name
}
