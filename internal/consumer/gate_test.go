package consumer

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/wxterm/wxterm/internal/wxapi"
)

func TestGateHoldsCallsAndLetsOneProbe(t *testing.T) {
	g := newGate("m", "h", 50*time.Millisecond, time.Now)
	ctx := context.Background()
	if _, err := g.enter(ctx); err != nil {
		t.Fatalf("open gate: got %v; want nil", err)
	}
	if !g.trip(errors.New("sign error")) {
		t.Fatal("trip of an open gate: got false; want true")
	}
	// Right after the trip nobody may pass until a probe interval elapsed.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := g.enter(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("tripped gate: got %v; want deadline exceeded", err)
	}
	// After the interval exactly one caller probes; a second one waits.
	if probe, err := g.enter(ctx); err != nil || !probe {
		t.Fatalf("probe: got %v, %v; want a probe", probe, err)
	}
	waiting := make(chan error, 1)
	go func() {
		_, err := g.enter(ctx)
		waiting <- err
	}()
	select {
	case err := <-waiting:
		t.Fatalf("second caller passed during the probe: %v", err)
	case <-time.After(10 * time.Millisecond):
	}
	if !g.ok() {
		t.Fatal("ok after trip: got false; want true")
	}
	if err := <-waiting; err != nil {
		t.Fatalf("after reopening: got %v", err)
	}
	if g.err() != nil {
		t.Fatalf("got cause %v after reopening; want nil", g.err())
	}
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// A tripped gate lets exactly one caller through per probe interval, and
// none while that probe is out, however many ask.
func TestGateProbesOncePerInterval(t *testing.T) {
	const interval = time.Second
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	g := newGate("m", "h", interval, clock.now)
	g.trip(errors.New("sign error"))
	probes := 0
	for step := range 40 { // ten intervals in quarters
		for range 5 { // five callers ask at each step
			pass, probe, wait, changed := g.admit()
			switch {
			case pass && probe:
				probes++
			case pass:
				t.Fatalf("step %d: a tripped gate let a caller through without probing", step)
			case wait <= 0 && changed == nil:
				t.Fatalf("step %d: a held caller got nothing to wait for", step)
			}
		}
		if step%4 == 1 {
			g.probed() // the probe ends (failed: the gate stays tripped)
		}
		clock.add(interval / 4)
	}
	if probes != 9 { // the first an interval after the trip
		t.Errorf("probes in the 9.75 intervals after the trip: got %d; want 9", probes)
	}

	// A probe that outlasts the interval holds the next one back until it ends.
	clock.add(interval)
	if _, probe, _, _ := g.admit(); !probe {
		t.Fatal("after an interval: got no probe; want one")
	}
	clock.add(3 * interval)
	if pass, _, _, _ := g.admit(); pass {
		t.Fatal("second probe while the first is out: got through; want held")
	}
	g.probed()
	if _, probe, _, _ := g.admit(); !probe {
		t.Fatal("after the long probe ended: got no probe; want one")
	}
}

// Callers held at a gate sleep: they read the clock a few times per
// interval, not in a loop.
func TestHeldCallersDoNotSpin(t *testing.T) {
	const interval = 20 * time.Millisecond
	var reads atomic.Int64
	g := newGate("m", "h", interval, func() time.Time { reads.Add(1); return time.Now() })
	g.trip(errors.New("sign error"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*interval)
	defer cancel()
	const callers = 8
	var probes atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range callers {
		wg.Go(func() {
			for {
				probe, err := g.enter(ctx)
				if err != nil {
					return
				}
				if probe {
					probes.Add(1)
					g.trip(errors.New("sign error")) // the probe fails
					g.probed()
				}
			}
		})
	}
	wg.Wait()
	intervals := int64(time.Since(start)/interval) + 1
	if n := probes.Load(); n > intervals {
		t.Errorf("probes in %d intervals: got %d; want at most one per interval", intervals, n)
	}
	// Each caller looks about twice per interval (its timer, the probe's end).
	if n, limit := reads.Load(), 4*callers*(intervals+1); n > limit {
		t.Errorf("clock reads of %d held callers in %d intervals: got %d; want at most %d (callers spin)", callers, intervals, n, limit)
	}
}

// gateCall is a fake WeChat Pay call whose answer the test sets per
// merchant and host.
type gateCall struct {
	mu      sync.Mutex
	answers map[string]error // mchid+" "+host → the answer
	calls   map[string]int
}

func (f *gateCall) set(mchID, host string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[mchID+" "+host] = err
}

func (f *gateCall) count(mchID, host string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[mchID+" "+host]
}

func (f *gateCall) fn(mchID string) callFunc {
	return func(_ context.Context, r wxapi.Request) (*wxapi.Contract, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		k := mchID + " " + r.API.Host()
		f.calls[k]++
		if err := f.answers[k]; err != nil {
			return nil, err
		}
		return &wxapi.Contract{}, nil
	}
}

var (
	mainland  = wxapi.CreditRepayment.Host()
	signError = &wxapi.Error{Op: opTerminate, HTTPStatus: 401, Code: wxapi.CodeSignError}
	noAuth    = &wxapi.Error{Op: opTerminate, HTTPStatus: 403, Code: wxapi.CodeNoAuth}
)

func mainlandReq(code string) wxapi.Request {
	return wxapi.Request{API: wxapi.CreditRepayment, OutContractCode: code, Remark: "r"}
}

func hkReq(id string) wxapi.Request {
	return wxapi.Request{API: wxapi.GlobalPapay, ContractID: id, AppID: "wx", Remark: "r"}
}

// A broken merchant holds only itself, on the host where it broke: the
// other merchant's successes do not reopen its gate, its calls to the other
// host go on, the gauges and Ready name what is held, and the consumer is
// unready only when every merchant is held.
func TestBrokenMerchantHoldsOnlyItsGate(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	m := NewMetrics(nil)
	gs := newGates(time.Minute, clock.now, m, slog.New(slog.DiscardHandler))
	gs.add("A")
	gs.add("B")
	f := &gateCall{answers: map[string]error{}, calls: map[string]int{}}
	a, b := gs.hold("A")(opTerminate, f.fn("A")), gs.hold("B")(opTerminate, f.fn("B"))
	ctx := context.Background()
	held := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		t.Cleanup(cancel)
		return c
	}

	f.set("B", mainland, signError)
	if _, err := b(ctx, mainlandReq("B1")); wxapi.Classify(err) != wxapi.Systemic {
		t.Fatalf("B's sign error: got %v; want systemic", err)
	}
	for i := range 3 {
		if _, err := a(ctx, mainlandReq("A1")); err != nil {
			t.Fatalf("A's call %d beside a broken B: got %v; want it to go through", i, err)
		}
	}
	if _, err := b(held(), mainlandReq("B2")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("B after A's successes: got %v; want held", err)
	}
	if _, err := b(ctx, hkReq("B3")); err != nil {
		t.Fatalf("B on the other host: got %v; want it to go through", err)
	}
	if n := f.count("B", mainland); n != 1 {
		t.Errorf("B's calls to %s: got %d; want 1 (the one that tripped it)", mainland, n)
	}
	if got := testutil.ToFloat64(m.Held.WithLabelValues("B", mainland)); got != 1 {
		t.Errorf("wxterm_held{B,%s}: got %v; want 1", mainland, got)
	}
	if got := testutil.ToFloat64(m.Systemic); got != 1 {
		t.Errorf("wxterm_systemic_fault: got %v; want 1", got)
	}
	hs := gs.holds()
	if len(hs) != 1 || hs[0].MchID != "B" || hs[0].Host != mainland || !errors.Is(hs[0].Cause, signError) {
		t.Fatalf("holds: got %v; want B on %s, SIGN_ERROR", hs, mainland)
	}
	if err := gs.err(); err != nil {
		t.Errorf("with A working: got unready %v; want ready (B named in the holds)", err)
	}

	// A breaks too: now nothing can progress.
	f.set("A", mainland, signError)
	if _, err := a(ctx, mainlandReq("A2")); wxapi.Classify(err) != wxapi.Systemic {
		t.Fatalf("A's sign error: got %v; want systemic", err)
	}
	if err := gs.err(); err == nil || !strings.Contains(err.Error(), "merchant A") || !strings.Contains(err.Error(), "merchant B") {
		t.Errorf("every merchant held: got %v; want unready naming A and B", err)
	}

	// B's probe succeeds: B reopens, A stays held.
	f.set("B", mainland, nil)
	clock.add(time.Minute)
	if _, err := b(ctx, mainlandReq("B2")); err != nil {
		t.Fatalf("B's probe: got %v", err)
	}
	if got := testutil.ToFloat64(m.Held.WithLabelValues("B", mainland)); got != 0 {
		t.Errorf("wxterm_held{B} after its success: got %v; want 0", got)
	}
	if hs := gs.holds(); len(hs) != 1 || hs[0].MchID != "A" {
		t.Fatalf("holds after B's success: got %v; want A alone", hs)
	}
	if got := testutil.ToFloat64(m.Systemic); got != 1 {
		t.Errorf("wxterm_systemic_fault with A held: got %v; want 1", got)
	}
}

// NO_AUTH is one contract's rejection until it repeats across distinct
// contracts of one merchant: then it holds that merchant (the calls are
// systemic, waiting at the gate) until an answer of another kind.
func TestNoAuthAcrossContractsHoldsTheMerchant(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	m := NewMetrics(nil)
	gs := newGates(time.Minute, clock.now, m, slog.New(slog.DiscardHandler))
	f := &gateCall{answers: map[string]error{}, calls: map[string]int{}}
	a, b := gs.hold("A")(opTerminate, f.fn("A")), gs.hold("B")(opTerminate, f.fn("B"))
	ctx := context.Background()

	f.set("A", mainland, noAuth)
	for i, code := range []string{"C1", "C1", "C2"} { // C1 twice: one contract
		_, err := a(ctx, mainlandReq(code))
		if wxapi.Classify(err) != wxapi.Permanent || !wxapi.IsNoAuth(err) {
			t.Fatalf("NO_AUTH #%d (%s): got %v (%v); want a permanent NO_AUTH", i+1, code, err, wxapi.Classify(err))
		}
	}
	if _, err := b(ctx, mainlandReq("B1")); err != nil {
		t.Fatalf("B: got %v", err)
	}
	_, err := a(ctx, mainlandReq("C3"))
	if wxapi.Classify(err) != wxapi.Systemic || !wxapi.IsNoAuth(err) {
		t.Fatalf("NO_AUTH on a third contract: got %v (%v); want systemic, still NO_AUTH", err, wxapi.Classify(err))
	}
	if got := testutil.ToFloat64(m.Held.WithLabelValues("A", mainland)); got != 1 {
		t.Errorf("wxterm_held{A} after NO_AUTH x3: got %v; want 1", got)
	}
	if _, err := b(ctx, mainlandReq("B2")); err != nil {
		t.Fatalf("B beside a held A: got %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := a(short, mainlandReq("C4")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("A while held: got %v; want held", err)
	}
	clock.add(time.Minute)
	if _, err := a(ctx, mainlandReq("C4")); wxapi.Classify(err) != wxapi.Systemic {
		t.Fatalf("A's probe refused NO_AUTH again: got %v; want systemic (still held)", err)
	}
	f.set("A", mainland, nil)
	clock.add(time.Minute)
	if _, err := a(ctx, mainlandReq("C5")); err != nil {
		t.Fatalf("A's probe after the permission was granted: got %v", err)
	}
	if gs.holds() != nil {
		t.Fatalf("holds after A's success: got %v; want none", gs.holds())
	}
	// The success started the count again: one NO_AUTH is a rejection.
	f.set("A", mainland, noAuth)
	if _, err := a(ctx, mainlandReq("C6")); wxapi.Classify(err) != wxapi.Permanent {
		t.Fatalf("NO_AUTH after a success: got %v; want permanent", wxapi.Classify(err))
	}
}
