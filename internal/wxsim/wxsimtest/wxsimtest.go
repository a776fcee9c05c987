// Package wxsimtest holds what tests of the simulator's users share.
package wxsimtest

import (
	"sync"
	"testing"

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
