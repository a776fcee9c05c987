package dedupe

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// safePolicy is the only maxmemory-policy under which Redis never evicts a
// record: every other one evicts keys with a TTL, and every record has one.
const safePolicy = "noeviction"

var (
	// ErrEvictionPolicy means a Redis node may evict records when its memory
	// is full: refuse to start.
	ErrEvictionPolicy = errors.New("maxmemory-policy may evict dedupe records (set it to " + safePolicy + ")")
	// ErrDurabilityUnknown means the eviction policy could not be read:
	// CONFIG is disabled or renamed, as on many managed Redis services.
	// The caller may start with a warning, having checked the policy in the
	// service's own settings.
	ErrDurabilityUnknown = errors.New("cannot read maxmemory-policy (CONFIG GET refused)")
)

// CheckDurability reads maxmemory-policy on the server, or on every node of
// a Cluster (replicas too: one is promoted in a failover) or Ring, and
// returns ErrEvictionPolicy naming each node whose policy is not noeviction.
// If no node is refused but some could not tell (CONFIG GET refused), it
// returns ErrDurabilityUnknown; a Redis it cannot reach is any other error.
// Through Sentinel it sees the current master only. See the package
// documentation's Durability section.
func (s *Store) CheckDurability(ctx context.Context) error {
	var (
		mu               sync.Mutex
		refused, unknown []error
		other            []error
	)
	check := func(ctx context.Context, c *redis.Client) error {
		err := checkPolicy(ctx, c)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case errors.Is(err, ErrEvictionPolicy):
			refused = append(refused, err)
		case errors.Is(err, ErrDurabilityUnknown):
			unknown = append(unknown, err)
		case err != nil:
			other = append(other, err)
		}
		return nil // every node is checked
	}
	var err error
	switch c := s.rdb.(type) {
	case *redis.ClusterClient:
		err = c.ForEachShard(ctx, check)
	case *redis.Ring:
		err = c.ForEachShard(ctx, check)
	case *redis.Client:
		err = check(ctx, c)
	default:
		err = fmt.Errorf("unsupported client %T", s.rdb)
	}
	if err != nil {
		other = append(other, err)
	}
	for _, errs := range [][]error{refused, other, unknown} {
		if len(errs) > 0 {
			return fmt.Errorf("dedupe: check durability: %w", errors.Join(errs...))
		}
	}
	return nil
}

// checkPolicy checks one node.
func checkPolicy(ctx context.Context, c *redis.Client) error {
	addr := c.Options().Addr
	m, err := c.ConfigGet(ctx, "maxmemory-policy").Result()
	var rerr redis.Error
	switch {
	case errors.As(err, &rerr):
		// The server answered, with an error: CONFIG is disabled, renamed
		// or not permitted to this user.
		return fmt.Errorf("%s: %w: %v", addr, ErrDurabilityUnknown, err)
	case err != nil:
		return fmt.Errorf("%s: config get maxmemory-policy: %w", addr, err)
	}
	p, ok := m["maxmemory-policy"]
	switch {
	case !ok:
		return fmt.Errorf("%s: %w: no maxmemory-policy in the reply", addr, ErrDurabilityUnknown)
	case p != safePolicy:
		return fmt.Errorf("%s: %w: it is %s", addr, ErrEvictionPolicy, p)
	}
	return nil
}
