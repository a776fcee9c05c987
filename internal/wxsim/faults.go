package wxsim

import (
	"net/http"
	"strconv"
	"time"
)

// FaultKind is a way a call can go wrong.
type FaultKind int

// The faults a Server can inject.
const (
	FaultHTTP500      FaultKind = iota + 1 // 500 SYSTEM_ERROR, signed
	FaultHTTP503                           // 503 from a gateway: plain text, unsigned
	Fault429                               // 429 RATELIMIT_EXCEED, signed
	FaultTimeout                           // no answer for Faults.HangFor, then the connection is closed
	FaultDrop                              // the connection is closed without an answer
	FaultBadSignature                      // the real answer with a corrupted signature
	FaultSignError                         // 401 SIGN_ERROR, as if our request signature were wrong
)

var faultNames = map[FaultKind]string{
	FaultHTTP500: "http500", FaultHTTP503: "http503", Fault429: "http429", FaultTimeout: "timeout",
	FaultDrop: "drop", FaultBadSignature: "bad_signature", FaultSignError: "sign_error",
}

func (k FaultKind) String() string {
	if n, ok := faultNames[k]; ok {
		return n
	}
	return "fault(" + strconv.Itoa(int(k)) + ")"
}

// canFollowApply reports whether, with Faults.AfterApply, k strikes after the
// call took effect: the answer is lost, not the request.
func (k FaultKind) canFollowApply() bool {
	return k == FaultHTTP500 || k == FaultHTTP503 || k == FaultTimeout || k == FaultDrop
}

// Faults is a fault profile; see Server.SetFaults.
type Faults struct {
	Latency time.Duration // added to every call
	// Rate is the fraction (0..1) of calls, terminate or query, that get one
	// of Kinds, chosen at random.
	Rate  float64
	Kinds []FaultKind
	// AfterApply makes 500s, 503s, timeouts and drops strike after the call
	// took effect: WeChat terminated the contract but the answer was lost.
	// A bad signature always comes with the call applied; 429 and SIGN_ERROR
	// never do.
	AfterApply bool
	// FailFirst fails the first N terminate calls for a contract key
	// (out_contract_code, or contract_id for global_papay), cycling through
	// Kinds (FaultHTTP500 if Kinds is empty); then calls go through.
	FailFirst map[string]int
	// HangFor is how long FaultTimeout hangs unless the client leaves first;
	// default 30s.
	HangFor time.Duration
}

// fail answers with the fault k.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, k FaultKind, f Faults) {
	switch k {
	case FaultHTTP500:
		s.write(w, errorAnswer(http.StatusInternalServerError, "SYSTEM_ERROR", "system error, call again later with the same parameters", nil), false)
	case FaultHTTP503:
		http.Error(w, "503 Service Temporarily Unavailable", http.StatusServiceUnavailable)
	case Fault429:
		// RATELIMIT_EXCEED 429 "接口有频率限制|请降低频率后重试" (the SDK's error
		// tables, e.g. services/profitsharing); no page gives these APIs' limits.
		s.write(w, errorAnswer(http.StatusTooManyRequests, "RATELIMIT_EXCEED", "frequency limited, slow down", nil), false)
	case FaultTimeout:
		sleep(r.Context(), f.HangFor)
		abort(w)
	case FaultDrop:
		abort(w)
	}
}

// abort closes the connection without an answer.
func abort(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}
