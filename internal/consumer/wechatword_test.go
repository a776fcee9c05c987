package consumer

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/wxapi"
)

// already_terminated and the terminate answer judged from WeChat Pay's word
// (issue 13 review: the call policy against WeChat Pay's documented
// answers). Each test drives call with a scripted Terminator whose answers
// are what wxapi decodes from the documented shapes (TestDecodeGolden
// covers the decoding): Status, TerminationMode and TerminatedAt are
// filled the way wxapi's normalise fills them.

// scripted answers Terminate and Query from queues; the last answer of a
// queue repeats.
type scripted struct {
	terminates []answerPair
	queries    []answerPair
	nTerm      int
	nQuery     int
}

type answerPair struct {
	c   *wxapi.Contract
	err error
}

func (s *scripted) Terminate(ctx context.Context, r wxapi.Request) (*wxapi.Contract, error) {
	a := s.terminates[min(s.nTerm, len(s.terminates)-1)]
	s.nTerm++
	return a.c, a.err
}

func (s *scripted) Query(ctx context.Context, r wxapi.Request) (*wxapi.Contract, error) {
	a := s.queries[min(s.nQuery, len(s.queries)-1)]
	s.nQuery++
	return a.c, a.err
}

// reviewConsumer is a Consumer whose clock reads now, with a short retry
// budget: enough to run call alone.
func reviewConsumer(now time.Time) *Consumer {
	c := &Consumer{opts: Options{Now: func() time.Time { return now },
		Retry: RetryOptions{Initial: time.Millisecond, Max: 5 * time.Millisecond, MaxElapsed: 2 * time.Second}}}
	c.opts.setDefaults()
	return c
}

// papayTerminated is a papay contract TERMINATED by mode at wechatTime (as
// WeChat writes it: whole seconds, +08:00), normalised as wxapi does.
func papayTerminated(t *testing.T, api wxapi.API, raw string, mode wxapi.Mode, wechatTime string) *wxapi.Contract {
	t.Helper()
	at, err := time.Parse(time.RFC3339, wechatTime)
	if err != nil {
		t.Fatal(err)
	}
	return &wxapi.Contract{API: api, ContractID: "123124412412423431", PlanID: "12535", OutContractCode: "wxwtdk20200910100000",
		ContractState: "TERMINATED", ContractTerminationMode: raw, ContractTerminatedTime: wechatTime,
		Status: wxapi.StatusTerminated, TerminationMode: mode, TerminatedAt: at}
}

// Finding (wrong outcome): already_terminated misreports our own
// termination when WeChat Pay's clock is a few seconds behind ours. Our
// terminate times out (Sent) but WeChat applied it; WeChat stamps it with
// its own clock, 3 s behind ours; the query says MCH_API_TERMINATE at that
// time. call compares it with our first attempt on our clock with a slack
// of one second (clockSlack), so our own call is reported
// already_terminated: true.
func TestClockSkewOwnTerminationIsNotAlready(t *testing.T) {
	ours := time.Date(2026, 5, 20, 5, 29, 35, 600e6, time.UTC) // 13:29:35.6 in Beijing on our clock
	// WeChat's clock reads 3.5 s less when our request arrives: 13:29:32.1.
	ct := papayTerminated(t, wxapi.PapayDirect, "MCH_API_TERMINATE", wxapi.ModeMerchant, "2026-05-20T13:29:32+08:00")
	s := &scripted{
		terminates: []answerPair{{err: &wxapi.Error{API: wxapi.PapayDirect, Op: "terminate", Err: context.DeadlineExceeded, Sent: true}}},
		queries:    []answerPair{{c: ct}},
	}
	in := &intent{Intent: newIntent(event.PapayDirect, "SKEW1")}
	r, _, err := reviewConsumer(ours).call(context.Background(), in, s, false, &sentMark{})
	if err != nil {
		t.Fatal(err)
	}
	if r.EventType != event.TypeTerminated || r.AlreadyTerminated || s.nTerm != 1 {
		t.Errorf("got %s already_terminated %v after %d terminates; want contract-terminated by our call (already_terminated false), 1 terminate",
			r.EventType, r.AlreadyTerminated, s.nTerm)
	}
}

// Finding (wrong outcome): papay's WEPAY_WEB_TERMINATE is "商户在商户平台发起的
// 解约", a termination by the merchant's staff in the merchant platform, not
// through the API (wechatpay-im/website webhook/v3/ENTRUST.TERMINATE.md and
// the SDK enum ContractTerminationModeEnum: MCH_API_TERMINATE "商户通过API发起
// 的解约", WEPAY_WEB_TERMINATE "商户在商户平台发起的解约"). wxapi maps both to
// ModeMerchant and already() then judges by time, so a console termination
// after our transient failure, or any console termination under a takeover,
// is reported as our own (already_terminated false) though WeChat says it
// was not an API call.
func TestConsoleTerminationIsNeverOurs(t *testing.T) {
	first := time.Date(2026, 5, 20, 5, 0, 0, 0, time.UTC)
	cases := []struct {
		name       string
		wechatTime string
		takenOver  bool
		terminates []answerPair
	}{
		{
			name: "console termination after our 500 SYSTEM_ERROR (not applied)", wechatTime: "2026-05-20T13:00:20+08:00",
			terminates: []answerPair{{err: &wxapi.Error{API: wxapi.PapayPartner, Op: "terminate", HTTPStatus: http.StatusInternalServerError,
				Code: wxapi.CodeSystemError, Sent: true}}},
		},
		{
			name: "console termination an hour ago, intent taken over from a dead owner", wechatTime: "2026-05-20T12:00:00+08:00", takenOver: true,
			terminates: []answerPair{{err: &wxapi.Error{API: wxapi.PapayPartner, Op: "terminate", HTTPStatus: http.StatusBadRequest,
				Code: wxapi.CodeInvalidRequest}}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ct := papayTerminated(t, wxapi.PapayPartner, "WEPAY_WEB_TERMINATE", wxapi.ModeMerchant, tc.wechatTime)
			s := &scripted{terminates: tc.terminates, queries: []answerPair{{c: ct}}}
			in := &intent{Intent: newIntent(event.PapayPartner, "WEB1")}
			r, _, err := reviewConsumer(first).call(context.Background(), in, s, tc.takenOver, &sentMark{})
			if err != nil {
				t.Fatal(err)
			}
			if r.EventType != event.TypeTerminated || !r.AlreadyTerminated {
				t.Errorf("got %s already_terminated %v; want contract-terminated, already_terminated true (WEPAY_WEB_TERMINATE is never our API call)",
					r.EventType, r.AlreadyTerminated)
			}
		})
	}
}

// Finding (wrong outcome): a terminate answered 200 is reported as
// terminated by us without reading what the answer says. Credit
// repayment's documented terminate answer carries the contract's
// contract_terminated_time and contract_termination_mode (seed 000's
// example: TERMINATION_MODE_BY_USER). An answer saying the user terminated
// it a day before our call is WeChat's word that it was already
// terminated: already_terminated must be true.
func TestTerminateAnswerNamesTheUser(t *testing.T) {
	now := time.Date(2026, 5, 20, 5, 0, 0, 0, time.UTC)
	at, _ := time.Parse(time.RFC3339, "2026-05-19T13:00:00+08:00")
	ct := &wxapi.Contract{API: wxapi.CreditRepayment, ContractID: "20250101000000123456789", PlanID: "WxCreditRepaymentPlan12345678",
		OutContractCode: "CRUSER1", ContractState: "CONTRACT_STATE_TERMINATED", ContractTerminatedTime: "2026-05-19T13:00:00+08:00",
		ContractTerminationMode: "TERMINATION_MODE_BY_USER", Status: wxapi.StatusTerminated, TerminationMode: wxapi.ModeUser, TerminatedAt: at}
	s := &scripted{terminates: []answerPair{{c: ct}}, queries: []answerPair{{c: ct}}}
	in := &intent{Intent: newIntent(event.CreditRepayment, "CRUSER1")}
	r, _, err := reviewConsumer(now).call(context.Background(), in, s, false, &sentMark{})
	if err != nil {
		t.Fatal(err)
	}
	if r.EventType != event.TypeTerminated || !r.AlreadyTerminated {
		t.Errorf("got %s already_terminated %v; want already_terminated true (the answer says the user terminated it a day before our call)",
			r.EventType, r.AlreadyTerminated)
	}
}

// Finding (minor, inconsistent event): seed 000's own terminate example
// answers 200 with contract_info.contract_state CONTRACT_STATE_EFFECTIVE.
// call reports contract-terminated carrying contract.state "effective": a
// result saying terminated and effective at once. A 200 whose contract is
// not terminated should be confirmed by a query (or reported with the
// terminated state), never published as is.
func TestTerminatedEventIsNotEffective(t *testing.T) {
	now := time.Date(2026, 5, 20, 5, 0, 0, 0, time.UTC)
	effective := &wxapi.Contract{API: wxapi.CreditRepayment, ContractID: "20250101000000123456789", OutContractCode: "CREFF1",
		ContractState: "CONTRACT_STATE_EFFECTIVE", Status: wxapi.StatusEffective}
	terminated := &wxapi.Contract{API: wxapi.CreditRepayment, ContractID: "20250101000000123456789", OutContractCode: "CREFF1",
		ContractState: "CONTRACT_STATE_TERMINATED", ContractTerminationMode: "TERMINATION_MODE_BY_MERCHANT",
		Status: wxapi.StatusTerminated, TerminationMode: wxapi.ModeMerchant}
	s := &scripted{terminates: []answerPair{{c: effective}}, queries: []answerPair{{c: terminated}}}
	in := &intent{Intent: newIntent(event.CreditRepayment, "CREFF1")}
	r, _, err := reviewConsumer(now).call(context.Background(), in, s, false, &sentMark{})
	if err != nil {
		t.Fatal(err)
	}
	if r.EventType == event.TypeTerminated && (r.Contract == nil || r.Contract.State != string(wxapi.StatusTerminated)) {
		t.Errorf("got contract-terminated with contract %+v; want its state terminated", r.Contract)
	}
}

// A terminate answered 200 whose contract still reads effective, and every
// query after it too: never a second terminate, and at the retry budget's
// end an outcome unknown (retries_exhausted), stored as such.
func TestAcceptedButEffectiveIsNeverTerminatedAgain(t *testing.T) {
	now := time.Date(2026, 5, 20, 5, 0, 0, 0, time.UTC)
	effective := &wxapi.Contract{API: wxapi.CreditRepayment, ContractID: "20250101000000123456789", OutContractCode: "CREFF2",
		ContractState: "CONTRACT_STATE_EFFECTIVE", Status: wxapi.StatusEffective}
	s := &scripted{terminates: []answerPair{{c: effective}}, queries: []answerPair{{c: effective}}}
	in := &intent{Intent: newIntent(event.CreditRepayment, "CREFF2")}
	c := reviewConsumer(now)
	c.opts.Retry.MaxElapsed = 50 * time.Millisecond
	r, v, err := c.call(context.Background(), in, s, false, &sentMark{})
	if err != nil {
		t.Fatal(err)
	}
	if r.EventType != event.TypeFailed || r.Reason != event.ReasonRetriesExhausted || !v.unknown || s.nTerm != 1 || s.nQuery == 0 {
		t.Errorf("got %s reason %q unknown %v after %d terminates, %d queries; want retries_exhausted, outcome unknown, 1 terminate, queries",
			r.EventType, r.Reason, v.unknown, s.nTerm, s.nQuery)
	}
}
