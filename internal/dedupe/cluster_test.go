package dedupe_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/testenv"
)

// TestCluster runs the store on the Redis Cluster named by
// WXTERM_TEST_REDIS_CLUSTER (skipped if unset): the state machine, records
// spread over every master, and a script cache flushed on every node.
func TestCluster(t *testing.T) {
	rdb := testenv.RedisCluster(t)
	newClusterEnv := func(t *testing.T) env {
		t.Helper()
		prefix := "wxterm:test:" + testenv.Unique(t) + ":"
		t.Cleanup(func() { deletePrefix(t, rdb, prefix) })
		return newEnvOn(t, rdb, prefix)
	}

	t.Run("claim", func(t *testing.T) { testClaim(t, newClusterEnv) })
	t.Run("record termination", func(t *testing.T) { testRecordTermination(t, newClusterEnv) })

	// Every node is checked, replicas included: one master with an evicting
	// policy is refused by name. Only this package's tests use the Cluster,
	// and with maxmemory 0 the policy evicts nothing meanwhile.
	t.Run("durability", func(t *testing.T) {
		s := dedupe.New(rdb, dedupe.Options{})
		must(t, s.CheckDurability(t.Context()))
		var victim *redis.Client
		var mu sync.Mutex
		must(t, rdb.ForEachMaster(t.Context(), func(ctx context.Context, m *redis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			if victim == nil {
				victim = m
			}
			return nil
		}))
		must(t, victim.ConfigSet(t.Context(), "maxmemory-policy", "volatile-lru").Err())
		t.Cleanup(func() {
			if err := victim.ConfigSet(context.Background(), "maxmemory-policy", "noeviction").Err(); err != nil {
				t.Errorf("restore maxmemory-policy on %s: %v", victim.Options().Addr, err)
			}
		})
		err := s.CheckDurability(t.Context())
		if !errors.Is(err, dedupe.ErrEvictionPolicy) || !strings.Contains(err.Error(), victim.Options().Addr) {
			t.Errorf("CheckDurability: got %v; want ErrEvictionPolicy naming %s", err, victim.Options().Addr)
		}
	})

	t.Run("many slots", func(t *testing.T) {
		t.Parallel()
		e := newClusterEnv(t)
		codes := make([]string, 200)
		for i := range codes {
			codes[i] = fmt.Sprintf("C%04d", i)
			if i%2 == 0 {
				if _, err := e.s.Claim(t.Context(), codes[i], "r1", "A"); err != nil {
					t.Fatal(err)
				}
			}
		}
		// Every SCRIPT FLUSH reaches every node: the next call on each slot
		// meets NOSCRIPT.
		must(t, rdb.ScriptFlush(t.Context()).Err())
		for i := 0; i < len(codes); i += 2 {
			must(t, e.s.Complete(t.Context(), codes[i], "r1", "A", dedupe.KindTerminated, outcome))
		}
		recs, err := e.s.GetMany(t.Context(), codes)
		must(t, err)
		for i, r := range recs {
			if want := i%2 == 0; r.Exists() != want || (want && r.State != dedupe.StateDone) {
				t.Errorf("%s: got exists %v, state %q; want exists %v", codes[i], r.Exists(), r.State, want)
			}
		}
		// The test means something only if the records did spread.
		var mu sync.Mutex
		masters, holding := 0, 0
		must(t, rdb.ForEachMaster(t.Context(), func(ctx context.Context, m *redis.Client) error {
			iter := m.Scan(ctx, 0, e.prefix+"*", 1000).Iterator()
			found := iter.Next(ctx)
			mu.Lock()
			defer mu.Unlock()
			masters++
			if found {
				holding++
			}
			return iter.Err()
		}))
		if holding != masters {
			t.Errorf("records on %d of %d masters; want all", holding, masters)
		}
	})
}

// deletePrefix deletes the test's keys from every master.
func deletePrefix(t *testing.T, rdb *redis.ClusterClient, prefix string) {
	ctx := context.Background()
	err := rdb.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		iter := m.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			if err := m.Del(ctx, iter.Val()).Err(); err != nil {
				return err
			}
		}
		return iter.Err()
	})
	if err != nil {
		t.Errorf("clean up %s*: %v", prefix, err)
	}
}
