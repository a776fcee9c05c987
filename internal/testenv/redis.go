// Package testenv gives tests the services they need: the real one named by
// an environment variable when it is set, else an embedded stand-in. Under
// CI=true a missing variable fails the test rather than falling back, so CI
// cannot pass on stand-ins alone.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Environment variables naming real services.
const (
	EnvRedis        = "WXTERM_TEST_REDIS"         // host:port of a Redis server
	EnvRedisCluster = "WXTERM_TEST_REDIS_CLUSTER" // comma-separated host:port of Cluster nodes
)

// Redis returns a client closed when the test ends. With WXTERM_TEST_REDIS
// set, it is a real server on a database reserved for this test alone (tests
// of every package may run at once) and flushed before and after; else it is a
// fresh miniredis. SCRIPT FLUSH and other server-wide commands still reach
// every test sharing the server.
func Redis(t testing.TB) redis.UniversalClient {
	t.Helper()
	addr := os.Getenv(EnvRedis)
	if addr == "" {
		requireUnlessCI(t, EnvRedis)
		return newClient(t, miniredis.RunT(t).Addr(), 0)
	}
	db := reserveDB(t, addr)
	rdb := newClient(t, addr, db)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatalf("testenv: %s=%s: flush db %d: %v", EnvRedis, addr, db, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := rdb.FlushDB(ctx).Err(); err != nil {
			t.Errorf("testenv: flush db %d: %v", db, err)
		}
	})
	return rdb
}

// RedisAddr returns the address of a Redis server, for code under test that
// dials by itself: WXTERM_TEST_REDIS, else a fresh miniredis. A real server is
// shared by all tests, on database 0: isolate keys with a unique prefix.
func RedisAddr(t testing.TB) string {
	t.Helper()
	if addr := os.Getenv(EnvRedis); addr != "" {
		return addr
	}
	requireUnlessCI(t, EnvRedis)
	return miniredis.RunT(t).Addr()
}

// RedisCluster returns a client, closed when the test ends, on the Redis
// Cluster named by WXTERM_TEST_REDIS_CLUSTER, built the way the consumer
// builds it (redis.NewUniversalClient with several addresses), and skips
// the test if it is unset (fails under CI=true): there is no embedded
// Cluster. The Cluster is shared: isolate keys
// with a unique prefix (see Unique) and delete them afterwards.
func RedisCluster(t testing.TB) *redis.ClusterClient {
	t.Helper()
	env := os.Getenv(EnvRedisCluster)
	if env == "" {
		requireUnlessCI(t, EnvRedisCluster)
		t.Skipf("testenv: %s is unset (comma-separated addresses of a Redis Cluster's nodes): skipping the Cluster test", EnvRedisCluster)
	}
	rdb, ok := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:                 strings.Split(env, ","),
		ContextTimeoutEnabled: true,
	}).(*redis.ClusterClient)
	if !ok {
		t.Fatalf("testenv: %s=%s: want at least two addresses (a Cluster)", EnvRedisCluster, env)
	}
	t.Cleanup(func() { rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		return m.Ping(ctx).Err()
	}); err != nil {
		t.Fatalf("testenv: %s=%s: %v", EnvRedisCluster, env, err)
	}
	return rdb
}

// Unique returns a string unique to this run of this test, to build key
// prefixes and names on shared servers.
func Unique(t testing.TB) string {
	b := make([]byte, 4)
	rand.Read(b)
	name := strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' || r == '{' || r == '}' {
			return '_'
		}
		return r
	}, t.Name())
	return name + "-" + hex.EncodeToString(b)
}

func requireUnlessCI(t testing.TB, env string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("testenv: CI=true but %s is unset: CI must test against the real service", env)
	}
}

func newClient(t testing.TB, addr string, db int) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, DB: db, ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("testenv: redis %s db %d: %v", addr, db, err)
	}
	return rdb
}

// reserveDB takes a database number, 1 or above, for the test's lifetime. The
// reservations are keys in database 0, so tests in other processes (go test
// runs packages in parallel) see them too; they expire on their own if a test
// process dies. It waits while every database is taken.
func reserveDB(t testing.TB, addr string) int {
	t.Helper()
	ctl := newClient(t, addr, 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := 16
	if v, err := ctl.ConfigGet(ctx, "databases").Result(); err == nil {
		if m, err := strconv.Atoi(v["databases"]); err == nil {
			n = m
		}
	}
	if n < 2 {
		t.Fatalf("testenv: redis %s has %d database(s); tests need at least 2", addr, n)
	}
	token := Unique(t)
	for {
		for db := 1; db < n; db++ {
			key := "wxterm:testenv:db:" + strconv.Itoa(db)
			ok, err := ctl.SetNX(ctx, key, token, 15*time.Minute).Result()
			if err != nil {
				t.Fatalf("testenv: redis %s: reserve db: %v", addr, err)
			}
			if ok {
				t.Cleanup(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					// Delete only our own reservation, never one a later test took
					// after ours expired.
					unreserve.Run(ctx, ctl, []string{key}, token)
				})
				return db
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("testenv: redis %s: no free database in %d: %v", addr, n-1, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

var unreserve = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)
