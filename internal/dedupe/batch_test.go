package dedupe

import (
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/wxterm/wxterm/internal/testenv"
)

// Concurrent callers share pipelines, each gets its own answer, and a script
// cache emptied meanwhile (SCRIPT FLUSH) costs a retry, not an error.
func TestBatchedScripts(t *testing.T) {
	t.Run("redis", func(t *testing.T) { testBatchedScripts(t, testenv.Redis(t)) })
	t.Run("cluster", func(t *testing.T) { testBatchedScripts(t, testenv.RedisCluster(t)) })
}

func testBatchedScripts(t *testing.T, rdb redis.UniversalClient) {
	s := New(rdb, Options{Prefix: "wxterm:" + testenv.Unique(t) + ":"})
	if err := rdb.ScriptFlush(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	const n = 300
	var g errgroup.Group
	for i := range n {
		g.Go(func() error {
			code, req, owner := fmt.Sprintf("B%03d", i), fmt.Sprintf("r%03d", i), fmt.Sprintf("w%03d", i)
			c, err := s.Claim(t.Context(), code, req, owner)
			if err == nil && (c.Status != Claimed || c.Owner != owner) {
				err = fmt.Errorf("%s: claim got %v owner %q; want Claimed by %s", code, c.Status, c.Owner, owner)
			}
			if err == nil {
				err = s.Complete(t.Context(), code, req, owner, KindTerminated, []byte("outcome of "+req))
			}
			if err == nil {
				err = s.MarkPublished(t.Context(), code, req)
			}
			if err == nil {
				// Another owner's write is refused even inside a shared pipeline.
				if err2 := s.Complete(t.Context(), code, req, "intruder", KindFailed, nil); err2 == nil {
					err = fmt.Errorf("%s: complete by a non-owner succeeded", code)
				}
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Error(err)
	}
	for i := range n {
		code, req := fmt.Sprintf("B%03d", i), fmt.Sprintf("r%03d", i)
		r, err := s.Get(t.Context(), code)
		if err != nil || r.State != StateDone || string(r.Outcome) != "outcome of "+req || !r.Published[req] {
			t.Errorf("%s: got %+v, %v; want done, its own outcome, published", code, r, err)
		}
	}
	calls, trips := 4*n, s.batch.trips.Load()
	if trips >= int64(calls) {
		t.Errorf("%d calls took %d round trips; want concurrent calls to share pipelines", calls, trips)
	}
	t.Logf("%d calls in %d round trips", calls, trips)
}
