package dedupe_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/testenv"
)

// redisServer starts a private redis-server with args (settings the shared
// test server must keep) on 127.0.0.1 and returns a client for it. It skips
// the test when redis-server is not installed and no real Redis is
// configured (it is whenever WXTERM_TEST_REDIS is set).
func redisServer(t *testing.T, args ...string) *redis.Client {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(testenv.EnvRedis) != "" || os.Getenv("CI") == "true" {
			t.Fatalf("redis-server: %v", err)
		}
		t.Skipf("redis-server is not installed: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--save", "", "--appendonly", "no", "--dir", t.TempDir()}, args...)...)
	must(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return rdb
		}
		if i == 100 {
			t.Fatalf("redis-server on port %d: %v", port, err)
		}
		time.Sleep(50 * time.Millisecond) // waiting for the server to listen, not a timed assertion
	}
}

// Issue 12 item 5: nothing checked that Redis may not evict records.
func TestCheckDurability(t *testing.T) {
	t.Parallel()
	t.Run("test server", func(t *testing.T) {
		t.Parallel()
		err := dedupe.New(testenv.Redis(t), dedupe.Options{}).CheckDurability(t.Context())
		if os.Getenv(testenv.EnvRedis) == "" {
			// miniredis has no CONFIG, like a managed Redis that hides it.
			if !errors.Is(err, dedupe.ErrDurabilityUnknown) {
				t.Errorf("CheckDurability on miniredis: got %v; want ErrDurabilityUnknown", err)
			}
			return
		}
		if err != nil {
			t.Errorf("CheckDurability on the test server (noeviction): got %v; want nil", err)
		}
	})
	for _, tt := range []struct {
		name string
		args []string
		want error
	}{
		{"noeviction", []string{"--maxmemory-policy", "noeviction"}, nil},
		{"allkeys-lru", []string{"--maxmemory-policy", "allkeys-lru"}, dedupe.ErrEvictionPolicy},
		{"volatile-ttl: records have a TTL", []string{"--maxmemory-policy", "volatile-ttl"}, dedupe.ErrEvictionPolicy},
		{"CONFIG renamed", []string{"--rename-command", "CONFIG", ""}, dedupe.ErrDurabilityUnknown},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := dedupe.New(redisServer(t, tt.args...), dedupe.Options{}).CheckDurability(t.Context())
			if !errors.Is(err, tt.want) {
				t.Fatalf("CheckDurability: got %v; want %v", err, tt.want)
			}
			if errors.Is(err, dedupe.ErrEvictionPolicy) && !strings.Contains(err.Error(), tt.args[1]) {
				t.Errorf("error %q does not name the policy %s", err, tt.args[1])
			}
		})
	}
}
