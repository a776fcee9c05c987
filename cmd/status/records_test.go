package main

// Record states main_test.go does not write, and the verdict on an unknown
// failure (review of issue 15).

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/wxapi"
	"github.com/wxterm/wxterm/internal/wxsim"
)

// A record written before outcomes were kept per request (the single slot
// kind/oreq/outcome holding a failure) and a record a notification wrote
// (no claim: no req, no attempts) read as their outcomes say.
func TestReviewLegacyAndNotificationRecords(t *testing.T) {
	r := newRig(t)
	ctx := t.Context()
	rdb := redis.NewClient(&redis.Options{Addr: r.addr})
	t.Cleanup(func() { rdb.Close() })
	must(t, rdb.HSet(ctx, r.prefix+"{LEGACY}", "state", "done", "owner", "worker-1", "req", "req-old",
		"kind", dedupe.KindFailed, "oreq", "req-old", "outcome", string(result(t, "LEGACY", "req-old", true, event.ReasonRetriesExhausted)),
		"pub:req-old", "1", "attempts", "1").Err())
	must(t, rdb.Expire(ctx, r.prefix+"{LEGACY}", time.Hour).Err())

	in := event.Intent{RequestID: "notification:EV1", OutContractCode: "NOTIFIED", API: event.CreditRepayment, MchID: "1900000109"}
	ev := event.Terminated(in, event.Source{}, event.Contract{OutContractCode: "NOTIFIED", State: "terminated", TerminationMode: "user"}, 0, false, time.Now())
	ev.Origin = event.OriginNotification
	b, err := json.Marshal(ev)
	must(t, err)
	term, err := r.store.RecordTermination(ctx, "NOTIFIED", "notification:EV1", b)
	must(t, err)
	if !term.MustPublish() {
		t.Fatalf("record termination: got %+v; want recorded", term)
	}

	exit, out, errOut := status(t, r.args("-json", "LEGACY", "LEGACY/req-old", "NOTIFIED", "NOTIFIED/req-later")...)
	if exit != exitFound {
		t.Errorf("exit %d; want %d\n%s", exit, exitFound, errOut)
	}
	got := reports(t, out)
	if rep := got["LEGACY/"]; len(rep.Outcomes) != 1 || rep.Outcomes[0].RequestID != "req-old" || rep.Outcomes[0].Reason != event.ReasonRetriesExhausted || !rep.Outcomes[0].Published {
		t.Errorf("LEGACY: got %+v; want req-old's published retries_exhausted failure", rep)
	}
	if rep := got["LEGACY/req-old"]; rep.Answer == nil || !rep.Answer.Own || !rep.Answer.Published {
		t.Errorf("LEGACY/req-old: got %+v; want its own published failure", rep.Answer)
	}
	if rep := got["NOTIFIED/"]; rep.State != dedupe.StateDone || len(rep.Outcomes) != 1 || rep.Outcomes[0].RequestID != "notification:EV1" || rep.Outcomes[0].Kind != dedupe.KindTerminated {
		t.Errorf("NOTIFIED: got %+v; want done, the notification's termination", rep)
	}
	if rep := got["NOTIFIED/req-later"]; rep.Answer == nil || rep.Answer.Own || rep.Answer.FromRequestID != "notification:EV1" {
		t.Errorf("NOTIFIED/req-later: got %+v; want answered from the notification's termination", rep.Answer)
	}
	if _, table, _ := status(t, r.args("NOTIFIED")...); !strings.Contains(table, "notification:EV1") {
		t.Errorf("table lacks the notification:\n%s", table)
	}
}

// Review finding (low): a record whose only outcome is an unknown failure
// (retries_exhausted after a call that may have reached WeChat Pay: the
// unknown mark is set, and the next claim queries first) is compared as if
// it held a plain failure: WeChat Pay saying terminated gives DISAGREE
// "terminated (by another party, or a lost record)". Our own call is the
// likeliest cause, which the record says it does not know yet; the verdict
// should be UNSETTLED, or at least its reason should name the unknown mark.
func TestReviewUnknownFailureAgainstTerminatedIsNotBlamedOnAnotherParty(t *testing.T) {
	r := newRig(t)
	sim, _, query := newSim(t)
	sim.Seed(wxsim.Contract{API: wxapi.CreditRepayment, OutContractCode: "MAYBE"})
	sim.TerminateAs("MAYBE", wxsim.ByMerchant, time.Now()) // our timed-out call got through
	r.done(t, "MAYBE", "req-u", dedupe.KindUnknown, true)

	exit, out, errOut := status(t, r.args(append(append([]string{"-json"}, query...), "MAYBE")...)...)
	if exit == exitError {
		t.Fatalf("exit %d\n%s%s", exit, out, errOut)
	}
	l := reports(t, out)["MAYBE/"].WeChat
	if l == nil || l.State != string(wxapi.StatusTerminated) {
		t.Fatalf("got %+v; want WeChat Pay terminated", l)
	}
	if l.Verdict == verdictDisagree && !strings.Contains(l.Why, "unknown") {
		t.Errorf("unknown failure vs WeChat terminated (by merchant, i.e. us): got %s %q; want UNSETTLED, or a reason naming the unknown mark", l.Verdict, l.Why)
	}
}

// An unknown failure against a termination by someone else (the user) is a
// disagreement naming that party; by the merchant it is unsettled.
func TestCompareUnknownFailure(t *testing.T) {
	outs := []outcome{{RequestID: "req-u", Kind: dedupe.KindUnknown}}
	for _, c := range []struct {
		mode, want string
	}{
		{string(wxapi.ModeMerchant), verdictUnsettled},
		{string(wxapi.ModeUser), verdictDisagree},
	} {
		v, why := compare(&report{UnknownRequestID: "req-u"}, outs, string(wxapi.StatusTerminated), c.mode)
		if v != c.want || !strings.Contains(why, "unknown failure") {
			t.Errorf("terminated by %s: got %s %q; want %s naming the unknown failure", c.mode, v, why, c.want)
		}
	}
}
