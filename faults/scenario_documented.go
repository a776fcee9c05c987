package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/wxapi"
	"github.com/wxterm/wxterm/internal/wxsim"
)

// documentedPendingFor is how long the scenario's papay contracts stay
// TERMINATE_PENDING after our terminate.
const documentedPendingFor = time.Second

// simSwaps holds, per scenario run, what puts the suite's shared simulator
// and proxy back once verify has read the scenario's own.
var simSwaps sync.Map // *runCtx → func()

// documentedScenario is issue 13's run: a WeChat Pay that answers as its
// pages document (papay TERMINATE_PENDING for a while, the global 403
// CONTRACT_NOT_EXIST), with contracts that do not exist and contracts their
// user terminated before the run on every API, 30% transient failures and
// kill -9 of the consumer mid-run. The checks (verify) expect not_found for
// the missing contracts, already_terminated true for the user's, false for
// ours, and no second terminate.
//
// It runs its own simulator in this process (the shared one cannot seed
// missing or user-terminated contracts, nor leave contracts pending), behind
// its own proxy, for the scenario and its checks.
func documentedScenario(ctx context.Context, r *runCtx) error {
	n := 3000
	if r.s.cfg.intents < 2000 {
		n = r.s.cfg.intents // a smaller run asked for with -intents
	}
	sim, err := r.ownSimulator()
	if err != nil {
		return err
	}
	r.setup(n)
	missing, user := r.documentedContracts(sim)
	r.notef("simulator with papay TERMINATE_PENDING for %s; %d contracts that do not exist, %d terminated by their user (or, on papay, in the merchant console) before the run, over the four APIs",
		documentedPendingFor, missing, user)

	transient := []wxsim.FaultKind{wxsim.FaultHTTP500, wxsim.FaultHTTP503, wxsim.Fault429, wxsim.FaultTimeout, wxsim.FaultDrop}
	sim.SetFaults(wxsim.Faults{Rate: 0.3, Kinds: transient, HangFor: 5 * time.Second})
	c, err := r.startConsumer()
	if err != nil {
		return err
	}
	if err := r.waitReady(ctx, c, 60*time.Second); err != nil {
		return err
	}
	pub := r.publishAsync(ctx, 100, 50*time.Millisecond)
	for i, frac := range []float64{0.2, 0.5, 0.75} {
		if err := r.waitProgress(ctx, frac+0.1*r.rnd.Float64()); err != nil {
			return err
		}
		if i == 1 {
			sim.SetFaults(wxsim.Faults{Rate: 0.3, Kinds: transient, HangFor: 5 * time.Second, AfterApply: true})
			r.notef("at %.1f%% answered: failures now strike after the call took effect (answer lost)", r.progress()*100)
		}
		before := r.progress()
		c.Kill()
		r.mark(fmt.Sprintf("kill -9 #%d", i+1))
		r.notef("kill -9 #%d of %s at %.1f%% answered", i+1, c.Name, before*100)
		if c, err = r.startConsumer(); err != nil {
			return err
		}
	}
	if err := <-pub; err != nil {
		return err
	}
	if err := r.waitDone(ctx); err != nil {
		return err
	}
	sim.SetFaults(wxsim.Faults{})
	return nil
}

// ownSimulator starts a simulator in this process (the suite's keys,
// unknown contracts created on first use, papay pending for
// documentedPendingFor) behind a proxy of its own, and makes them the
// suite's until verify has run.
func (r *runCtx) ownSimulator() (*wxsim.Server, error) {
	opts := r.s.id.SimOptions()
	opts.AutoCreate, opts.PendingFor = true, documentedPendingFor
	sim := wxsim.New(opts)
	mux := http.NewServeMux()
	mux.Handle("/", sim)
	mux.HandleFunc("GET /sim/counts", sim.ServeCounts)
	// The suite clears faults between scenarios; this scenario sets its own
	// directly, so any profile put here clears them.
	mux.HandleFunc("PUT /sim/faults", func(w http.ResponseWriter, _ *http.Request) {
		sim.SetFaults(wxsim.Faults{})
		w.WriteHeader(http.StatusNoContent)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: discardLog}
	go func() { _ = srv.Serve(ln) }()
	url := "http://" + ln.Addr().String()
	proxy, err := startProxy(url)
	if err != nil {
		_ = srv.Close()
		return nil, err
	}
	shared, sharedProxy := r.s.sim, r.s.proxy
	r.s.sim, r.s.proxy = &simProc{url: url}, proxy
	r.counts0 = wxsim.Counts{}
	var once sync.Once
	restore := func() {
		once.Do(func() {
			r.s.sim, r.s.proxy = shared, sharedProxy
			proxy.close()
			if err := srv.Close(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				r.notef("closing the scenario's simulator: %v", err)
			}
		})
	}
	simSwaps.Store(r, restore)
	return sim, nil
}

// documentedContracts makes one primary contract in twenty one that does
// not exist, one in twenty one its user terminated an hour ago, on every
// API (the workload cycles through the APIs every ten intents), and one in
// twenty on a papay API one the merchant's console terminated an hour ago
// (counted with the user's: already_terminated true), and marks what each
// intent expects.
func (r *runCtx) documentedContracts(sim *wxsim.Server) (missing, user int) {
	expect := make(map[string]string) // out_contract_code → expectation
	i := 0
	for _, in := range r.w.intents {
		if !in.valid || !in.primary {
			continue
		}
		switch (i / 10) % 20 {
		case 0:
			sim.SeedMissing(in.simKey)
			expect[in.code] = expectMissing
			missing++
		case 1, 2:
			var ev event.Intent
			if err := json.Unmarshal(in.raw, &ev); err != nil {
				panic(err) // the workload's own JSON
			}
			by := wxsim.ByUser
			if (i/10)%20 == 2 {
				// The merchant's console (papay WEPAY_WEB_TERMINATE): never
				// our API call, even under a takeover. The other families
				// cannot tell it from an API call: only papay is seeded so.
				if ev.API != event.PapayPartner && ev.API != event.PapayDirect {
					break
				}
				by = wxsim.ByMerchantConsole
			}
			sim.Seed(wxsim.Contract{API: wxapi.API(ev.API), OutContractCode: ev.OutContractCode, PlanID: ev.PlanID,
				ContractID: ev.ContractID, SubMchID: ev.SubMchID, AppID: ev.AppID, SpAppID: ev.SpAppID, SubAppID: ev.SubAppID,
				DisplayName: "*user"})
			sim.TerminateAs(in.simKey, by, time.Now().Add(-time.Hour))
			expect[in.code] = expectUser
			user++
		}
		i++
	}
	for _, in := range r.w.intents {
		in.expect = expect[in.code]
	}
	return missing, user
}
