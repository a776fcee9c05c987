package wxapi

import (
	"context"
	"net/http"
)

type slotsKey struct{}

// WithCallSlots returns a context whose WeChat Pay requests each hold one
// of slots' places while on the wire: from before the connection is taken
// to the answer's headers. Signing the request and validating the answer
// happen outside, so a caller that bounds calls in flight this way keeps
// its slots on WeChat Pay's latency rather than on its own CPU.
func WithCallSlots(ctx context.Context, slots chan struct{}) context.Context {
	return context.WithValue(ctx, slotsKey{}, slots)
}

// slotTransport takes a slot of the request context's WithCallSlots, if any,
// for the length of each round trip.
type slotTransport struct{ next http.RoundTripper }

func (t slotTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	slots, _ := r.Context().Value(slotsKey{}).(chan struct{})
	if slots == nil {
		return t.next.RoundTrip(r)
	}
	select {
	case slots <- struct{}{}:
	case <-r.Context().Done():
		if r.Body != nil {
			_ = r.Body.Close() // a RoundTripper must close the body, even on error
		}
		return nil, r.Context().Err()
	}
	defer func() { <-slots }()
	return t.next.RoundTrip(r)
}

// withSlots returns a copy of hc whose transport honours WithCallSlots.
func withSlots(hc *http.Client) *http.Client {
	c := *hc
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	c.Transport = slotTransport{next}
	return &c
}
