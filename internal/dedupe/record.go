package dedupe

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Record is a dedupe record as stored, for tests, operators and replay.
type Record struct {
	Code  string // out_contract_code
	State string // StateInFlight, StateDone, or "" if absent (GetMany only)
	// Owner and LeaseUntil describe the current or last claim; Owner is empty
	// and LeaseUntil zero after Release.
	Owner      string
	LeaseUntil time.Time
	RequestID  string // the request claimed last
	// TakenOver reports that the current or last claim was a takeover.
	TakenOver bool
	// OutcomeRequestID, Kind and Outcome describe the termination, if the
	// contract is terminated (Kind is KindTerminated). A record written
	// before outcomes were kept per request may hold a failure here instead.
	OutcomeRequestID string
	Kind             string
	Outcome          []byte
	// Outcomes lists every stored outcome: failures oldest first, then the
	// termination.
	Outcomes []Outcome
	// Unknown is the request whose failure may have reached WeChat Pay
	// (KindUnknown): the next claim answers TakenOver. Empty if none.
	Unknown string
	// Published holds the request_ids whose result events were published.
	Published map[string]bool
	Attempts  int // number of claims that took ownership
}

// Outcome is one stored outcome.
type Outcome struct {
	RequestID string // the request or notification id it answers
	Kind      string // KindTerminated, KindFailed or KindUnknown
	Event     []byte // the serialized result event
	Published bool   // pub:<RequestID> is set
}

// Answer is what answers one request: its own outcome, else the contract's
// termination by another request or notification.
type Answer struct {
	// Own reports that Event is the request's own outcome; if false, Event
	// is the termination, of RequestID, from which the request's event is
	// derived (already terminated, with the stored contract).
	Own       bool
	RequestID string
	Kind      string
	Event     []byte
	// Published reports whether the request's own event (pub:<request id>
	// of the request asked about) was published.
	Published bool
}

// Answer returns what answers requestID, and false if nothing does yet (no
// own outcome and no termination).
func (r Record) Answer(requestID string) (Answer, bool) {
	var term *Outcome
	for i, o := range r.Outcomes {
		if o.RequestID == requestID {
			return Answer{Own: true, RequestID: requestID, Kind: o.Kind, Event: o.Event, Published: o.Published}, true
		}
		if o.Kind == KindTerminated {
			term = &r.Outcomes[i]
		}
	}
	if term == nil {
		return Answer{}, false
	}
	return Answer{RequestID: term.RequestID, Kind: term.Kind, Event: term.Event, Published: r.Published[requestID]}, true
}

// Exists reports whether the record was found.
func (r Record) Exists() bool { return r.State != "" }

// Get reads one record. It returns ErrNotFound if it is absent, and any Redis
// error as an error: never as absent.
func (s *Store) Get(ctx context.Context, outContractCode string) (Record, error) {
	if outContractCode == "" {
		return Record{}, errors.New("dedupe: get: empty out_contract_code")
	}
	h, err := s.rdb.HGetAll(ctx, s.key(outContractCode)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return Record{}, fmt.Errorf("dedupe: get %s: %w", outContractCode, err)
	}
	if len(h) == 0 {
		return Record{}, fmt.Errorf("dedupe: get %s: %w", outContractCode, ErrNotFound)
	}
	return parseRecord(outContractCode, h), nil
}

// GetMany reads the records of codes in one pipelined round trip (one per
// node on a Cluster). The result is aligned with codes; an absent record has
// only Code set (Exists is false). Any command's error fails the whole call.
func (s *Store) GetMany(ctx context.Context, codes []string) ([]Record, error) {
	if len(codes) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(codes))
	// Exec's own error is only the first command's error: each one is checked.
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, code := range codes {
			cmds[i] = p.HGetAll(ctx, s.key(code))
		}
		return nil
	})
	recs := make([]Record, len(codes))
	for i, cmd := range cmds {
		h, err := cmd.Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("dedupe: get many %s: %w", codes[i], err)
		}
		recs[i] = parseRecord(codes[i], h)
	}
	return recs, nil
}

func parseRecord(code string, h map[string]string) Record {
	r := Record{
		Code:             code,
		State:            h["state"],
		Owner:            h["owner"],
		LeaseUntil:       parseMs(h["lease"]),
		RequestID:        h["req"],
		TakenOver:        h["tko"] == "1",
		OutcomeRequestID: h["oreq"],
		Kind:             h["kind"],
		Unknown:          h["unk"],
	}
	if o, ok := h["outcome"]; ok {
		r.Outcome = []byte(o)
	}
	r.Attempts, _ = strconv.Atoi(h["attempts"])
	for f := range h {
		if id, ok := strings.CutPrefix(f, "pub:"); ok {
			if r.Published == nil {
				r.Published = make(map[string]bool)
			}
			r.Published[id] = true
		}
	}
	// The old single slot's failure is the oldest; the termination comes last.
	if r.Kind != "" && r.Kind != KindTerminated {
		r.Outcomes = append(r.Outcomes, Outcome{RequestID: r.OutcomeRequestID, Kind: r.Kind, Event: r.Outcome, Published: r.Published[r.OutcomeRequestID]})
	}
	for _, id := range strings.Fields(h["fails"]) {
		if v, ok := h[failurePrefix+id]; ok {
			kind, ev, _ := strings.Cut(v, ":")
			r.Outcomes = append(r.Outcomes, Outcome{RequestID: id, Kind: kind, Event: []byte(ev), Published: r.Published[id]})
		}
	}
	if r.Kind == KindTerminated {
		r.Outcomes = append(r.Outcomes, Outcome{RequestID: r.OutcomeRequestID, Kind: r.Kind, Event: r.Outcome, Published: r.Published[r.OutcomeRequestID]})
	}
	return r
}

// failurePrefix prefixes the field of a request's own failure (o:<id>).
const failurePrefix = "o:"

// Answer reads what answers requestID (see Record.Answer) in one round trip
// that reads only the fields it needs: for a replay's re-emit and the status
// command. It returns ErrNotFound if the record is absent or nothing answers
// requestID yet.
func (s *Store) Answer(ctx context.Context, outContractCode, requestID string) (Answer, error) {
	wrap := func(err error) (Answer, error) {
		return Answer{}, fmt.Errorf("dedupe: answer %s %s: %w", outContractCode, requestID, err)
	}
	if err := check("out_contract_code", outContractCode, "request_id", requestID); err != nil {
		return wrap(err)
	}
	v, err := s.rdb.HMGet(ctx, s.key(outContractCode), failurePrefix+requestID, "oreq", "kind", "outcome", "pub:"+requestID).Result()
	if err != nil {
		return wrap(err)
	}
	str := func(i int) string { x, _ := v[i].(string); return x }
	own, oreq, kind, outcome, pub := str(0), str(1), str(2), str(3), v[4] != nil
	switch {
	case v[0] != nil:
		k, ev, _ := strings.Cut(own, ":")
		return Answer{Own: true, RequestID: requestID, Kind: k, Event: []byte(ev), Published: pub}, nil
	case kind != "" && oreq == requestID:
		return Answer{Own: true, RequestID: requestID, Kind: kind, Event: []byte(outcome), Published: pub}, nil
	case kind == KindTerminated:
		return Answer{RequestID: oreq, Kind: kind, Event: []byte(outcome), Published: pub}, nil
	}
	return wrap(ErrNotFound)
}

// Answered reports, for each (codes[i], requestIDs[i]), whether that
// request's result event was published, in one pipelined round trip that
// reads one field per record: the replay's fast path over intents already
// done. Any command's error fails the whole call.
func (s *Store) Answered(ctx context.Context, codes, requestIDs []string) ([]bool, error) {
	if len(codes) != len(requestIDs) {
		return nil, fmt.Errorf("dedupe: answered: %d codes for %d request ids", len(codes), len(requestIDs))
	}
	if len(codes) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.BoolCmd, len(codes))
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, code := range codes {
			cmds[i] = p.HExists(ctx, s.key(code), "pub:"+requestIDs[i])
		}
		return nil
	})
	out := make([]bool, len(codes))
	for i, cmd := range cmds {
		ok, err := cmd.Result()
		if err != nil {
			return nil, fmt.Errorf("dedupe: answered %s: %w", codes[i], err)
		}
		out[i] = ok
	}
	return out, nil
}
