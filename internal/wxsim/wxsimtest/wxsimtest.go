// Package wxsimtest holds what tests of the simulator's users share.
package wxsimtest

import (
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/wxterm/wxterm/internal/wxapi"
	"github.com/wxterm/wxterm/internal/wxsim"
)

var shared = sync.OnceValues(wxsim.NewKeys)

// Keys returns one set of simulator keys per test binary: RSA-2048
// generation is slow, and no test depends on fresh keys. A test that needs
// keys of its own (a stranger's signature, say) calls wxsim.NewKeys.
func Keys(t testing.TB) *wxsim.Keys {
	t.Helper()
	k, err := shared()
	if err != nil {
		t.Fatalf("simulator keys: %v", err)
	}
	return k
}

// AutoCreating serves a simulator that creates any contract it is asked
// about, answering after latency, and returns it with a client for it. The
// server closes when the test ends.
func AutoCreating(t testing.TB, latency time.Duration) (*wxsim.Server, *wxapi.Client) {
	t.Helper()
	k := Keys(t)
	opts := k.SimOptions()
	opts.AutoCreate = true
	opts.Latency = latency
	sim := wxsim.New(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	client, err := wxapi.New(k.ClientConfig(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	return sim, client
}
