package consumer

import (
	"context"

	"github.com/wxterm/wxterm/internal/wxapi"
)

// Terminator is the WeChat Pay client of one merchant (*wxapi.Client).
type Terminator interface {
	Terminate(ctx context.Context, r wxapi.Request) (*wxapi.Contract, error)
	Query(ctx context.Context, r wxapi.Request) (*wxapi.Contract, error)
}

// callFunc is one WeChat Pay call: a Terminator's Terminate or Query.
type callFunc func(ctx context.Context, r wxapi.Request) (*wxapi.Contract, error)

// middleware wraps one call (op is opTerminate or opQuery) in more
// behaviour, the way watermill's middlewares wrap a handler.
type middleware func(op string, next callFunc) callFunc

// decorated is a Terminator whose calls are wrapped in middlewares.
type decorated struct{ terminate, query callFunc }

func (d decorated) Terminate(ctx context.Context, r wxapi.Request) (*wxapi.Contract, error) {
	return d.terminate(ctx, r)
}

func (d decorated) Query(ctx context.Context, r wxapi.Request) (*wxapi.Contract, error) {
	return d.query(ctx, r)
}

// decorate wraps both calls of t in mws, the first outermost.
func decorate(t Terminator, mws ...middleware) Terminator {
	terminate, query := callFunc(t.Terminate), callFunc(t.Query)
	for i := len(mws) - 1; i >= 0; i-- {
		terminate, query = mws[i](opTerminate, terminate), mws[i](opQuery, query)
	}
	return decorated{terminate, query}
}

// merchant is a configured merchant at run time.
type merchant struct {
	id      string
	subs    map[string]bool // nil: any
	limiter *limiter        // nil: unlimited
	gates   *gates
	client  Terminator // its WeChat Pay client, measured
}

func newMerchant(id string, m Merchant, lim *limiter, gs *gates, metrics *Metrics) *merchant {
	rt := &merchant{id: id, limiter: lim, gates: gs, client: decorate(m.Client, measure(metrics.CallDuration), traceCall)}
	gs.add(id)
	if len(m.SubMchIDs) > 0 {
		rt.subs = make(map[string]bool)
		for _, s := range m.SubMchIDs {
			rt.subs[s] = true
		}
	}
	return rt
}

// caller is the merchant's client as the call policy uses it, decorated
// from the outside in:
//
//	hold     holds calls while a systemic fault of the merchant on the call's host is in force (gate.go)
//	pace     keeps to the merchant's rate limit (pace.go)
//	bound    holds one of the partition's call places (slots.go)
//	measure  records the call's latency (measure.go)
//
// The partition's places are taken after the pacing, so a merchant waiting
// for its rate holds none of them.
func (m *merchant) caller(calls semaphore) Terminator {
	return decorate(m.client, m.gates.hold(m.id), pace(m.limiter), bound(calls))
}
