package consumer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxterm/wxterm/internal/wxapi"
)

// noAuthRepeats is how many distinct contracts of one merchant refused
// NO_AUTH in a row, with no answer of another kind between them, make the
// refusal the merchant's (its product or API not granted) rather than the
// contracts': the merchant is then held like a systemic fault. One or two
// can be the contracts' own ("a sub-merchant not under this service
// provider", the SDK's tables), and each is answered rejected.
const noAuthRepeats = 3

// errNoAuth marks a merchant held because WeChat Pay refused NO_AUTH across
// its contracts. It wraps wxapi.ErrConfig, so the call policy classifies
// the held calls Systemic and waits at the gate instead of publishing a
// rejection per contract: the merchant's permission is its configuration.
var errNoAuth = fmt.Errorf("%w: merchant not authorized (NO_AUTH across %d contracts in a row)", wxapi.ErrConfig, noAuthRepeats)

// gateKey names a gate: a merchant on a host.
type gateKey struct{ mchID, host string }

// gates holds a gate per merchant and WeChat Pay host (gates.of). Every
// systemic cause wxapi reports is the merchant's own: a refused request
// signature (401, SIGN_ERROR: its key, serial or mchid), an answer that
// does not validate (ErrSignature: the WeChat Pay public key or platform
// certificates are configured per merchant), an unusable key (ErrConfig),
// NO_AUTH across its contracts. So a fault holds only that merchant, and
// only on the host where it showed (a merchant's global papay setup can be
// broken while its mainland one works); a success of another merchant, or
// on another host, proves nothing about it. Faults on WeChat's side (5xx,
// timeouts, resets) are transient and retried, never held.
type gates struct {
	interval time.Duration
	now      func() time.Time
	systemic prometheus.Gauge     // 1 while any gate is tripped
	held     *prometheus.GaugeVec // mchid, host: 1 while that gate is tripped
	log      *slog.Logger

	mu        sync.Mutex
	byKey     map[gateKey]*gate
	merchants map[string]bool             // configured: Ready compares against them
	refused   map[gateKey]map[string]bool // contracts refused NO_AUTH in a row
}

func newGates(interval time.Duration, now func() time.Time, m *Metrics, log *slog.Logger) *gates {
	return &gates{interval: interval, now: now, systemic: m.Systemic, held: m.Held, log: log,
		byKey: make(map[gateKey]*gate), merchants: make(map[string]bool), refused: make(map[gateKey]map[string]bool)}
}

// add registers a configured merchant.
func (gs *gates) add(mchID string) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	gs.merchants[mchID] = true
}

// of is the gate of a call of merchant mchID to r's host.
func (gs *gates) of(mchID string, r wxapi.Request) *gate {
	k := gateKey{mchID, r.API.Host()}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	g, ok := gs.byKey[k]
	if !ok {
		g = newGate(k.mchID, k.host, gs.interval, gs.now)
		gs.byKey[k] = g
	}
	return g
}

// holds lists what the tripped gates hold, by merchant and host.
func (gs *gates) holds() []Hold {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	var hs []Hold
	for _, g := range gs.byKey {
		g.mu.Lock()
		if g.cause != nil {
			hs = append(hs, Hold{MchID: g.mchID, Host: g.host, Since: g.since, Cause: g.cause})
		}
		g.mu.Unlock()
	}
	slices.SortFunc(hs, func(a, b Hold) int { return cmp.Or(cmp.Compare(a.MchID, b.MchID), cmp.Compare(a.Host, b.Host)) })
	return hs
}

// err is the fault that keeps the consumer from making progress, nil when
// at least one configured merchant is held nowhere. A deployment with one
// broken merchant among healthy ones is ready: its healthy merchants work,
// and an unready pod would stall a rolling deploy (the fix included) for
// one merchant's key; the holds are named by Consumer.Holds (the /readyz
// detail), wxterm_held and wxterm_systemic_fault.
func (gs *gates) err() error {
	hs := gs.holds()
	if len(hs) == 0 {
		return nil
	}
	gs.mu.Lock()
	for id := range gs.merchants {
		if !slices.ContainsFunc(hs, func(h Hold) bool { return h.MchID == id }) {
			gs.mu.Unlock()
			return nil
		}
	}
	gs.mu.Unlock()
	s := make([]string, len(hs))
	for i, h := range hs {
		s[i] = h.String()
	}
	return fmt.Errorf("every merchant is held: %s", strings.Join(s, "; "))
}

// report sets the gauges from the gates' state now: reading the state
// rather than counting transitions keeps them right when trips and reopens
// of one gate race.
func (gs *gates) report(g *gate) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	v := 0.0
	if g.err() != nil {
		v = 1
	}
	gs.held.WithLabelValues(g.mchID, g.host).Set(v)
	tripped := 0.0
	for _, o := range gs.byKey {
		if o.err() != nil {
			tripped = 1
			break
		}
	}
	gs.systemic.Set(tripped)
}

// Holds names what systemic faults hold now, each merchant on each host
// with its cause, for /readyz; empty when nothing is held.
func (c *Consumer) Holds() []Hold { return c.gates.holds() }

// hold is the middleware that holds a merchant's calls while a systemic
// fault is in force on their host (see gate): a systemic failure trips the
// call's gate; an answer WeChat Pay judged (success or permanent refusal)
// proves the merchant's signature good and reopens it. A transient failure
// proves nothing: the gate stays as it is. NO_AUTH repeated across the
// merchant's contracts trips it too (noAuthRepeats).
func (gs *gates) hold(mchID string) middleware {
	return func(_ string, next callFunc) callFunc {
		return func(ctx context.Context, r wxapi.Request) (*wxapi.Contract, error) {
			gt := gs.of(mchID, r)
			probe, err := gt.enter(ctx)
			if err != nil {
				return nil, err
			}
			if probe {
				defer gt.probed()
			}
			ct, err := next(ctx, r)
			if err != nil && ctx.Err() != nil {
				return ct, err
			}
			return ct, gs.judge(gt, r, err)
		}
	}
}

// judge updates gt after a call's answer err and returns the error the
// call policy sees: err, or, when the merchant is held for NO_AUTH, err
// marked Systemic (errNoAuth) so that the intent waits rather than being
// rejected.
func (gs *gates) judge(gt *gate, r wxapi.Request, err error) error {
	k := gateKey{gt.mchID, gt.host}
	switch {
	case err != nil && wxapi.Classify(err) == wxapi.Systemic:
		gs.trip(gt, r, err)
		return err
	case wxapi.IsNoAuth(err):
		if held := gs.noAuth(k, gt, r, err); held != nil {
			return held
		}
	case err == nil || wxapi.Classify(err) == wxapi.Permanent:
		gs.mu.Lock()
		delete(gs.refused, k)
		gs.mu.Unlock()
	default:
		return err // transient: proves nothing
	}
	if gt.ok() {
		gs.report(gt)
		gs.log.Info("systemic WeChat Pay fault cleared: the merchant's calls resume", "mchid", gt.mchID, "host", gt.host)
	}
	return err
}

// noAuth counts a NO_AUTH refusal of r's contract; it returns the error that
// holds the merchant once the refusals repeat across noAuthRepeats distinct
// contracts (or while the gate is held for them), nil while they may still
// be the contracts' own.
func (gs *gates) noAuth(k gateKey, gt *gate, r wxapi.Request, err error) error {
	held := fmt.Errorf("%w: %w", errNoAuth, err)
	if errors.Is(gt.err(), errNoAuth) {
		gt.trip(held)
		return held
	}
	gs.mu.Lock()
	seen := gs.refused[k]
	if seen == nil {
		seen = make(map[string]bool)
		gs.refused[k] = seen
	}
	seen[cmp.Or(r.OutContractCode, r.ContractID)] = true
	n := len(seen)
	gs.mu.Unlock()
	if n < noAuthRepeats {
		return nil
	}
	gs.trip(gt, r, held)
	return held
}

// trip trips gt with cause and reports it.
func (gs *gates) trip(gt *gate, r wxapi.Request, cause error) {
	if gt.trip(cause) {
		gs.report(gt)
		gs.log.Error("systemic WeChat Pay fault: holding the merchant's calls to this host until it clears", "err", cause,
			"mchid", gt.mchID, "host", gt.host, "out_contract_code", r.OutContractCode)
	}
}
