package dedupe_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/testenv"
)

// redisServer returns a client, closed when the test ends, on a private
// redis-server started with args (see testenv.PrivateRedis).
func redisServer(t *testing.T, args ...string) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.PrivateRedis(t, args...), ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	return rdb
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
