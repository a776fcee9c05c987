package dedupe_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/testenv"
)

const (
	code  = "ABC123"
	lease = 30 * time.Second
)

// clock is a settable Options.Now, safe for concurrent use.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is a Store under test with its clock and client.
type env struct {
	s      *dedupe.Store
	clk    *clock
	rdb    redis.UniversalClient
	prefix string
}

func (e env) key(code string) string { return e.prefix + "{" + code + "}" }

// newEnv returns a loaded Store on testenv.Redis.
func newEnv(t *testing.T) env {
	t.Helper()
	return newEnvOn(t, testenv.Redis(t), "wxterm:contract:")
}

func newEnvOn(t *testing.T, rdb redis.UniversalClient, prefix string) env {
	t.Helper()
	clk := newClock()
	s := dedupe.New(rdb, dedupe.Options{Prefix: prefix, Lease: lease, Now: clk.Now})
	if err := s.Load(t.Context()); err != nil {
		t.Fatalf("Load: %v", err)
	}
	return env{s: s, clk: clk, rdb: rdb, prefix: prefix}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func claim(t *testing.T, e env, req, owner string) dedupe.Claim {
	t.Helper()
	c, err := e.s.Claim(t.Context(), code, req, owner)
	must(t, err)
	return c
}

// outcome is deliberately not UTF-8 and holds a NUL: records are binary safe.
var outcome = []byte("{\"event\":\x00\xff}")

func TestClaim(t *testing.T) { testClaim(t, newEnv) }

// testClaim runs the state machine's table on stores from newEnv (also on a Cluster).
func testClaim(t *testing.T, newEnv func(*testing.T) env) {
	t.Parallel()
	tests := []struct {
		name       string
		setup      func(t *testing.T, e env)
		req, owner string
		want       dedupe.Claim
		wantLease  time.Duration // LeaseUntil - now after setup, if the claim has one
	}{
		{
			name: "absent",
			req:  "r1", owner: "B",
			want:      dedupe.Claim{Status: dedupe.Claimed, Owner: "B"},
			wantLease: lease,
		},
		{
			name:  "same owner and request again: a retry",
			setup: func(t *testing.T, e env) { claim(t, e, "r1", "B"); e.clk.Advance(10 * time.Second) },
			req:   "r1", owner: "B",
			want:      dedupe.Claim{Status: dedupe.Claimed, Owner: "B"},
			wantLease: lease,
		},
		{
			name:  "live lease, other owner",
			setup: func(t *testing.T, e env) { claim(t, e, "r1", "A"); e.clk.Advance(10 * time.Second) },
			req:   "r1", owner: "B",
			want:      dedupe.Claim{Status: dedupe.Busy, Owner: "A"},
			wantLease: lease - 10*time.Second,
		},
		{
			name:  "live lease, other owner, other request",
			setup: func(t *testing.T, e env) { claim(t, e, "r1", "A") },
			req:   "r2", owner: "B",
			want:      dedupe.Claim{Status: dedupe.Busy, Owner: "A"},
			wantLease: lease,
		},
		{
			name:  "live lease, same owner, other request",
			setup: func(t *testing.T, e env) { claim(t, e, "r1", "B") },
			req:   "r2", owner: "B",
			want:      dedupe.Claim{Status: dedupe.Busy, Owner: "B"},
			wantLease: lease,
		},
		{
			name:  "lease expires exactly now",
			setup: func(t *testing.T, e env) { claim(t, e, "r1", "A"); e.clk.Advance(lease) },
			req:   "r1", owner: "B",
			want:      dedupe.Claim{Status: dedupe.TakenOver, Owner: "B"},
			wantLease: lease,
		},
		{
			name:  "expired lease, same owner: it may have called, query first",
			setup: func(t *testing.T, e env) { claim(t, e, "r1", "B"); e.clk.Advance(time.Hour) },
			req:   "r1", owner: "B",
			want:      dedupe.Claim{Status: dedupe.TakenOver, Owner: "B"},
			wantLease: lease,
		},
		{
			// Bug (issue 12 item 3): the reply to a takeover was lost and
			// go-redis retried it with the same owner: the script answered
			// Claimed, so the worker terminated without querying first.
			name: "taken over, the same claim retried: still a takeover",
			setup: func(t *testing.T, e env) {
				claim(t, e, "r1", "A")
				e.clk.Advance(lease)
				claim(t, e, "r1", "B")
				e.clk.Advance(time.Second)
			},
			req: "r1", owner: "B",
			want:      dedupe.Claim{Status: dedupe.TakenOver, Owner: "B"},
			wantLease: lease,
		},
		{
			name: "released",
			setup: func(t *testing.T, e env) {
				claim(t, e, "r1", "A")
				must(t, e.s.Release(t.Context(), code, "A"))
			},
			req: "r1", owner: "B",
			want:      dedupe.Claim{Status: dedupe.TakenOver, Owner: "B"},
			wantLease: lease,
		},
		{
			name: "released, the releasing owner claims again",
			setup: func(t *testing.T, e env) {
				claim(t, e, "r1", "B")
				must(t, e.s.Release(t.Context(), code, "B"))
			},
			req: "r1", owner: "B",
			want:      dedupe.Claim{Status: dedupe.TakenOver, Owner: "B"},
			wantLease: lease,
		},
		{
			name:  "terminated, same request, not published",
			setup: completed("r1", dedupe.KindTerminated, false),
			req:   "r1", owner: "B",
			want: dedupe.Claim{Status: dedupe.Done, Owner: "A", Kind: dedupe.KindTerminated, Outcome: outcome, OutcomeRequestID: "r1"},
		},
		{
			name:  "terminated, same request, published",
			setup: completed("r1", dedupe.KindTerminated, true),
			req:   "r1", owner: "B",
			want: dedupe.Claim{Status: dedupe.Done, Owner: "A", Kind: dedupe.KindTerminated, Outcome: outcome, OutcomeRequestID: "r1", Published: true},
		},
		{
			name:  "terminated, other request",
			setup: completed("r1", dedupe.KindTerminated, true),
			req:   "r2", owner: "B",
			want: dedupe.Claim{Status: dedupe.Terminated, Owner: "A", Kind: dedupe.KindTerminated, Outcome: outcome, OutcomeRequestID: "r1"},
		},
		{
			name: "terminated, other request already published",
			setup: func(t *testing.T, e env) {
				completed("r1", dedupe.KindTerminated, true)(t, e)
				must(t, e.s.MarkPublished(t.Context(), code, "r2"))
			},
			req: "r2", owner: "B",
			want: dedupe.Claim{Status: dedupe.Terminated, Owner: "A", Kind: dedupe.KindTerminated, Outcome: outcome, OutcomeRequestID: "r1", Published: true},
		},
		{
			name: "terminated long ago, far past any lease",
			setup: func(t *testing.T, e env) {
				completed("r1", dedupe.KindTerminated, true)(t, e)
				e.clk.Advance(29 * 24 * time.Hour)
			},
			req: "r2", owner: "A",
			want: dedupe.Claim{Status: dedupe.Terminated, Owner: "A", Kind: dedupe.KindTerminated, Outcome: outcome, OutcomeRequestID: "r1"},
		},
		{
			name:  "failed, same request",
			setup: completed("r1", dedupe.KindFailed, true),
			req:   "r1", owner: "B",
			want: dedupe.Claim{Status: dedupe.Done, Owner: "A", Kind: dedupe.KindFailed, Outcome: outcome, OutcomeRequestID: "r1", Published: true},
		},
		{
			name:  "failed, other request: a failure does not block",
			setup: completed("r1", dedupe.KindFailed, true),
			req:   "r2", owner: "B",
			want:      dedupe.Claim{Status: dedupe.Claimed, Owner: "B"},
			wantLease: lease,
		},
		{
			name: "failed, other request in flight: the failed request still gets its outcome",
			setup: func(t *testing.T, e env) {
				completed("r1", dedupe.KindFailed, false)(t, e)
				claim(t, e, "r2", "B")
			},
			req: "r1", owner: "C",
			want:      dedupe.Claim{Status: dedupe.Done, Owner: "B", Kind: dedupe.KindFailed, Outcome: outcome, OutcomeRequestID: "r1"},
			wantLease: lease,
		},
		{
			name: "failed, other request in flight, live lease",
			setup: func(t *testing.T, e env) {
				completed("r1", dedupe.KindFailed, true)(t, e)
				claim(t, e, "r2", "B")
			},
			req: "r2", owner: "C",
			want:      dedupe.Claim{Status: dedupe.Busy, Owner: "B"},
			wantLease: lease,
		},
		{
			name: "failed, other request released: taken over, failure kept",
			setup: func(t *testing.T, e env) {
				completed("r1", dedupe.KindFailed, true)(t, e)
				claim(t, e, "r2", "B")
				must(t, e.s.Release(t.Context(), code, "B"))
			},
			req: "r2", owner: "C",
			want:      dedupe.Claim{Status: dedupe.TakenOver, Owner: "C"},
			wantLease: lease,
		},
		{
			// Bug (issue 12 item 4): one outcome slot per record: when r1
			// failed and then r2 failed, r2's failure replaced r1's, and a
			// redelivery of r1 was claimed again and called WeChat Pay.
			name: "failed, then another request failed: each keeps its own",
			setup: func(t *testing.T, e env) {
				completed("r1", dedupe.KindFailed, true)(t, e)
				claim(t, e, "r2", "B")
				must(t, e.s.Complete(t.Context(), code, "r2", "B", dedupe.KindFailed, []byte("f2")))
			},
			req: "r1", owner: "C",
			want: dedupe.Claim{Status: dedupe.Done, Owner: "B", Kind: dedupe.KindFailed, Outcome: outcome, OutcomeRequestID: "r1", Published: true},
		},
		{
			// The failure of r1 used to be overwritten by r2's termination, and r1
			// was answered from it: each request keeps its own outcome now.
			name: "failed, then terminated by another request: the failed request gets its own",
			setup: func(t *testing.T, e env) {
				completed("r1", dedupe.KindFailed, true)(t, e)
				claim(t, e, "r2", "B")
				must(t, e.s.Complete(t.Context(), code, "r2", "B", dedupe.KindTerminated, []byte("t2")))
			},
			req: "r1", owner: "C",
			want: dedupe.Claim{Status: dedupe.Done, Owner: "B", Kind: dedupe.KindFailed, Outcome: outcome, OutcomeRequestID: "r1", Published: true},
		},
		{
			name: "failed, then terminated by another request: a third is answered terminated",
			setup: func(t *testing.T, e env) {
				completed("r1", dedupe.KindFailed, true)(t, e)
				claim(t, e, "r2", "B")
				must(t, e.s.Complete(t.Context(), code, "r2", "B", dedupe.KindTerminated, []byte("t2")))
			},
			req: "r3", owner: "C",
			want: dedupe.Claim{Status: dedupe.Terminated, Owner: "B", Kind: dedupe.KindTerminated, Outcome: []byte("t2"), OutcomeRequestID: "r2"},
		},
		{
			// Issue 12 item 5: a failure whose call may have reached WeChat Pay
			// let the next request terminate without querying first.
			name: "failed with the outcome unknown, other request: query first",
			setup: func(t *testing.T, e env) {
				claim(t, e, "r1", "A")
				must(t, e.s.Complete(t.Context(), code, "r1", "A", dedupe.KindUnknown, outcome))
			},
			req: "r2", owner: "B",
			want:      dedupe.Claim{Status: dedupe.TakenOver, Owner: "B"},
			wantLease: lease,
		},
		{
			name: "failed with the outcome unknown, the takeover retried: still a takeover",
			setup: func(t *testing.T, e env) {
				claim(t, e, "r1", "A")
				must(t, e.s.Complete(t.Context(), code, "r1", "A", dedupe.KindUnknown, outcome))
				claim(t, e, "r2", "B")
			},
			req: "r2", owner: "B",
			want:      dedupe.Claim{Status: dedupe.TakenOver, Owner: "B"},
			wantLease: lease,
		},
		{
			name: "failed with the outcome unknown, same request: its own outcome",
			setup: func(t *testing.T, e env) {
				claim(t, e, "r1", "A")
				must(t, e.s.Complete(t.Context(), code, "r1", "A", dedupe.KindUnknown, outcome))
			},
			req: "r1", owner: "B",
			want: dedupe.Claim{Status: dedupe.Done, Owner: "A", Kind: dedupe.KindUnknown, Outcome: outcome, OutcomeRequestID: "r1"},
		},
		{
			name: "failed unknown, then a known failure after the query: the mark is cleared",
			setup: func(t *testing.T, e env) {
				claim(t, e, "r1", "A")
				must(t, e.s.Complete(t.Context(), code, "r1", "A", dedupe.KindUnknown, outcome))
				claim(t, e, "r2", "B")
				must(t, e.s.Complete(t.Context(), code, "r2", "B", dedupe.KindFailed, outcome))
			},
			req: "r3", owner: "C",
			want:      dedupe.Claim{Status: dedupe.Claimed, Owner: "C"},
			wantLease: lease,
		},
		{
			name: "failed unknown, then unknown again: the mark stays",
			setup: func(t *testing.T, e env) {
				claim(t, e, "r1", "A")
				must(t, e.s.Complete(t.Context(), code, "r1", "A", dedupe.KindUnknown, outcome))
				claim(t, e, "r2", "B")
				must(t, e.s.Complete(t.Context(), code, "r2", "B", dedupe.KindUnknown, outcome))
			},
			req: "r3", owner: "C",
			want:      dedupe.Claim{Status: dedupe.TakenOver, Owner: "C"},
			wantLease: lease,
		},
		{
			name: "terminated by a notification",
			setup: func(t *testing.T, e env) {
				_, err := e.s.RecordTermination(t.Context(), code, "n1", []byte("tn"))
				must(t, err)
			},
			req: "r1", owner: "B",
			want: dedupe.Claim{Status: dedupe.Terminated, Kind: dedupe.KindTerminated, Outcome: []byte("tn"), OutcomeRequestID: "n1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			if tt.setup != nil {
				tt.setup(t, e)
			}
			got := claim(t, e, tt.req, tt.owner)
			want := tt.want
			if tt.wantLease != 0 {
				want.LeaseUntil = e.clk.Now().Add(tt.wantLease)
			}
			if !equalClaim(got, want) {
				t.Errorf("Claim(%s, %s):\n got %+v;\nwant %+v", tt.req, tt.owner, got, want)
			}
		})
	}
}

// completed is a setup: owner A claims req, completes it with outcome, and
// publishes it if published.
func completed(req, kind string, published bool) func(*testing.T, env) {
	return func(t *testing.T, e env) {
		t.Helper()
		if c := claim(t, e, req, "A"); c.Status != dedupe.Claimed {
			t.Fatalf("setup: Claim: got %v; want Claimed", c.Status)
		}
		must(t, e.s.Complete(t.Context(), code, req, "A", kind, outcome))
		if published {
			must(t, e.s.MarkPublished(t.Context(), code, req))
		}
	}
}

func equalClaim(a, b dedupe.Claim) bool {
	return a.Status == b.Status && a.Owner == b.Owner && a.LeaseUntil.Equal(b.LeaseUntil) &&
		a.Kind == b.Kind && bytes.Equal(a.Outcome, b.Outcome) &&
		a.OutcomeRequestID == b.OutcomeRequestID && a.Published == b.Published
}

func TestClaimRejectsEmptyArguments(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, args := range [][3]string{{"", "r1", "A"}, {code, "", "A"}, {code, "r1", ""}} {
		if _, err := e.s.Claim(t.Context(), args[0], args[1], args[2]); err == nil {
			t.Errorf("Claim(%q, %q, %q): got nil error; want one", args[0], args[1], args[2])
		}
	}
	if n, err := e.rdb.Exists(t.Context(), e.key("")).Result(); err != nil || n != 0 {
		t.Errorf("record for an empty code: got %d, %v; want none", n, err)
	}
}

// TestClaimRace: of many workers claiming at once, exactly one wins, whether
// the record is absent or its lease has expired.
func TestClaimRace(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		setup func(*testing.T, env)
		win   dedupe.Status
	}{
		{"absent", func(*testing.T, env) {}, dedupe.Claimed},
		{"expired lease", func(t *testing.T, e env) { claim(t, e, "r1", "dead"); e.clk.Advance(2 * lease) }, dedupe.TakenOver},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			tt.setup(t, e)
			const n = 64
			got := make([]dedupe.Claim, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					got[i], errs[i] = e.s.Claim(t.Context(), code, "r1", fmt.Sprint("w", i))
				})
			}
			wg.Wait()
			winner := ""
			for i, c := range got {
				must(t, errs[i])
				switch c.Status {
				case tt.win:
					if winner != "" {
						t.Errorf("two winners: %s and %s", winner, c.Owner)
					}
					winner = c.Owner
				case dedupe.Busy:
				default:
					t.Errorf("worker %d: got %v; want %v or Busy", i, c.Status, tt.win)
				}
			}
			for i, c := range got {
				if c.Owner != winner {
					t.Errorf("worker %d: got owner %q; want the winner %q", i, c.Owner, winner)
				}
			}
			r, err := e.s.Get(t.Context(), code)
			must(t, err)
			if winner == "" || r.Owner != winner {
				t.Errorf("record owner: got %q; want the winner %q", r.Owner, winner)
			}
		})
	}
}

func TestExtend(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		setup   func(*testing.T, env)
		owner   string
		wantErr error
	}{
		{"owner", func(t *testing.T, e env) { claim(t, e, "r1", "A") }, "A", nil},
		{"owner, expired but not taken over", func(t *testing.T, e env) { claim(t, e, "r1", "A"); e.clk.Advance(time.Hour) }, "A", nil},
		{"other owner", func(t *testing.T, e env) { claim(t, e, "r1", "A") }, "B", dedupe.ErrNotOwner},
		{"taken over", func(t *testing.T, e env) {
			claim(t, e, "r1", "A")
			e.clk.Advance(time.Hour)
			claim(t, e, "r1", "B")
		}, "A", dedupe.ErrNotOwner},
		{"released", func(t *testing.T, e env) { claim(t, e, "r1", "A"); must(t, e.s.Release(t.Context(), code, "A")) }, "A", dedupe.ErrNotOwner},
		{"completed", completed("r1", dedupe.KindFailed, false), "A", dedupe.ErrNotOwner},
		{"absent", func(*testing.T, env) {}, "A", dedupe.ErrNotOwner},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			tt.setup(t, e)
			e.clk.Advance(time.Second)
			err := e.s.Extend(t.Context(), code, tt.owner)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Extend: got %v; want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			r, err := e.s.Get(t.Context(), code)
			must(t, err)
			if want := e.clk.Now().Add(lease); !r.LeaseUntil.Equal(want) {
				t.Errorf("LeaseUntil: got %v; want %v", r.LeaseUntil, want)
			}
		})
	}
}

func TestComplete(t *testing.T) {
	t.Parallel()
	terminatedR1 := []dedupe.Outcome{{RequestID: "r1", Kind: dedupe.KindTerminated}}
	tests := []struct {
		name       string
		setup      func(*testing.T, env)
		req, owner string
		wantErr    error
		want       dedupe.Record // State, Owner, OutcomeRequestID, Kind and the Outcomes' RequestID and Kind checked
	}{
		{
			name:  "owner",
			setup: func(t *testing.T, e env) { claim(t, e, "r1", "A") },
			req:   "r1", owner: "A",
			want: dedupe.Record{State: dedupe.StateDone, Owner: "A", OutcomeRequestID: "r1", Kind: dedupe.KindTerminated, Outcomes: terminatedR1},
		},
		{
			name:  "owner, lease expired but not taken over",
			setup: func(t *testing.T, e env) { claim(t, e, "r1", "A"); e.clk.Advance(time.Hour) },
			req:   "r1", owner: "A",
			want: dedupe.Record{State: dedupe.StateDone, Owner: "A", OutcomeRequestID: "r1", Kind: dedupe.KindTerminated, Outcomes: terminatedR1},
		},
		{
			name:  "again, after a lost reply",
			setup: completed("r1", dedupe.KindTerminated, false),
			req:   "r1", owner: "A",
			want: dedupe.Record{State: dedupe.StateDone, Owner: "A", OutcomeRequestID: "r1", Kind: dedupe.KindTerminated, Outcomes: terminatedR1},
		},
		{
			name: "lease lost to a takeover",
			setup: func(t *testing.T, e env) {
				claim(t, e, "r1", "A")
				e.clk.Advance(time.Hour)
				claim(t, e, "r1", "B")
			},
			req: "r1", owner: "A", wantErr: dedupe.ErrNotOwner,
			want: dedupe.Record{State: dedupe.StateInFlight, Owner: "B"},
		},
		{
			name: "released",
			setup: func(t *testing.T, e env) {
				claim(t, e, "r1", "A")
				must(t, e.s.Release(t.Context(), code, "A"))
			},
			req: "r1", owner: "A", wantErr: dedupe.ErrNotOwner,
			want: dedupe.Record{State: dedupe.StateInFlight},
		},
		{
			name:  "claimed for another request",
			setup: func(t *testing.T, e env) { claim(t, e, "r1", "A") },
			req:   "r2", owner: "A", wantErr: dedupe.ErrNotOwner,
			want: dedupe.Record{State: dedupe.StateInFlight, Owner: "A"},
		},
		{
			name: "a failure of another request is kept until then",
			setup: func(t *testing.T, e env) {
				completed("r1", dedupe.KindFailed, true)(t, e)
				claim(t, e, "r2", "B")
			},
			req: "r1", owner: "B", wantErr: dedupe.ErrNotOwner,
			want: dedupe.Record{State: dedupe.StateInFlight, Owner: "B", Outcomes: []dedupe.Outcome{{RequestID: "r1", Kind: dedupe.KindFailed}}},
		},
		{
			name:  "absent",
			setup: func(*testing.T, env) {},
			req:   "r1", owner: "A", wantErr: dedupe.ErrNotOwner,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			tt.setup(t, e)
			err := e.s.Complete(t.Context(), code, tt.req, tt.owner, dedupe.KindTerminated, outcome)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Complete: got %v; want %v", err, tt.wantErr)
			}
			r, err := e.s.Get(t.Context(), code)
			if errors.Is(err, dedupe.ErrNotFound) {
				r = dedupe.Record{}
			} else {
				must(t, err)
			}
			got := dedupe.Record{State: r.State, Owner: r.Owner, OutcomeRequestID: r.OutcomeRequestID, Kind: r.Kind}
			for _, o := range r.Outcomes {
				got.Outcomes = append(got.Outcomes, dedupe.Outcome{RequestID: o.RequestID, Kind: o.Kind})
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("record: got %+v; want %+v", got, tt.want)
			}
		})
	}
	t.Run("unknown kind", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		claim(t, e, "r1", "A")
		err := e.s.Complete(t.Context(), code, "r1", "A", "maybe", outcome)
		if err == nil || errors.Is(err, dedupe.ErrNotOwner) {
			t.Errorf("Complete: got %v; want an invalid kind error", err)
		}
	})
}

func TestRelease(t *testing.T) {
	t.Parallel()
	t.Run("owner", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		completed("r1", dedupe.KindFailed, true)(t, e)
		claim(t, e, "r2", "B")
		must(t, e.s.Release(t.Context(), code, "B"))
		r, err := e.s.Get(t.Context(), code)
		must(t, err)
		// The lease is gone, the request in flight and the earlier failure stay.
		want := dedupe.Record{Code: code, State: dedupe.StateInFlight, RequestID: "r2",
			Outcomes:  []dedupe.Outcome{{RequestID: "r1", Kind: dedupe.KindFailed, Event: outcome, Published: true}},
			Published: map[string]bool{"r1": true}, Attempts: 2}
		if fmt.Sprint(r) != fmt.Sprint(want) {
			t.Errorf("record:\n got %+v;\nwant %+v", r, want)
		}
		// Releasing twice is a no-op.
		must(t, e.s.Release(t.Context(), code, "B"))
	})
	for _, tt := range []struct {
		name  string
		setup func(*testing.T, env)
	}{
		{"other owner", func(t *testing.T, e env) { claim(t, e, "r1", "A") }},
		{"taken over", func(t *testing.T, e env) {
			claim(t, e, "r1", "B")
			e.clk.Advance(time.Hour)
			claim(t, e, "r1", "A")
		}},
		{"done", completed("r1", dedupe.KindTerminated, false)},
		{"absent", func(*testing.T, env) {}},
	} {
		t.Run("no-op: "+tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			tt.setup(t, e)
			before, _ := e.s.Get(t.Context(), code)
			if err := e.s.Release(t.Context(), code, "B"); err != nil {
				t.Fatalf("Release: got %v; want nil", err)
			}
			after, err := e.s.Get(t.Context(), code)
			if err != nil && !errors.Is(err, dedupe.ErrNotFound) {
				t.Fatal(err)
			}
			if fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("record:\n got %+v;\nwant %+v (unchanged)", after, before)
			}
		})
	}
}

func TestMarkPublished(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if err := e.s.MarkPublished(t.Context(), code, "r1"); !errors.Is(err, dedupe.ErrNotFound) {
		t.Errorf("MarkPublished on absent: got %v; want ErrNotFound", err)
	}
	if n, err := e.rdb.Exists(t.Context(), e.key(code)).Result(); err != nil || n != 0 {
		t.Errorf("MarkPublished on absent created the record: got %d, %v; want 0", n, err)
	}
	completed("r1", dedupe.KindTerminated, false)(t, e)
	must(t, e.s.MarkPublished(t.Context(), code, "r1"))
	must(t, e.s.MarkPublished(t.Context(), code, "r1"))
	r, err := e.s.Get(t.Context(), code)
	must(t, err)
	if want := map[string]bool{"r1": true}; fmt.Sprint(r.Published) != fmt.Sprint(want) {
		t.Errorf("Published: got %v; want %v", r.Published, want)
	}
}

// TestTTL: every write sets the record's TTL back to the horizon.
func TestTTL(t *testing.T) {
	t.Parallel()
	const ttl = 48 * time.Hour
	for _, tt := range []struct {
		name  string
		setup func(*testing.T, env)
		write func(*testing.T, env) error
	}{
		{"claim", nil, func(t *testing.T, e env) error { _, err := e.s.Claim(t.Context(), code, "r1", "A"); return err }},
		{"claim again", claimedBy("A"), func(t *testing.T, e env) error { _, err := e.s.Claim(t.Context(), code, "r1", "A"); return err }},
		{"take over", func(t *testing.T, e env) { claimedBy("A")(t, e); e.clk.Advance(time.Hour) },
			func(t *testing.T, e env) error { _, err := e.s.Claim(t.Context(), code, "r1", "B"); return err }},
		{"claim after failure", completed("r1", dedupe.KindFailed, true),
			func(t *testing.T, e env) error { _, err := e.s.Claim(t.Context(), code, "r2", "B"); return err }},
		{"extend", claimedBy("A"), func(t *testing.T, e env) error { return e.s.Extend(t.Context(), code, "A") }},
		{"complete", claimedBy("A"), func(t *testing.T, e env) error {
			return e.s.Complete(t.Context(), code, "r1", "A", dedupe.KindTerminated, outcome)
		}},
		{"mark published", completed("r1", dedupe.KindTerminated, false),
			func(t *testing.T, e env) error { return e.s.MarkPublished(t.Context(), code, "r1") }},
		{"release", claimedBy("A"), func(t *testing.T, e env) error { return e.s.Release(t.Context(), code, "A") }},
		{"record termination", completed("r1", dedupe.KindFailed, true), func(t *testing.T, e env) error {
			_, err := e.s.RecordTermination(t.Context(), code, "n1", outcome)
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rdb := testenv.Redis(t)
			clk := newClock()
			e := env{s: dedupe.New(rdb, dedupe.Options{TTL: ttl, Now: clk.Now}), clk: clk, rdb: rdb, prefix: "wxterm:contract:"}
			if tt.setup != nil {
				tt.setup(t, e)
				// Shorten the TTL so that the write under test must set it again.
				must(t, rdb.PExpire(t.Context(), e.key(code), time.Minute).Err())
			}
			must(t, tt.write(t, e))
			got, err := rdb.PTTL(t.Context(), e.key(code)).Result()
			must(t, err)
			if got < ttl-time.Minute || got > ttl {
				t.Errorf("TTL: got %v; want %v", got, ttl)
			}
		})
	}
}

func claimedBy(owner string) func(*testing.T, env) {
	return func(t *testing.T, e env) { claim(t, e, "r1", owner) }
}

// TestNoScript: after the server's script cache is emptied (SCRIPT FLUSH, a
// restart, a failover), every operation still works.
func TestNoScript(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	flush := func() { must(t, e.rdb.ScriptFlush(t.Context()).Err()) }
	flush()
	if c := claim(t, e, "r1", "A"); c.Status != dedupe.Claimed {
		t.Errorf("Claim: got %v; want Claimed", c.Status)
	}
	flush()
	must(t, e.s.Extend(t.Context(), code, "A"))
	flush()
	must(t, e.s.Complete(t.Context(), code, "r1", "A", dedupe.KindTerminated, outcome))
	flush()
	must(t, e.s.MarkPublished(t.Context(), code, "r1"))
	flush()
	must(t, e.s.Release(t.Context(), code, "A"))
	flush()
	if tm, err := e.s.RecordTermination(t.Context(), code, "n1", outcome); err != nil || tm.Status != dedupe.TermAlreadyTerminated {
		t.Errorf("RecordTermination: got %v, %v; want TermAlreadyTerminated", tm.Status, err)
	}
	flush()
	if c := claim(t, e, "r1", "B"); c.Status != dedupe.Done || !c.Published {
		t.Errorf("Claim: got %v, published %v; want Done, published", c.Status, c.Published)
	}
	// Without Load at all.
	s := dedupe.New(e.rdb, dedupe.Options{Prefix: "other:"})
	if c, err := s.Claim(t.Context(), code, "r1", "A"); err != nil || c.Status != dedupe.Claimed {
		t.Errorf("Claim without Load: got %v, %v; want Claimed", c.Status, err)
	}
}

func TestGetMany(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, c := range []string{"A1", "C3"} {
		if _, err := e.s.Claim(t.Context(), c, "r-"+c, "w"); err != nil {
			t.Fatal(err)
		}
	}
	must(t, e.s.Complete(t.Context(), "C3", "r-C3", "w", dedupe.KindTerminated, outcome))
	got, err := e.s.GetMany(t.Context(), []string{"A1", "B2", "C3", "D4"})
	must(t, err)
	want := []struct {
		exists bool
		state  string
	}{{true, dedupe.StateInFlight}, {false, ""}, {true, dedupe.StateDone}, {false, ""}}
	if len(got) != len(want) {
		t.Fatalf("GetMany: got %d records; want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].Exists() != w.exists || got[i].State != w.state {
			t.Errorf("record %d (%s): got exists %v, state %q; want %v, %q", i, got[i].Code, got[i].Exists(), got[i].State, w.exists, w.state)
		}
	}
	if !bytes.Equal(got[2].Outcome, outcome) {
		t.Errorf("outcome: got %q; want %q", got[2].Outcome, outcome)
	}
	if got, err := e.s.GetMany(t.Context(), nil); err != nil || got != nil {
		t.Errorf("GetMany(nil): got %v, %v; want nil, nil", got, err)
	}
	if _, err := e.s.Get(t.Context(), "B2"); !errors.Is(err, dedupe.ErrNotFound) {
		t.Errorf("Get absent: got %v; want ErrNotFound", err)
	}
}

func TestAnswered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, c := range []string{"A1", "C3"} {
		if _, err := e.s.Claim(t.Context(), c, "r-"+c, "w"); err != nil {
			t.Fatal(err)
		}
	}
	must(t, e.s.Complete(t.Context(), "C3", "r-C3", "w", dedupe.KindTerminated, outcome))
	must(t, e.s.MarkPublished(t.Context(), "C3", "r-C3"))
	got, err := e.s.Answered(t.Context(), []string{"A1", "B2", "C3", "C3"}, []string{"r-A1", "r-B2", "r-C3", "r-other"})
	must(t, err)
	want := []bool{false, false, true, false}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Answered: got %v; want %v", got, want)
	}
	if _, err := e.s.Answered(t.Context(), []string{"A1"}, nil); err == nil {
		t.Error("Answered with misaligned slices: got nil error")
	}
}

// TestRedisDown: an unreachable Redis is an error everywhere, never "absent"
// nor "not owner".
func TestRedisDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1, DialTimeout: time.Second, ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	s := dedupe.New(rdb, dedupe.Options{})
	ctx := t.Context()
	_, getManyErr := s.GetMany(ctx, []string{"A1", "B2"})
	_, getErr := s.Get(ctx, code)
	c, claimErr := s.Claim(ctx, code, "r1", "A")
	_, termErr := s.RecordTermination(ctx, code, "n1", outcome)
	_, answerErr := s.Answer(ctx, code, "r1")
	for _, tt := range []struct {
		op  string
		err error
	}{
		{"Load", s.Load(ctx)},
		{"Claim", claimErr},
		{"Extend", s.Extend(ctx, code, "A")},
		{"Complete", s.Complete(ctx, code, "r1", "A", dedupe.KindFailed, outcome)},
		{"MarkPublished", s.MarkPublished(ctx, code, "r1")},
		{"Release", s.Release(ctx, code, "A")},
		{"Get", getErr},
		{"GetMany", getManyErr},
		{"RecordTermination", termErr},
		{"Answer", answerErr},
		{"CheckDurability", s.CheckDurability(ctx)},
	} {
		if tt.err == nil || errors.Is(tt.err, dedupe.ErrNotFound) || errors.Is(tt.err, dedupe.ErrNotOwner) || errors.Is(tt.err, redis.Nil) ||
			errors.Is(tt.err, dedupe.ErrDurabilityUnknown) || errors.Is(tt.err, dedupe.ErrEvictionPolicy) {
			t.Errorf("%s: got %v; want a connection error", tt.op, tt.err)
		}
	}
	if !reflect.DeepEqual(c, dedupe.Claim{}) {
		t.Errorf("Claim: got %+v; want the zero Claim", c)
	}
	want := "dedupe: claim " + code + ": "
	if got := claimErr.Error(); len(got) < len(want) || got[:len(want)] != want {
		t.Errorf("Claim error: got %q; want it to start %q", got, want)
	}
}

func TestStatusString(t *testing.T) {
	for st, want := range map[dedupe.Status]string{
		dedupe.Claimed: "Claimed", dedupe.TakenOver: "TakenOver", dedupe.Busy: "Busy",
		dedupe.Done: "Done", dedupe.Terminated: "Terminated", 9: "Status(9)",
	} {
		if got := st.String(); got != want {
			t.Errorf("Status(%d).String(): got %q; want %q", int(st), got, want)
		}
	}
}
