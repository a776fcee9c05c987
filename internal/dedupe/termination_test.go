package dedupe_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wxterm/wxterm/internal/dedupe"
)

func record(t *testing.T, e env, id, event string) dedupe.Termination {
	t.Helper()
	tm, err := e.s.RecordTermination(t.Context(), code, id, []byte(event))
	must(t, err)
	return tm
}

func TestRecordTermination(t *testing.T) { testRecordTermination(t, newEnv) }

// testRecordTermination runs the notification rules on stores from newEnv
// (also on a Cluster): the first termination recorded is the contract's
// one, repeats are idempotent, and a live claim holds a notification back.
func testRecordTermination(t *testing.T, newEnv func(*testing.T) env) {
	t.Parallel()
	tests := []struct {
		name      string
		setup     func(*testing.T, env)
		id        string
		want      dedupe.Termination
		wantLease time.Duration // LeaseUntil - now, for TermBusy
		publish   bool
	}{
		{
			name: "absent",
			id:   "n1",
			want: dedupe.Termination{Status: dedupe.TermRecorded, TerminatedBy: "n1", Outcome: []byte("tn1")}, publish: true,
		},
		{
			name:  "WeChat Pay repeats it before it was published",
			setup: func(t *testing.T, e env) { record(t, e, "n1", "tn1") },
			id:    "n1",
			want:  dedupe.Termination{Status: dedupe.TermRecorded, TerminatedBy: "n1", Outcome: []byte("tn1")}, publish: true,
		},
		{
			name: "WeChat Pay repeats it after it was published",
			setup: func(t *testing.T, e env) {
				record(t, e, "n1", "tn1")
				must(t, e.s.MarkPublished(t.Context(), code, "n1"))
			},
			id:   "n1",
			want: dedupe.Termination{Status: dedupe.TermRecorded, TerminatedBy: "n1", Outcome: []byte("tn1"), Published: true},
		},
		{
			name:  "another notification terminated it",
			setup: func(t *testing.T, e env) { record(t, e, "n0", "tn0") },
			id:    "n1",
			want:  dedupe.Termination{Status: dedupe.TermAlreadyTerminated, TerminatedBy: "n0", Outcome: []byte("tn0")},
		},
		{
			name:  "a request terminated it",
			setup: func(t *testing.T, e env) { fail(t, e, "r1", dedupe.KindTerminated, []byte("t1")) },
			id:    "n1",
			want:  dedupe.Termination{Status: dedupe.TermAlreadyTerminated, TerminatedBy: "r1", Outcome: []byte("t1")},
		},
		{
			name:      "a claim in flight under a live lease holds it back",
			setup:     func(t *testing.T, e env) { claim(t, e, "r1", "A"); e.clk.Advance(time.Second) },
			id:        "n1",
			want:      dedupe.Termination{Status: dedupe.TermBusy, Owner: "A"},
			wantLease: lease - time.Second,
		},
		{
			name:  "a claim whose lease expired does not",
			setup: func(t *testing.T, e env) { claim(t, e, "r1", "A"); e.clk.Advance(lease) },
			id:    "n1",
			want:  dedupe.Termination{Status: dedupe.TermRecorded, TerminatedBy: "n1", Outcome: []byte("tn1")}, publish: true,
		},
		{
			name: "a released claim does not",
			setup: func(t *testing.T, e env) {
				claim(t, e, "r1", "A")
				must(t, e.s.Release(t.Context(), code, "A"))
			},
			id:   "n1",
			want: dedupe.Termination{Status: dedupe.TermRecorded, TerminatedBy: "n1", Outcome: []byte("tn1")}, publish: true,
		},
		{
			name: "after failures, one unknown",
			setup: func(t *testing.T, e env) {
				fail(t, e, "r1", dedupe.KindFailed, []byte("f1"))
				fail(t, e, "r2", dedupe.KindUnknown, []byte("f2"))
			},
			id:   "n1",
			want: dedupe.Termination{Status: dedupe.TermRecorded, TerminatedBy: "n1", Outcome: []byte("tn1")}, publish: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			if tt.setup != nil {
				tt.setup(t, e)
			}
			got := record(t, e, tt.id, "t"+tt.id)
			want := tt.want
			if tt.wantLease != 0 {
				want.LeaseUntil = e.clk.Now().Add(tt.wantLease)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) || !got.LeaseUntil.Equal(want.LeaseUntil) {
				t.Errorf("RecordTermination(%s):\n got %+v;\nwant %+v", tt.id, got, want)
			}
			if got.MustPublish() != tt.publish {
				t.Errorf("MustPublish: got %v; want %v", got.MustPublish(), tt.publish)
			}
		})
	}
}

// TestTerminationAfterNotification: once a notification is recorded, every
// request is answered from it, a request's own earlier failure excepted,
// and a claim it overtook (lease expired) can no longer write.
func TestTerminationAfterNotification(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fail(t, e, "r1", dedupe.KindUnknown, []byte("f1"))
	claim(t, e, "r2", "A")
	e.clk.Advance(lease)
	if tm := record(t, e, "n1", "tn1"); tm.Status != dedupe.TermRecorded {
		t.Fatalf("RecordTermination: got %v; want TermRecorded", tm.Status)
	}
	if err := e.s.Extend(t.Context(), code, "A"); !errors.Is(err, dedupe.ErrNotOwner) {
		t.Errorf("Extend by the overtaken owner: got %v; want ErrNotOwner", err)
	}
	if err := e.s.Complete(t.Context(), code, "r2", "A", dedupe.KindTerminated, outcome); !errors.Is(err, dedupe.ErrNotOwner) {
		t.Errorf("Complete by the overtaken owner: got %v; want ErrNotOwner", err)
	}
	for _, tt := range []struct {
		req    string
		status dedupe.Status
		by     string
	}{
		{"r1", dedupe.Done, "r1"},
		{"r2", dedupe.Terminated, "n1"},
		{"r3", dedupe.Terminated, "n1"},
	} {
		c := claim(t, e, tt.req, "B")
		if c.Status != tt.status || c.OutcomeRequestID != tt.by {
			t.Errorf("Claim(%s): got %v of %s; want %v of %s", tt.req, c.Status, c.OutcomeRequestID, tt.status, tt.by)
		}
	}
	r, err := e.s.Get(t.Context(), code)
	must(t, err)
	if r.Unknown != "" || r.State != dedupe.StateDone || r.Owner != "" {
		t.Errorf("record: got state %q owner %q unknown %q; want done, no owner, no unknown mark", r.State, r.Owner, r.Unknown)
	}
}

// TestNotificationRacesIntent: a notification and an intent for the same
// contract, in either order and interleaved: exactly one of them records
// the termination (and publishes it first-hand); the other is answered from
// it. The notification retries on TermBusy as its caller must.
func TestNotificationRacesIntent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const rounds = 50
	for i := range rounds {
		c := fmt.Sprintf("RACE%03d", i)
		var wg sync.WaitGroup
		var intentTerminated, notificationRecorded bool
		var intentErr, noteErr error
		wg.Go(func() {
			cl, err := e.s.Claim(t.Context(), c, "r1", "W")
			if err != nil {
				intentErr = err
				return
			}
			switch cl.Status {
			case dedupe.Claimed:
				intentErr = e.s.Complete(t.Context(), c, "r1", "W", dedupe.KindTerminated, []byte("by intent"))
				intentTerminated = intentErr == nil
			case dedupe.Terminated:
				if cl.OutcomeRequestID != "n1" {
					intentErr = fmt.Errorf("terminated by %s; want n1", cl.OutcomeRequestID)
				}
			default:
				intentErr = fmt.Errorf("claim: got %v", cl.Status)
			}
		})
		wg.Go(func() {
			for {
				tm, err := e.s.RecordTermination(t.Context(), c, "n1", []byte("by notification"))
				if err != nil {
					noteErr = err
					return
				}
				switch tm.Status {
				case dedupe.TermBusy:
					continue // the intent's claim is live: it completes soon
				case dedupe.TermRecorded:
					notificationRecorded = true
				case dedupe.TermAlreadyTerminated:
					if tm.TerminatedBy != "r1" || string(tm.Outcome) != "by intent" {
						noteErr = fmt.Errorf("already terminated by %s %q; want r1's", tm.TerminatedBy, tm.Outcome)
					}
				}
				return
			}
		})
		wg.Wait()
		must(t, intentErr)
		must(t, noteErr)
		if intentTerminated == notificationRecorded {
			t.Errorf("%s: intent terminated %v, notification recorded %v; want exactly one", c, intentTerminated, notificationRecorded)
		}
	}
}

func TestRecordTerminationRejects(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, args := range [][3]string{{"", "n1", "x"}, {code, "", "x"}, {code, "n1", ""}, {code, "n 1", "x"}} {
		// Review of issue 14: the consumer retried these refusals as if
		// Redis were down; ErrInvalidArgument tells them apart.
		if _, err := e.s.RecordTermination(t.Context(), args[0], args[1], []byte(args[2])); !errors.Is(err, dedupe.ErrInvalidArgument) {
			t.Errorf("RecordTermination(%q, %q, %q): got %v; want ErrInvalidArgument", args[0], args[1], args[2], err)
		}
	}
	if n, err := e.rdb.Exists(t.Context(), e.key(code)).Result(); err != nil || n != 0 {
		t.Errorf("a rejected call wrote a record: got %d, %v", n, err)
	}
}

func TestTermStatusString(t *testing.T) {
	for st, want := range map[dedupe.TermStatus]string{
		dedupe.TermRecorded: "TermRecorded", dedupe.TermAlreadyTerminated: "TermAlreadyTerminated",
		dedupe.TermBusy: "TermBusy", 7: "TermStatus(7)",
	} {
		if got := st.String(); got != want {
			t.Errorf("TermStatus(%d).String(): got %q; want %q", int(st), got, want)
		}
	}
}
