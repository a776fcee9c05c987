package dedupe

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// TermStatus is RecordTermination's verdict.
type TermStatus int

// The values are also terminationScript's status codes: keep them in step.
const (
	// TermRecorded: the contract's termination is this notification's,
	// recorded now or by an earlier delivery of it: publish
	// Termination.Outcome unless Termination.Published.
	TermRecorded TermStatus = iota
	// TermAlreadyTerminated: a request or another notification,
	// Termination.TerminatedBy, recorded the termination first: publish
	// nothing new.
	TermAlreadyTerminated
	// TermBusy: a claim is in flight under a live lease: retry after
	// Termination.LeaseUntil, without acknowledging the notification's
	// message meanwhile.
	TermBusy
)

func (st TermStatus) String() string {
	switch st {
	case TermRecorded:
		return "TermRecorded"
	case TermAlreadyTerminated:
		return "TermAlreadyTerminated"
	case TermBusy:
		return "TermBusy"
	}
	return "TermStatus(" + strconv.Itoa(int(st)) + ")"
}

// Termination is the answer to Store.RecordTermination.
type Termination struct {
	Status TermStatus
	// TerminatedBy is the request or notification id whose termination the
	// record holds, and Outcome that termination's stored outcome (empty for
	// TermBusy).
	TerminatedBy string
	Outcome      []byte
	// Published reports whether pub:<id> is set for the notification's id.
	Published bool
	// Owner and LeaseUntil describe the claim in flight (TermBusy only).
	Owner      string
	LeaseUntil time.Time
}

// MustPublish reports whether the caller must publish the notification's
// event (Outcome) and then MarkPublished it under the notification's id.
func (t Termination) MustPublish() bool { return t.Status == TermRecorded && !t.Published }

// RecordTermination records that WeChat Pay says the contract is terminated,
// from the notification with id (which must not collide with request ids:
// use the notification's own id, with a prefix of the caller's if request
// ids could take that form), with outcome the caller's serialized
// contract-terminated result event, which must carry the contract: later
// requests derive their events from it. It is idempotent: WeChat Pay's
// repeats of the notification answer TermRecorded again, with Published
// once the caller marked it. See the package documentation for the rule
// against a claim in flight.
func (s *Store) RecordTermination(ctx context.Context, outContractCode, id string, outcome []byte) (Termination, error) {
	wrap := func(err error) (Termination, error) {
		return Termination{}, fmt.Errorf("dedupe: record termination %s: %w", outContractCode, err)
	}
	if err := check("out_contract_code", outContractCode, "id", id); err != nil {
		return wrap(err)
	}
	if err := checkID(id); err != nil {
		return wrap(err)
	}
	if len(outcome) == 0 {
		return wrap(fmt.Errorf("empty outcome: %w", ErrInvalidArgument))
	}
	v, err := s.run(ctx, terminationScript, outContractCode,
		id, outcome, ms(s.opts.Now()), s.ttl(), s.opts.MaxFailures).Slice()
	if err != nil {
		return wrap(err)
	}
	if len(v) != 6 {
		return wrap(fmt.Errorf("unexpected script reply %q", v))
	}
	status, ok0 := v[0].(int64)
	owner, ok1 := v[1].(string)
	lease, ok2 := v[2].(string)
	by, ok3 := v[3].(string)
	out, ok4 := v[4].(string)
	pub, ok5 := v[5].(int64)
	if !(ok0 && ok1 && ok2 && ok3 && ok4 && ok5) || status < int64(TermRecorded) || status > int64(TermBusy) {
		return wrap(fmt.Errorf("unexpected script reply %q", v))
	}
	t := Termination{Status: TermStatus(status), TerminatedBy: by, Published: pub == 1, Owner: owner, LeaseUntil: parseMs(lease)}
	if out != "" {
		t.Outcome = []byte(out)
	}
	return t, nil
}
