package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/internal/consumer"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/tracing"
)

// kafkaSecurity builds the dialer (group and readers) and transport (writer)
// for the configured TLS and SASL; both nil mean plain TCP.
func kafkaSecurity(c *config) (*kafka.Dialer, kafka.RoundTripper, error) { return c.kafka.Security() }

// redisClient dials Redis (a Cluster when several addresses are given).
func redisClient(c *config) (redis.UniversalClient, error) { return c.redis.Client() }

// buildMerchants builds the WeChat Pay clients: from -merchants-file, or the one
// merchant of the -mchid flags. closeMerchants closes them.
func buildMerchants(c *config) (map[string]consumer.Merchant, string, error) {
	ms, def, err := c.merchants.Clients()
	if err != nil {
		return nil, "", err
	}
	out := make(map[string]consumer.Merchant, len(ms))
	for _, m := range ms {
		out[m.MchID] = consumer.Merchant{Client: m.Client, SubMchIDs: m.SubMchIDs}
	}
	return out, def, nil
}

// closeMerchants stops the clients' certificate refreshes.
func closeMerchants(ms map[string]consumer.Merchant) {
	for _, m := range ms {
		if c, ok := m.Client.(io.Closer); ok {
			_ = c.Close()
		}
	}
}

// The -redis-durability-check modes.
const (
	durabilityStrict = "strict" // refuse an evicting policy; warn when it cannot be read
	durabilityWarn   = "warn"   // warn on both
	durabilityOff    = "off"    // do not check
)

var durabilityModes = []string{durabilityStrict, durabilityWarn, durabilityOff}

// checkDurability applies -redis-durability-check to store.CheckDurability:
// an error refuses to start; a warning is logged and start-up goes on.
func checkDurability(ctx context.Context, c *config, store *dedupe.Store, log *slog.Logger) error {
	if c.redisDurability == durabilityOff {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := store.CheckDurability(cctx)
	cancel()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, dedupe.ErrEvictionPolicy) && c.redisDurability == durabilityStrict:
		return fmt.Errorf("redis %s may evict dedupe records, and with them the memory of calls to WeChat Pay: set maxmemory-policy noeviction (or -redis-durability-check=warn to start anyway): %w", c.redis.Addrs, err)
	case errors.Is(err, dedupe.ErrEvictionPolicy), errors.Is(err, dedupe.ErrDurabilityUnknown):
		log.Warn("redis durability not confirmed: make sure maxmemory-policy is noeviction", "redis", c.redis.Addrs, "err", err.Error())
		return nil
	}
	return fmt.Errorf("redis %s: %w", c.redis.Addrs, err)
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
