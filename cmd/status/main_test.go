package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/testenv"
	"github.com/wxterm/wxterm/internal/wxapi"
	"github.com/wxterm/wxterm/internal/wxsim"
)

// rig is a Redis (real with WXTERM_TEST_REDIS) under a prefix of its own,
// and a dedupe store on it to write records as the consumer does.
type rig struct {
	addr, prefix string
	store        *dedupe.Store
	past         *dedupe.Store // its clock is a minute behind: its leases have expired
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{addr: testenv.RedisAddr(t), prefix: "wxterm:" + testenv.Unique(t) + ":"}
	cfg := func(now func() time.Time) *dedupe.Store {
		c := &config{}
		c.redis.Addrs = r.addr
		rdb, err := c.redis.Client()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rdb.Close() })
		return dedupe.New(rdb, dedupe.Options{Prefix: r.prefix, Lease: 30 * time.Second, Now: now})
	}
	r.store = cfg(time.Now)
	r.past = cfg(func() time.Time { return time.Now().Add(-time.Minute) })
	return r
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// result is a stored result event for code and request.
func result(t *testing.T, code, req string, failed bool, reason string) []byte {
	t.Helper()
	in := event.Intent{RequestID: req, OutContractCode: code, API: event.CreditRepayment, MchID: "1900000109"}
	r := event.Terminated(in, event.Source{}, event.Contract{OutContractCode: code}, 1, false, time.Now())
	if failed {
		r = event.Failed(req, code, event.CreditRepayment, "1900000109", event.Source{}, event.Failure{Reason: reason}, 1, time.Now())
	}
	b, err := json.Marshal(r)
	must(t, err)
	return b
}

// done claims code for req and completes it with kind, marking it
// published if pub.
func (r *rig) done(t *testing.T, code, req, kind string, pub bool) {
	t.Helper()
	ctx := t.Context()
	_, err := r.store.Claim(ctx, code, req, "worker-1")
	must(t, err)
	must(t, r.store.Complete(ctx, code, req, "worker-1", kind, result(t, code, req, kind != dedupe.KindTerminated, event.ReasonRetriesExhausted)))
	if pub {
		must(t, r.store.MarkPublished(ctx, code, req))
	}
}

// status runs the command and returns its exit status, stdout and stderr.
func status(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runMain(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func (r *rig) args(extra ...string) []string {
	return append([]string{"-redis-addrs", r.addr, "-dedupe-prefix", r.prefix}, extra...)
}

func reports(t *testing.T, out string) map[string]report {
	t.Helper()
	var rs []report
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatalf("-json output %q: %v", out, err)
	}
	m := map[string]report{}
	for _, r := range rs {
		m[r.OutContractCode+"/"+r.RequestID] = r
	}
	return m
}

// Issue 15 item 1: every record state, as -json reports it and the table
// shows it, and the exit status.
func TestEveryRecordState(t *testing.T) {
	r := newRig(t)
	ctx := t.Context()
	// in flight under a live lease
	_, err := r.store.Claim(ctx, "LIVE", "req-live", "worker-live")
	must(t, err)
	// in flight, its lease expired (claimed a minute ago)
	_, err = r.past.Claim(ctx, "EXPIRED", "req-old", "worker-gone")
	must(t, err)
	// taken over: its first owner's lease expired
	_, err = r.past.Claim(ctx, "TAKEOVER", "req-x", "worker-gone")
	must(t, err)
	c, err := r.store.Claim(ctx, "TAKEOVER", "req-x", "worker-new")
	must(t, err)
	if c.Status != dedupe.TakenOver {
		t.Fatalf("claim after an expired lease: got %v; want TakenOver", c.Status)
	}
	// released: handed back before any call
	_, err = r.store.Claim(ctx, "RELEASED", "req-rel", "worker-1")
	must(t, err)
	must(t, r.store.Release(ctx, "RELEASED", "worker-1"))
	r.done(t, "FAILED", "req-f", dedupe.KindFailed, true)
	r.done(t, "TERMINATED", "req-t", dedupe.KindTerminated, false)
	r.done(t, "UNKNOWN", "req-u", dedupe.KindUnknown, true)
	// several requests: a failure, then a takeover that terminated it
	r.done(t, "SEVERAL", "req-1", dedupe.KindUnknown, true)
	c, err = r.store.Claim(ctx, "SEVERAL", "req-2", "worker-2")
	must(t, err)
	if c.Status != dedupe.TakenOver {
		t.Fatalf("claim after an unknown failure: got %v; want TakenOver", c.Status)
	}
	must(t, r.store.Complete(ctx, "SEVERAL", "req-2", "worker-2", dedupe.KindTerminated, result(t, "SEVERAL", "req-2", false, "")))
	must(t, r.store.MarkPublished(ctx, "SEVERAL", "req-2"))

	targets := []string{"ABSENT", "LIVE", "EXPIRED", "RELEASED", "FAILED", "TERMINATED", "UNKNOWN", "TAKEOVER", "SEVERAL",
		"SEVERAL/req-1", "SEVERAL/req-3", "LIVE/req-live", "FAILED/req-other"}
	exit, out, errOut := status(t, r.args(append([]string{"-json"}, targets...)...)...)
	if exit != exitNotFound {
		t.Errorf("exit status: got %d; want %d (ABSENT and FAILED/req-other are not found)\n%s", exit, exitNotFound, errOut)
	}
	got := reports(t, out)
	check := func(key string, ok bool, what string) {
		t.Helper()
		if !ok {
			t.Errorf("%s: got %+v; want %s", key, got[key], what)
		}
	}
	rep := got["ABSENT/"]
	check("ABSENT/", !rep.Found && rep.State == stateAbsent, "absent, not found")
	rep = got["LIVE/"]
	check("LIVE/", rep.Found && rep.State == dedupe.StateInFlight && rep.LeaseLive && rep.Owner == "worker-live" &&
		rep.LeaseLeftMs > 0 && rep.LeaseLeftMs <= 30000 && rep.Attempts == 1 && rep.TTLMs > 0, "in flight, a live lease of worker-live, a TTL")
	rep = got["EXPIRED/"]
	check("EXPIRED/", rep.State == dedupe.StateInFlight && !rep.LeaseLive && rep.LeaseLeftMs < 0 && rep.Owner == "worker-gone", "in flight, lease expired")
	rep = got["RELEASED/"]
	check("RELEASED/", rep.Found && rep.Owner == "" && !rep.LeaseLive && len(rep.Outcomes) == 0, "released: no owner, no live lease, no outcome")
	rep = got["FAILED/"]
	check("FAILED/", rep.State == dedupe.StateDone && len(rep.Outcomes) == 1 && rep.Outcomes[0].Kind == dedupe.KindFailed &&
		rep.Outcomes[0].EventType == event.TypeFailed && rep.Outcomes[0].Reason == event.ReasonRetriesExhausted && rep.Outcomes[0].Published,
		"done, one published failure with its event type and reason")
	rep = got["TERMINATED/"]
	check("TERMINATED/", rep.State == dedupe.StateDone && len(rep.Outcomes) == 1 && rep.Outcomes[0].EventType == event.TypeTerminated &&
		!rep.Outcomes[0].Published, "done, an unpublished termination")
	rep = got["UNKNOWN/"]
	check("UNKNOWN/", rep.UnknownRequestID == "req-u" && rep.Outcomes[0].Kind == dedupe.KindUnknown, "the unknown mark of req-u")
	rep = got["TAKEOVER/"]
	check("TAKEOVER/", rep.TakenOver && rep.LeaseLive && rep.Owner == "worker-new" && rep.Attempts == 2, "taken over by worker-new, live")
	rep = got["SEVERAL/"]
	check("SEVERAL/", len(rep.Outcomes) == 2 && rep.Outcomes[0].RequestID == "req-1" && rep.Outcomes[1].RequestID == "req-2" &&
		rep.Outcomes[1].Kind == dedupe.KindTerminated && rep.Attempts == 2 && rep.UnknownRequestID == "",
		"two outcomes (req-1 unknown, req-2 terminated), the unknown mark cleared")
	rep = got["SEVERAL/req-1"]
	check("SEVERAL/req-1", rep.Found && rep.Answer != nil && rep.Answer.Own && rep.Answer.EventType == event.TypeFailed, "its own failure")
	rep = got["SEVERAL/req-3"]
	check("SEVERAL/req-3", rep.Found && rep.Answer != nil && !rep.Answer.Own && rep.Answer.FromRequestID == "req-2" && !rep.Answer.Published,
		"answered from req-2's termination, not published")
	rep = got["LIVE/req-live"]
	check("LIVE/req-live", rep.Found && rep.Answer == nil, "found, in flight, no answer yet")
	rep = got["FAILED/req-other"]
	check("FAILED/req-other", !rep.Found && rep.Answer == nil, "not found: nothing answers it")

	// The table says the same, readably.
	exit, table, _ := status(t, r.args(targets...)...)
	if exit != exitNotFound {
		t.Errorf("table: exit status %d; want %d", exit, exitNotFound)
	}
	for _, want := range []string{
		"absent (no record", "owner worker-live,", "left (until", "owner worker-gone, expired", "owner none (released)",
		"retries_exhausted", "req-u: its call may have reached WeChat Pay", "yes: the last claim took over", "already terminated, from req-2's termination",
		"none yet: the request is in flight", "none: no outcome for this request",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
}

func TestTargetsAndExitStatus(t *testing.T) {
	r := newRig(t)
	r.done(t, "HERE", "req-h", dedupe.KindTerminated, true)
	file := filepath.Join(t.TempDir(), "targets")
	must(t, os.WriteFile(file, []byte("# contracts\nHERE\n\nHERE/req-h\n"), 0o600))
	for _, tt := range []struct {
		args []string
		want int
	}{
		{[]string{"HERE"}, exitFound},
		{[]string{"-file", file}, exitFound},
		{[]string{"HERE", "GONE"}, exitNotFound},
		{[]string{"bad-code!"}, exitError},
		{[]string{"HERE/"}, exitError},
		{nil, exitError},
	} {
		if got, out, errOut := status(t, r.args(tt.args...)...); got != tt.want {
			t.Errorf("%q: exit status %d; want %d\n%s%s", tt.args, got, tt.want, out, errOut)
		}
	}
	// Redis unreachable: an error, not "not found".
	if got, _, errOut := status(t, "-redis-addrs", "127.0.0.1:1", "HERE"); got != exitError {
		t.Errorf("Redis down: exit status %d; want %d (%s)", got, exitError, errOut)
	}
}

// newSim starts a WeChat Pay simulator and returns it, its server and the
// flags of a -query against it.
func newSim(t *testing.T) (*wxsim.Server, *httptest.Server, []string) {
	t.Helper()
	keys, err := wxsim.NewKeys()
	must(t, err)
	dir := t.TempDir()
	must(t, keys.WriteFiles(dir))
	sim := wxsim.New(keys.SimOptions())
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv, []string{"-query",
		"-mchid", keys.MchID, "-mch-cert-serial", keys.MerchantCertSerial,
		"-mch-private-key-file", filepath.Join(dir, wxsim.FileMerchantKey),
		"-wechatpay-public-key-id", keys.PublicKeyID, "-wechatpay-public-key-file", filepath.Join(dir, wxsim.FilePublicKey),
		"-wechatpay-base-url", srv.URL, "-wechatpay-backup-url", srv.URL, "-wechatpay-global-url", srv.URL}
}

// -query against the simulator: the record and WeChat Pay agree or not.
func TestQueryAgreement(t *testing.T) {
	r := newRig(t)
	sim, srv, query := newSim(t)
	seed := func(code string) { sim.Seed(wxsim.Contract{API: wxapi.CreditRepayment, OutContractCode: code}) }

	seed("BOTHTERM") // terminated in both
	sim.TerminateAs("BOTHTERM", wxsim.ByMerchant, time.Now())
	r.done(t, "BOTHTERM", "req-a", dedupe.KindTerminated, true)
	seed("RECORDONLY") // the record says terminated, WeChat says effective
	r.done(t, "RECORDONLY", "req-b", dedupe.KindTerminated, true)
	seed("USERTERM") // the record holds a failure; the user terminated it since
	sim.TerminateAs("USERTERM", wxsim.ByUser, time.Now())
	r.done(t, "USERTERM", "req-c", dedupe.KindFailed, true)
	seed("STILLON") // a failure, and still effective
	r.done(t, "STILLON", "req-d", dedupe.KindFailed, true)
	sim.SeedMissing("NOSUCH") // a failure other than not_found; WeChat has no such contract
	r.done(t, "NOSUCH", "req-e", dedupe.KindFailed, true)

	flags := r.args(query...)
	targets := []string{"BOTHTERM", "RECORDONLY", "USERTERM", "STILLON", "NOSUCH", "ABSENT"}
	exit, out, errOut := status(t, append(append([]string{"-json"}, flags...), targets...)...)
	if exit != exitNotFound {
		t.Errorf("exit status %d; want %d (ABSENT)\n%s", exit, exitNotFound, errOut)
	}
	got := reports(t, out)
	for _, tt := range []struct{ code, state, verdict string }{
		{"BOTHTERM", "terminated", verdictAgree},
		{"RECORDONLY", "effective", verdictDisagree},
		{"USERTERM", "terminated", verdictDisagree},
		{"STILLON", "effective", verdictAgree},
		{"NOSUCH", stateNotFound, verdictDisagree},
	} {
		l := got[tt.code+"/"].WeChat
		if l == nil || l.State != tt.state || l.Verdict != tt.verdict {
			t.Errorf("%s: got %+v; want WeChat %s and %s", tt.code, l, tt.state, tt.verdict)
		}
	}
	if l := got["USERTERM/"].WeChat; l == nil || l.TerminationMode != string(wxapi.ModeUser) {
		t.Errorf("USERTERM: got %+v; want termination mode user", l)
	}
	if got["ABSENT/"].WeChat != nil {
		t.Errorf("ABSENT: got a query %+v; want none (no record names the API)", got["ABSENT/"].WeChat)
	}
	if n := sim.TotalTerminateCalls(); n != 0 {
		t.Errorf("status made %d terminate calls; want 0 (read-only)", n)
	}

	// The table shows the verdict.
	_, table, _ := status(t, append(flags, targets...)...)
	if !regexp.MustCompile(`verdict +DISAGREE: the record holds a termination; WeChat Pay says effective`).MatchString(table) {
		t.Errorf("table lacks RECORDONLY's verdict:\n%s", table)
	}

	// A query that fails is an error (exit 2), with the reason in the report.
	srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var o, e bytes.Buffer
	if exit := runMain(ctx, append(flags, "-timeout", "2s", "BOTHTERM"), &o, &e); exit != exitError {
		t.Errorf("WeChat Pay down: exit status %d; want %d\n%s%s", exit, exitError, o.String(), e.String())
	}
}
