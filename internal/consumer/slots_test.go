package consumer

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/wxterm/wxterm/internal/wxapi"
	"github.com/wxterm/wxterm/internal/wxsim/wxsimtest"
)

// bound holds -max-in-flight at the call site (it replaced a context value
// read inside wxapi's transport): with 4 places, 40 calls of 30 ms latency
// never have more than 4 at the server, every place is given back, and a
// call whose context ends while it waits for a place is not sent.
func TestBoundedHoldsCallsInFlight(t *testing.T) {
	sim, client := wxsimtest.AutoCreating(t, 30*time.Millisecond)
	calls := make(semaphore, 4)
	b := decorate(client, bound(calls))
	const n = 40
	var g errgroup.Group
	for i := range n {
		g.Go(func() error {
			_, err := b.Terminate(context.Background(), wxapi.Request{API: wxapi.CreditRepayment, OutContractCode: fmt.Sprintf("S%d", i), Remark: "r"})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if p := sim.PeakConcurrent(); p > cap(calls) || p < 2 {
		t.Errorf("peak calls at the server: got %d; want between 2 and %d", p, cap(calls))
	}
	if len(calls) != 0 {
		t.Errorf("places held after every call returned: got %d; want 0", len(calls))
	}

	for range cap(calls) {
		calls <- struct{}{}
	}
	before := sim.TotalTerminateCalls()
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := b.Terminate(short, wxapi.Request{API: wxapi.CreditRepayment, OutContractCode: "SWAIT", Remark: "r"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("call without a free place: got %v; want deadline exceeded", err)
	}
	if got := sim.TotalTerminateCalls() - before; got != 0 {
		t.Errorf("calls at the server while every place was held: got %d; want 0", got)
	}
}
