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
	// OutcomeRequestID, Kind and Outcome describe the stored outcome, if any.
	OutcomeRequestID string
	Kind             string
	Outcome          []byte
	// Published holds the request_ids whose result events were published.
	Published map[string]bool
	Attempts  int // number of claims that took ownership
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
		OutcomeRequestID: h["oreq"],
		Kind:             h["kind"],
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
	return r
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
