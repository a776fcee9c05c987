package wxapi_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wxterm/wxterm/internal/wxapi"
	"github.com/wxterm/wxterm/internal/wxsim"
	"github.com/wxterm/wxterm/internal/wxsim/wxsimtest"
)

// Regression (issue 13): a contract its user terminated before our first
// call must read as terminated by the user, at a time before our call, on
// every API; the client read global papay's query as a contract without a
// state, and the termination mode as nothing.
func TestUserTerminatedBeforeUs(t *testing.T) {
	e := setup(t, nil, nil)
	userAt := time.Now().Add(-time.Hour).Truncate(time.Second)
	for key, r := range requests {
		t.Run(key, func(t *testing.T) {
			if !e.sim.TerminateAs(key, wxsim.ByUser, userAt) {
				t.Fatalf("no contract %s", key)
			}
			_, err := e.client.Terminate(context.Background(), r)
			if !wxapi.MayBeTerminated(err) || wxapi.Classify(err) != wxapi.Permanent {
				t.Fatalf("terminate: got %v; want a permanent refusal to query before judging", err)
			}
			c, err := e.client.Query(context.Background(), r)
			if err != nil || !c.Terminated() || c.Pending() || c.TerminationMode != wxapi.ModeUser || !c.TerminatedAt.Equal(userAt) {
				t.Errorf("query: got %+v, %v; want terminated by the user at %v", c, err, userAt)
			}
			if n := e.sim.Terminations(key); n != 0 {
				t.Errorf("Terminations(%s) = %d; want 0", key, n)
			}
		})
	}
}

// Regression (issue 13): global papay's terminate answers 403
// CONTRACT_NOT_EXIST for a contract that does not exist as for one already
// terminated; only the query tells them apart.
func TestGlobalContractNotExist(t *testing.T) {
	e := setup(t, nil, nil)
	e.sim.SeedMissing("G9")
	r := wxapi.Request{API: wxapi.GlobalPapay, ContractID: "G9", AppID: "wxdirect", Remark: "n"}
	_, err := e.client.Terminate(context.Background(), r)
	if we := wxErr(t, err); we.HTTPStatus != 403 || we.Code != "CONTRACT_NOT_EXIST" || !wxapi.MayBeTerminated(err) || wxapi.IsNotFound(err) {
		t.Fatalf("terminate: got %v; want an ambiguous 403 CONTRACT_NOT_EXIST", err)
	}
	if _, err := e.client.Query(context.Background(), r); !wxapi.IsNotFound(err) || wxapi.Classify(err) != wxapi.Permanent {
		t.Errorf("query: got %v; want not found", err)
	}
}

// Papay's TERMINATE_PENDING: the terminate is accepted but the contract is
// Pending, neither terminated nor to be terminated again; once the
// termination completes the query says terminated, by the merchant.
func TestPapayTerminatePending(t *testing.T) {
	k := wxsimtest.Keys(t)
	opts := k.SimOptions()
	opts.PendingFor = time.Hour
	sim := wxsim.New(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	client, err := wxapi.New(k.ClientConfig(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range seeds {
		sim.Seed(c)
	}
	r := requests["PP1"]
	c, err := client.Terminate(context.Background(), r)
	if err != nil || !c.Pending() || c.Terminated() || c.Status != wxapi.StatusPending || c.ContractState != "TERMINATE_PENDING" {
		t.Fatalf("terminate: got %+v, %v; want an accepted, pending termination", c, err)
	}
	if c, err := client.Query(context.Background(), r); err != nil || !c.Pending() {
		t.Fatalf("query while pending: got %+v, %v; want pending", c, err)
	}
	if _, err := client.Terminate(context.Background(), r); !wxapi.MayBeTerminated(err) {
		t.Errorf("terminate while pending: got %v; want a refusal to query before judging", err)
	}
	// The pending termination completes: seed it due.
	got, _ := sim.Contract("PP1")
	got.PendingUntil = time.Now().Add(-time.Second).Truncate(time.Second)
	sim.Seed(got)
	c, err = client.Query(context.Background(), r)
	if err != nil || !c.Terminated() || c.Pending() || c.TerminationMode != wxapi.ModeMerchant || !c.TerminatedAt.Equal(got.PendingUntil) {
		t.Errorf("query after: got %+v, %v; want terminated by the merchant at %v", c, err, got.PendingUntil)
	}
	if n := sim.Terminations("PP1"); n != 1 {
		t.Errorf("Terminations = %d; want 1", n)
	}
}

// Each verification mode end to end: the client downloads the platform
// certificate from the simulator (decrypting it with the APIv3 key) where
// its mode needs it, and accepts answers signed the ways its mode allows.
func TestVerificationModes(t *testing.T) {
	k := wxsimtest.Keys(t)
	for _, tc := range []struct {
		mode     wxapi.Verification
		accepted map[wxsim.Signing]bool
	}{
		{wxapi.VerifyPublicKey, map[wxsim.Signing]bool{wxsim.SignPublicKey: true}},
		{wxapi.VerifyCertificates, map[wxsim.Signing]bool{wxsim.SignCertificate: true}},
		{wxapi.VerifyBoth, map[wxsim.Signing]bool{wxsim.SignPublicKey: true, wxsim.SignCertificate: true}},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			sim := wxsim.New(k.SimOptions())
			for _, c := range seeds {
				sim.Seed(c)
			}
			srv := httptest.NewServer(sim)
			t.Cleanup(srv.Close)
			cfg := k.ClientConfig(srv.URL)
			cfg.Verification = tc.mode
			if tc.mode == wxapi.VerifyCertificates {
				cfg.PublicKeyID, cfg.PublicKey = "", nil // not needed
			}
			client, err := wxapi.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { client.Close() })
			for _, sg := range []wxsim.Signing{wxsim.SignPublicKey, wxsim.SignCertificate} {
				sim.SetSigning(sg)
				c, err := client.Query(context.Background(), requests["PD1"])
				switch {
				case tc.accepted[sg] && (err != nil || c.Status != wxapi.StatusEffective):
					t.Errorf("signing %d: got %+v, %v; want the contract", sg, c, err)
				case !tc.accepted[sg] && (!errors.Is(err, wxapi.ErrSignature) || wxapi.Classify(err) != wxapi.Systemic):
					t.Errorf("signing %d: got %v; want a systemic signature failure", sg, err)
				}
			}
		})
	}
}

func TestCertificatesNeedTheAPIv3Key(t *testing.T) {
	k := wxsimtest.Keys(t)
	srv := httptest.NewServer(wxsim.New(k.SimOptions()))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		name string
		key  string
	}{
		{"wrong key", "0123456789abcdef0123456789abcdef"},
		{"no key", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := k.ClientConfig(srv.URL)
			cfg.Verification, cfg.APIv3Key = wxapi.VerifyCertificates, tc.key
			c, err := wxapi.New(cfg)
			if c != nil || !errors.Is(err, wxapi.ErrConfig) {
				t.Errorf("got %v, %v; want ErrConfig", c, err)
			}
		})
	}
}

func TestParseVerification(t *testing.T) {
	for _, v := range []wxapi.Verification{wxapi.VerifyPublicKey, wxapi.VerifyCertificates, wxapi.VerifyBoth} {
		if got, err := wxapi.ParseVerification(v.String()); got != v || err != nil {
			t.Errorf("ParseVerification(%q) = %v, %v; want %v", v.String(), got, err, v)
		}
	}
	if _, err := wxapi.ParseVerification("pubkey"); !errors.Is(err, wxapi.ErrConfig) {
		t.Errorf("ParseVerification(pubkey): got %v; want ErrConfig", err)
	}
}
