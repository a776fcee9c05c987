// Package dedupe keeps the Redis record that makes a contract's termination
// happen once, whatever the number of duplicates, replays, restarts or
// replicas.
//
// There is one Redis hash per out_contract_code, at key
// <prefix>{<out_contract_code>} (the braces are the Cluster hash tag), and every
// transition is one Lua script, so it is atomic on a single server and on a
// Cluster alike. Every write refreshes the key's TTL (Options.TTL).
//
//	          Claim: Claimed                Complete
//	absent ─────────────────▶ in_flight ─────────────▶ done (each request's own
//	                          owner, lease               │   outcome, pub:<id>)
//	                           │     ▲                   │
//	                           └─────┘                   │ Claim, same request: Done
//	              Claim after lease expiry or            │ Claim, other request:
//	              Release: TakenOver (new owner)         │   failed     → Claimed (in_flight)
//	                                                     │   unknown    → TakenOver (in_flight)
//	                                                     │   terminated → Terminated
//
// # Outcomes
//
// Every request keeps its own outcome: the same request_id again is answered
// with the outcome stored for it, whatever later requests for the contract
// ended with. A record holds at most one termination (the contract's, never
// dropped) and up to Options.MaxFailures failures: beyond that the oldest
// failure is dropped with its published flag, and that request, delivered
// again, is processed as new. Record.Answer and Store.Answer give a
// request's answer for a replay's re-emit and for operators.
//
// Claim for request R answers, checking in this order:
//
//   - Done: an outcome is stored for R itself (publish it if pub:<R> is unset).
//   - Terminated: the contract was terminated by another request or by a
//     notification: never call again; derive R's event from the termination.
//   - Busy: in flight under a live lease held by another owner (or by the same
//     owner for another request): wait until LeaseUntil.
//   - TakenOver: the caller owns the contract now, but must query the
//     contract before calling: the claim was in flight and its lease expired
//     or was released (the previous owner's call may have gone through), or
//     an earlier request failed with KindUnknown (its call may have).
//   - Claimed: absent, or only known failures of other requests are stored.
//
// The same owner claiming the same request again under its live lease gets
// the first answer again (Claimed or TakenOver): that is a client retry
// whose reply was lost.
//
// Ownership is fenced by the owner token: Extend, Complete and Release act only
// if the record's owner is still the caller's, and a takeover rewrites the owner
// atomically, so of any number of racing claimers exactly one wins.
//
// Leases are compared with the caller's clock (Options.Now), passed to the
// scripts, not with Redis's. This assumes the replicas' clocks differ by much
// less than the lease (NTP gives milliseconds; the default lease is 30 s): a
// replica whose clock runs ahead by d takes over leases d before they expire.
//
// # Calls that may have been sent
//
// A call that may have reached WeChat Pay must make the contract's next
// owner query first. The record carries that in three ways: a claim in
// flight whose lease runs out (TakenOver), a failure completed with
// KindUnknown (the mark stays until an owner completes with a known outcome,
// having queried), and a termination (final). What the record cannot carry
// is its own loss: a record evicted, deleted, or lost in a failover reads as
// absent, and the next claim answers Claimed. Extend and Complete then
// answer ErrRecordLost, and the worker that sent the call is the only one
// left that knows: it must remember, for as long as it may claim the
// contract again, that its call may have reached WeChat Pay, and query
// first. A lost record whose worker is gone too cannot be detected: the
// next intent calls terminate, WeChat Pay refuses a terminated contract, and
// the query that follows reports it as already terminated.
//
// # Notifications
//
// RecordTermination records WeChat Pay's word (a signed notification) that
// the contract is terminated. Exactly one termination is recorded per
// contract, the first: a termination that a request or an earlier
// notification recorded answers later ones with TermAlreadyTerminated, and
// the caller publishes nothing new. A notification does not overtake a claim
// in flight under a live lease (TermBusy: retry after LeaseUntil, as a Busy
// intent does): the worker's call then meets the terminated contract and
// records the termination from its own answer or query, and the
// notification, retried, finds it. So the termination is published once,
// with the word of whoever recorded it, and every other request and
// notification is answered from it. A claim whose lease expired or was
// released does not hold a notification back (its worker may be gone for
// good): the notification is recorded, the old owner's Extend and Complete
// are refused, and its request, delivered again, is answered Terminated. If
// that old owner's own call had terminated the contract, its request is
// then reported already_terminated while the notification's event carries
// the termination.
//
// # Durability
//
// The record is the only memory of a call to WeChat Pay, so Redis must not
// drop it:
//
//   - Eviction: maxmemory-policy must be noeviction on every node
//     (CheckDurability refuses any other at start-up). The volatile-*
//     policies evict keys with a TTL, and every record has one, so they are
//     as unsafe as allkeys-*. With noeviction a full Redis refuses writes;
//     Claim then fails and nothing is called: the consumer holds, it does
//     not forget.
//   - Persistence: run with appendonly yes. appendfsync everysec loses up to
//     a second of writes in a power loss or kernel crash of the Redis host
//     (not in a crash of the Redis process alone); always loses none, at a
//     cost on every write.
//   - Replicas: replication is asynchronous, so a failover can lose the last
//     writes that the old master acknowledged. The store does not send WAIT:
//     it would add a round trip per write, and WAIT does not make a failover
//     keep acknowledged writes anyway (the Redis documentation says so; a
//     replica that missed the write can still be promoted). A lost claim or
//     outcome is the lost record above; a lost pub:<id> republishes the same
//     event_id. Sentinel or Cluster failover bounds the window to the
//     replication lag (usually milliseconds).
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

// Record states.
const (
	StateInFlight = "in_flight"
	StateDone     = "done"
)

// Outcome kinds passed to Complete.
const (
	KindTerminated = "terminated" // final: blocks every later request
	KindFailed     = "failed"     // answers its own request only
	// KindUnknown is a failure after a call that may have reached WeChat
	// Pay (retries_exhausted with the outcome unknown): it answers its own
	// request, and the contract's next claim answers TakenOver, by any
	// request, until an owner completes with a known outcome.
	KindUnknown = "unknown"
)

var (
	// ErrNotOwner means the caller no longer holds the claim: another worker
	// took it over, or it was never held for this request. The caller must not
	// publish or commit on the strength of it.
	ErrNotOwner = errors.New("claim not held by this owner")
	// ErrNotFound means there is no record for the contract.
	ErrNotFound = errors.New("record not found")
	// ErrRecordLost is the ErrNotOwner of a claim whose record is gone
	// (evicted, deleted, or lost in a Redis failover): the next claim will
	// answer Claimed, so a worker whose call may have reached WeChat Pay
	// must remember it and query first (see the package documentation).
	ErrRecordLost = fmt.Errorf("record lost: %w", ErrNotOwner)
	// ErrInvalidArgument means the store refuses an argument (an empty one,
	// or an id with white space) before reaching Redis: retrying cannot help.
	ErrInvalidArgument = errors.New("invalid argument")
)

// Options configures a Store. Zero values take the defaults.
type Options struct {
	// Prefix of every key, default "wxterm:contract:". It must not contain
	// '{', which would capture the Cluster hash tag.
	Prefix string
	// TTL is the record horizon, refreshed by every write, default 30 days.
	// Keep it at least the request topic's retention, so a replay finds records.
	TTL time.Duration
	// Lease is how long a claim stays exclusive without Extend, default 30 s.
	Lease time.Duration
	// MaxFailures bounds the failures kept per record, default 8: beyond it
	// the oldest is dropped (a termination is never dropped). A result event
	// is about 1 KB, so a record stays under about MaxFailures+1 KB plus
	// its published flags.
	MaxFailures int
	// Now is the clock, default time.Now; tests replace it.
	Now func() time.Time
}

// DefaultOptions returns every default of Options, the one place each is
// written: the commands' flags take theirs from it.
func DefaultOptions() Options {
	return Options{Prefix: "wxterm:contract:", TTL: 30 * 24 * time.Hour, Lease: 30 * time.Second, MaxFailures: 8, Now: time.Now}
}

func (o *Options) setDefaults() {
	d := DefaultOptions()
	if o.Prefix == "" {
		o.Prefix = d.Prefix
	}
	if o.TTL <= 0 {
		o.TTL = d.TTL
	}
	if o.Lease <= 0 {
		o.Lease = d.Lease
	}
	if o.MaxFailures <= 0 {
		o.MaxFailures = d.MaxFailures
	}
	if o.Now == nil {
		o.Now = d.Now
	}
}

// Store reads and writes dedupe records. It is safe for concurrent use. It
// does not own the Redis client: the caller closes it.
type Store struct {
	rdb   redis.UniversalClient
	opts  Options
	batch *batcher
}

// New returns a Store on rdb, a plain, Sentinel or Cluster client. Set
// ContextTimeoutEnabled on rdb so that context deadlines bound every call.
func New(rdb redis.UniversalClient, opts Options) *Store {
	opts.setDefaults()
	return &Store{rdb: rdb, opts: opts, batch: newBatcher(rdb)}
}

// Load loads the scripts into the server's script cache (on every master of a
// Cluster, every shard of a Ring), so that calls can use EVALSHA. Call it at
// start-up: it also checks that Redis is reachable. Calls work without it, at
// the cost of one EVAL per script on first use.
func (s *Store) Load(ctx context.Context) error {
	load := func(ctx context.Context, c redis.Scripter) error {
		for _, sc := range scripts {
			if err := sc.Load(ctx, c).Err(); err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	switch c := s.rdb.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return load(ctx, m) })
	case *redis.Ring:
		err = c.ForEachShard(ctx, func(ctx context.Context, m *redis.Client) error { return load(ctx, m) })
	default:
		err = load(ctx, c)
	}
	if err != nil {
		return fmt.Errorf("dedupe: load scripts: %w", err)
	}
	return nil
}

// Status is Claim's verdict. See the package documentation.
type Status int

// The values are also the scripts' status codes: keep them in step with claimScript.
const (
	// Claimed: the caller owns the contract now; call the API.
	Claimed Status = iota
	// TakenOver: the caller owns the contract now, but a previous owner's call
	// may have succeeded: query the contract's state before calling terminate.
	TakenOver
	// Busy: another owner holds a live lease: retry after Claim.LeaseUntil and
	// do not commit past this message meanwhile.
	Busy
	// Done: an outcome is stored for this request: publish Claim.Outcome if
	// Claim.Published is false, else drop the message as a duplicate.
	Done
	// Terminated: another request or a notification terminated the
	// contract: no API call; derive this request's event from Claim.Outcome
	// (the termination) unless Claim.Published says it was already published.
	Terminated
)

func (st Status) String() string {
	switch st {
	case Claimed:
		return "Claimed"
	case TakenOver:
		return "TakenOver"
	case Busy:
		return "Busy"
	case Done:
		return "Done"
	case Terminated:
		return "Terminated"
	}
	return "Status(" + strconv.Itoa(int(st)) + ")"
}

// Claim is the answer to Store.Claim.
type Claim struct {
	Status Status
	// Owner holds the lease: the caller for Claimed and TakenOver, the other
	// worker for Busy.
	Owner string
	// LeaseUntil is when the lease ends (zero if there is none).
	LeaseUntil time.Time
	// Kind, Outcome and OutcomeRequestID describe the outcome that answers
	// the request: its own for Done, the termination (of another request or
	// notification) for Terminated; empty for the other statuses.
	Kind             string
	Outcome          []byte
	OutcomeRequestID string
	// Published reports whether pub:<request_id> is set for the claiming request.
	Published bool
}

// Claim applies the state machine for requestID on the contract's record on
// behalf of owner. owner should be unique per processing attempt (a replica id
// plus a random suffix), so that only a retried command can look like the
// owner re-claiming its own lease.
func (s *Store) Claim(ctx context.Context, outContractCode, requestID, owner string) (Claim, error) {
	wrap := func(err error) (Claim, error) {
		return Claim{}, fmt.Errorf("dedupe: claim %s: %w", outContractCode, err)
	}
	if err := check("out_contract_code", outContractCode, "request_id", requestID, "owner", owner); err != nil {
		return wrap(err)
	}
	now := s.opts.Now()
	v, err := s.run(ctx, claimScript, outContractCode,
		requestID, owner, ms(now), ms(now.Add(s.opts.Lease)), s.ttl()).Slice()
	if err != nil {
		return wrap(err)
	}
	c, err := parseClaim(v)
	if err != nil {
		return wrap(err)
	}
	return c, nil
}

func parseClaim(v []any) (Claim, error) {
	if len(v) != 7 {
		return Claim{}, fmt.Errorf("unexpected script reply %q", v)
	}
	status, ok0 := v[0].(int64)
	owner, ok1 := v[1].(string)
	lease, ok2 := v[2].(string)
	kind, ok3 := v[3].(string)
	outcome, ok4 := v[4].(string)
	oreq, ok5 := v[5].(string)
	pub, ok6 := v[6].(int64)
	if !(ok0 && ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || status < int64(Claimed) || status > int64(Terminated) {
		return Claim{}, fmt.Errorf("unexpected script reply %q", v)
	}
	c := Claim{
		Status:           Status(status),
		Owner:            owner,
		LeaseUntil:       parseMs(lease),
		Kind:             kind,
		OutcomeRequestID: oreq,
		Published:        pub == 1,
	}
	if outcome != "" {
		c.Outcome = []byte(outcome)
	}
	return c, nil
}

// Extend pushes owner's lease forward by Options.Lease. It returns ErrNotOwner
// if the claim was taken over, released or completed.
func (s *Store) Extend(ctx context.Context, outContractCode, owner string) error {
	now := s.opts.Now()
	return s.runFenced(ctx, "extend", outContractCode, extendScript, ErrNotOwner,
		[]string{"out_contract_code", outContractCode, "owner", owner}, owner, ms(now.Add(s.opts.Lease)), s.ttl())
}

// Complete stores the outcome of requestID (kind KindTerminated, KindFailed
// or KindUnknown, outcome the caller's serialized result event) and marks the
// record done. Call it before publishing. It returns ErrNotOwner (or
// ErrRecordLost, which is one) if owner no longer holds the claim for
// requestID: the caller must then not publish. Repeating a successful
// Complete succeeds.
//
// Pass KindUnknown for a failure whose call may have reached WeChat Pay and
// whose effect no query has settled since; KindFailed only for a failure
// whose effect is known (no call may have reached WeChat Pay unseen, or a
// query after it told the contract's state): a known outcome clears the
// mark an earlier KindUnknown left. An answer about the request alone (a
// PARAM_ERROR, a query that finds no contract under its parameters)
// settles nothing about an earlier request's call.
func (s *Store) Complete(ctx context.Context, outContractCode, requestID, owner, kind string, outcome []byte) error {
	if kind != KindTerminated && kind != KindFailed && kind != KindUnknown {
		return fmt.Errorf("dedupe: complete %s: unknown kind %q", outContractCode, kind)
	}
	if err := checkID(requestID); err != nil {
		return fmt.Errorf("dedupe: complete %s: %w", outContractCode, err)
	}
	return s.runFenced(ctx, "complete", outContractCode, completeScript, ErrNotOwner,
		[]string{"out_contract_code", outContractCode, "request_id", requestID, "owner", owner},
		requestID, owner, kind, outcome, s.ttl(), s.opts.MaxFailures)
}

// MarkPublished records that requestID's result event was published. It
// returns ErrNotFound if the record is absent (expired, or never written).
func (s *Store) MarkPublished(ctx context.Context, outContractCode, requestID string) error {
	return s.runFenced(ctx, "mark published", outContractCode, publishedScript, ErrNotFound,
		[]string{"out_contract_code", outContractCode, "request_id", requestID}, requestID, s.ttl())
}

// Release hands owner's claim back (shutdown, a systemic fault): the lease
// expires now, and the next claimer gets TakenOver and queries first. A stored
// outcome of an earlier request is kept. It is a no-op if owner does not hold
// the claim.
func (s *Store) Release(ctx context.Context, outContractCode, owner string) error {
	err := s.runFenced(ctx, "release", outContractCode, releaseScript, ErrNotOwner,
		[]string{"out_contract_code", outContractCode, "owner", owner}, owner, s.ttl())
	if errors.Is(err, ErrNotOwner) {
		return nil
	}
	return err
}

// runFenced runs a script that answers 1 when applied, 0 when refused,
// which it reports as refused, and -1 when the record is absent, which it
// reports as ErrRecordLost. required are name, value pairs that must not be
// empty.
func (s *Store) runFenced(ctx context.Context, op, code string, sc *redis.Script, refused error, required []string, args ...any) error {
	if err := check(required...); err != nil {
		return fmt.Errorf("dedupe: %s %s: %w", op, code, err)
	}
	n, err := s.run(ctx, sc, code, args...).Int64()
	switch {
	case err != nil:
		// redis.Nil included: the scripts never return nil, so it is a fault.
		return fmt.Errorf("dedupe: %s %s: %w", op, code, err)
	case n == -1:
		return fmt.Errorf("dedupe: %s %s: %w", op, code, ErrRecordLost)
	case n != 1:
		return fmt.Errorf("dedupe: %s %s: %w", op, code, refused)
	}
	return nil
}

// run runs sc on the contract's key, in a pipeline with the scripts other
// callers run meanwhile (see batcher). A script missing from the server's
// cache (a SCRIPT FLUSH, a restart, a failover to a replica whose cache is
// empty) is sent again as EVAL, which runs it and caches it again on exactly
// the node that owns the key: one extra round trip, no reload across the
// cluster.
func (s *Store) run(ctx context.Context, sc *redis.Script, code string, args ...any) *redis.Cmd {
	return s.batch.run(ctx, sc, []string{s.key(code)}, args...)
}

func (s *Store) key(code string) string { return s.opts.Prefix + "{" + code + "}" }

func (s *Store) ttl() string { return strconv.FormatInt(s.opts.TTL.Milliseconds(), 10) }

// check takes name, value pairs and rejects the first empty value.
func check(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return fmt.Errorf("empty %s: %w", pairs[i], ErrInvalidArgument)
		}
	}
	return nil
}

// checkID rejects an id with white space, which the record's list of
// failures uses as its separator (request ids never hold any: the intent
// schema forbids it).
func checkID(id string) error {
	if strings.ContainsAny(id, " \t\n\r\v\f") {
		return fmt.Errorf("id %q contains white space: %w", id, ErrInvalidArgument)
	}
	return nil
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

func parseMs(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(n)
}
