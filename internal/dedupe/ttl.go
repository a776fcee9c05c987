package dedupe

import (
	"context"
	"fmt"
	"time"
)

// TTL returns how long the record of outContractCode has left before
// Redis drops it (refreshed by every write): for operators (cmd/status).
// It returns ErrNotFound if the record is absent, and 0 if it has no TTL.
func (s *Store) TTL(ctx context.Context, outContractCode string) (time.Duration, error) {
	d, err := s.rdb.PTTL(ctx, s.key(outContractCode)).Result()
	switch {
	case err != nil:
		return 0, fmt.Errorf("dedupe: ttl %s: %w", outContractCode, err)
	case d == -2: // go-redis passes PTTL's -2 (no key) and -1 (no TTL) through unscaled
		return 0, fmt.Errorf("dedupe: ttl %s: %w", outContractCode, ErrNotFound)
	case d < 0:
		return 0, nil
	}
	return d, nil
}
