// Package wxsim simulates the WeChat Pay APIv3 endpoints package wxapi
// calls: the four contract-terminate endpoints, their query endpoints and
// the platform-certificate download, each answering in the shapes, codes
// and vocabularies its pages document (docs/wechatpay.md). Like WeChat, it
// verifies each request's WECHATPAY2-SHA256-RSA2048 signature, validates
// bodies, keeps contract state (a second terminate is refused as each API
// refuses it), and signs every answer with the WeChat Pay public key or a
// platform certificate so the official SDK's validator accepts it. It injects faults on demand and counts calls
// per contract, so tests can assert that no contract is terminated twice.
//
// Serve it with httptest.NewServer(sim). A Server is safe for concurrent use.
package wxsim

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core/auth"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"

	"github.com/wxterm/wxterm/internal/wxapi"
)

// Options configure a Server.
type Options struct {
	// MchID, MerchantCertSerial and MerchantPublicKey verify each request's
	// Authorization header; a wrong mchid, serial, key or signature, or a
	// timestamp more than 5 minutes off, is answered 401 SIGN_ERROR. With a
	// nil MerchantPublicKey requests are not verified.
	MchID              string
	MerchantCertSerial string
	MerchantPublicKey  *rsa.PublicKey

	// PublicKeyID and PlatformPrivateKey sign every answer (Wechatpay-Serial,
	// -Timestamp, -Nonce, -Signature) with Signing SignPublicKey. With a nil
	// key answers are unsigned.
	PublicKeyID        string
	PlatformPrivateKey *rsa.PrivateKey

	// Certificate is the platform certificate, CertificateKey its key and
	// CertificateSerial its serial (Wechatpay-Serial): they sign answers
	// with Signing SignCertificate, and the certificate downloads always.
	// GET /v3/certificates (and /v3/global/certificates, seed of the global
	// pages) serves Certificate encrypted with APIv3Key (AEAD_AES_256_GCM);
	// without them those paths answer 404.
	Certificate       *x509.Certificate
	CertificateKey    *rsa.PrivateKey
	CertificateSerial string
	APIv3Key          string
	// Signing picks the key answers are signed with; see SetSigning.
	Signing Signing

	// PendingFor, if positive, makes a papay terminate leave the contract
	// TERMINATE_PENDING for that long before it becomes TERMINATED.
	PendingFor time.Duration

	// AutoCreate treats an unknown contract as a fresh effective one (for
	// demos); otherwise it is answered 404 NOT_FOUND like the real API.
	AutoCreate bool
	// Latency is added to every call.
	Latency time.Duration
}

// Server is the simulator, an http.Handler. It is safe for concurrent use.
type Server struct {
	opts     Options
	verifier auth.Verifier // nil: requests are not verified
	mux      *http.ServeMux

	terminateCalls, queryCalls atomic.Int64
	requestID                  atomic.Uint64
	open, peak                 atomic.Int64 // calls being served now, and at most
	servedNanos                atomic.Int64 // time spent serving calls, summed over calls

	signing atomic.Int32 // a Signing

	mu      sync.Mutex
	byCode  map[string]*Contract // credit_repayment and papay_* contracts by out_contract_code
	byID    map[string]*Contract // global_papay contracts by contract_id
	missing map[string]bool      // keys that do not exist, even with AutoCreate
	calls   map[string]int       // terminate requests per key
	done    map[string]int       // terminations per key
	faults  Faults
	failed  map[string]int // FailFirst faults served per key since SetFaults
	nextID  int
}

// New returns a Server with no contracts and no faults.
func New(opts Options) *Server {
	s := &Server{
		opts:    opts,
		mux:     http.NewServeMux(),
		byCode:  make(map[string]*Contract),
		byID:    make(map[string]*Contract),
		missing: make(map[string]bool),
		calls:   make(map[string]int),
		done:    make(map[string]int),
		failed:  make(map[string]int),
	}
	s.signing.Store(int32(opts.Signing))
	if opts.MerchantPublicKey != nil {
		s.verifier = verifiers.NewSHA256WithRSAPubkeyVerifier(opts.MerchantCertSerial, *opts.MerchantPublicKey)
	}
	for _, e := range []struct {
		pattern   string
		api       wxapi.API
		terminate bool
	}{
		{"POST /v3/credit-repayment/partner/contracts/terminate", wxapi.CreditRepayment, true},
		{"GET /v3/credit-repayment/partner/contracts/{code}", wxapi.CreditRepayment, false},
		{"POST /v3/papay/sign/partner/contracts/plan-id/{plan}/out-contract-code/{code}/terminate", wxapi.PapayPartner, true},
		{"GET /v3/papay/sign/partner/contracts/plan-id/{plan}/out-contract-code/{code}", wxapi.PapayPartner, false},
		{"POST /v3/papay/sign/contracts/plan-id/{plan}/out-contract-code/{code}/terminate", wxapi.PapayDirect, true},
		{"GET /v3/papay/sign/contracts/plan-id/{plan}/out-contract-code/{code}", wxapi.PapayDirect, false},
		{"POST /v3/global/papay/contracts/{id}/terminate", wxapi.GlobalPapay, true},
		{"GET /v3/global/papay/contracts/{id}", wxapi.GlobalPapay, false},
	} {
		s.mux.HandleFunc(e.pattern, s.endpoint(e.api, e.terminate))
	}
	s.mux.HandleFunc("GET /v3/certificates", s.certificates)
	s.mux.HandleFunc("GET /v3/global/certificates", s.certificates)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.write(w, errorAnswer(http.StatusNotFound, "NOT_FOUND", "no such API: "+r.Method+" "+r.URL.Path, nil), false)
	})
	return s
}

// ServeHTTP serves the WeChat Pay endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Handler returns s as an http.Handler.
func (s *Server) Handler() http.Handler { return s }

// Seed adds or replaces a contract. A credit_repayment or papay_* contract
// is keyed by OutContractCode, a global_papay contract by ContractID (which
// is generated for the other APIs when empty). SignedTime defaults to now.
func (s *Server) Seed(c Contract) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.ContractID == "" {
		c.ContractID = s.newContractID()
	}
	if c.SignedTime.IsZero() {
		c.SignedTime = time.Now()
	}
	if c.API == wxapi.GlobalPapay {
		s.byID[c.ContractID] = &c
		delete(s.missing, c.ContractID)
	} else {
		s.byCode[c.OutContractCode] = &c
		delete(s.missing, c.OutContractCode)
	}
}

// SeedMissing makes the contract with that key (out_contract_code, or
// contract_id for global_papay) one that does not exist, even with
// AutoCreate: it is answered as WeChat answers an unknown contract.
func (s *Server) SeedMissing(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byCode, key)
	delete(s.byID, key)
	s.missing[key] = true
}

// contract finds the contract with that key: out_contract_code, or
// contract_id for global_papay. The caller holds s.mu.
func (s *Server) contract(key string) (*Contract, bool) {
	if c, ok := s.byCode[key]; ok {
		return c, true
	}
	c, ok := s.byID[key]
	return c, ok
}

// TerminateAs terminates the contract with that key as by did at at (e.g.
// its user, before our first call), without a terminate call: it counts in
// neither TerminateCalls nor Terminations. It reports whether the contract
// exists.
func (s *Server) TerminateAs(key string, by Terminator, at time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.contract(key)
	if !ok {
		return false
	}
	c.State, c.TerminatedBy, c.TerminatedTime, c.PendingUntil = Terminated, by, at, time.Time{}
	return true
}

// SetSigning switches the key answers are signed with, as WeChat Pay does
// when a merchant moves from platform certificates to the public key.
func (s *Server) SetSigning(sg Signing) { s.signing.Store(int32(sg)) }

// Contract returns the contract with that key (out_contract_code, or
// contract_id for global_papay) as it is now.
func (s *Server) Contract(key string) (Contract, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.contract(key)
	if !ok {
		return Contract{}, false
	}
	c.resolve(time.Now())
	return *c, true
}

// TerminateCalls returns how many terminate requests named that contract
// (out_contract_code, or contract_id for global_papay), whatever the answer.
func (s *Server) TerminateCalls(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[key]
}

// Terminations returns how many times that contract went from effective to
// terminated: never more than 1 unless it is seeded again.
func (s *Server) Terminations(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done[key]
}

// TotalTerminateCalls returns how many terminate requests s received.
func (s *Server) TotalTerminateCalls() int { return int(s.terminateCalls.Load()) }

// TotalQueryCalls returns how many query requests s received.
func (s *Server) TotalQueryCalls() int { return int(s.queryCalls.Load()) }

// SetFaults replaces the fault profile; FailFirst counts start again.
func (s *Server) SetFaults(f Faults) {
	f.Kinds = slices.Clone(f.Kinds)
	f.FailFirst = maps.Clone(f.FailFirst)
	if f.HangFor <= 0 {
		f.HangFor = 30 * time.Second
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	clear(s.failed)
}

// maxBody bounds request bodies; WeChat's are a few hundred bytes.
const maxBody = 64 << 10

// endpoint serves one API's terminate or query endpoint.
func (s *Server) endpoint(api wxapi.API, terminate bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		in := &input{api: api, terminate: terminate, code: r.PathValue("code"), plan: r.PathValue("plan"),
			id: r.PathValue("id"), query: r.URL.Query(), bodyErr: err}
		if terminate && err == nil {
			in.bodyErr = json.Unmarshal(raw, &in.body)
		}
		if api == wxapi.CreditRepayment && terminate {
			in.code = in.body.OutContractCode
		}
		s.serve(w, r, raw, in)
	}
}

// serve runs one call: count it, pick a fault, wait, verify the signature,
// process it, and answer.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, raw []byte, in *input) {
	n, begin := s.open.Add(1), time.Now()
	defer func() {
		s.open.Add(-1)
		s.servedNanos.Add(int64(time.Since(begin)))
	}()
	for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
	}
	kind, f := s.admit(in)
	if !sleep(r.Context(), s.opts.Latency+f.Latency) {
		return // the client is gone
	}
	if kind == FaultSignError {
		s.write(w, errorAnswer(http.StatusUnauthorized, "SIGN_ERROR", "signature verification failed", nil), false)
		return
	}
	if err := s.verify(r, raw); err != nil {
		s.write(w, errorAnswer(http.StatusUnauthorized, "SIGN_ERROR", "signature verification failed: "+err.Error(), nil), false)
		return
	}
	after := f.AfterApply && kind.canFollowApply()
	if kind != 0 && kind != FaultBadSignature && !after {
		s.fail(w, r, kind, f)
		return
	}
	a := s.process(in)
	if after {
		s.fail(w, r, kind, f)
		return
	}
	s.write(w, a, kind == FaultBadSignature)
}

// admit counts the call and picks its fault, if any.
func (s *Server) admit(in *input) (FaultKind, Faults) {
	if in.terminate {
		s.terminateCalls.Add(1)
	} else {
		s.queryCalls.Add(1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, key := s.faults, in.key()
	if in.terminate {
		s.calls[key]++
		if n := f.FailFirst[key]; s.failed[key] < n {
			s.failed[key]++
			if len(f.Kinds) == 0 {
				return FaultHTTP500, f
			}
			return f.Kinds[(s.failed[key]-1)%len(f.Kinds)], f
		}
	}
	if len(f.Kinds) > 0 && f.Rate > 0 && rand.Float64() < f.Rate {
		return f.Kinds[rand.IntN(len(f.Kinds))], f
	}
	return 0, f
}

// sleep waits d, or until ctx is done; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Counts is a snapshot of what a Server saw.
type Counts struct {
	TerminateCalls int            `json:"terminate_calls"`
	QueryCalls     int            `json:"query_calls"`
	Calls          map[string]int `json:"calls"`        // terminate requests per contract key
	Terminations   map[string]int `json:"terminations"` // effective→terminated transitions per contract key
	// PeakConcurrent is the most calls served at once; ServedSeconds the
	// time spent serving calls summed over them, so that its growth over an
	// interval divided by the interval is the mean number of calls open.
	PeakConcurrent int     `json:"peak_concurrent"`
	ServedSeconds  float64 `json:"served_seconds"`
}

// PeakConcurrent is the most calls the server has served at once.
func (s *Server) PeakConcurrent() int { return int(s.peak.Load()) }

// ServeCounts answers with Counts as JSON: the simulator's control endpoint
// (GET /sim/counts) for tests that run it out of process.
func (s *Server) ServeCounts(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.Counts())
}

// Counts returns a snapshot of the call counters.
func (s *Server) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Counts{
		TerminateCalls: s.TotalTerminateCalls(), QueryCalls: s.TotalQueryCalls(),
		Calls: maps.Clone(s.calls), Terminations: maps.Clone(s.done),
		PeakConcurrent: s.PeakConcurrent(), ServedSeconds: time.Duration(s.servedNanos.Load()).Seconds(),
	}
}
