package wxapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Class says what a caller should do about a failure.
type Class int

const (
	// Transient failures may succeed later: retry with backoff and jitter.
	// If the Error is Sent, query the contract before retrying.
	Transient Class = iota
	// Permanent failures will not succeed for this contract as requested.
	Permanent
	// Systemic failures are our own misconfiguration (keys, serials, clock):
	// stop taking work and alert rather than failing contract after contract.
	Systemic
)

var classNames = [...]string{Transient: "transient", Permanent: "permanent", Systemic: "systemic"}

func (c Class) String() string {
	if c < 0 || int(c) >= len(classNames) {
		return "class(" + strconv.Itoa(int(c)) + ")"
	}
	return classNames[c]
}

// Sentinel causes an Error may wrap; test them with errors.Is.
var (
	// ErrSignature: a response's signature did not validate against the
	// WeChat Pay public key (or was missing). The request may have taken effect.
	ErrSignature = errors.New("response signature invalid")
	// ErrConfig: the client's keys or settings are missing or unusable.
	ErrConfig = errors.New("invalid client config")
	// ErrInvalidRequest: the Request lacks what its API needs; nothing was sent.
	ErrInvalidRequest = errors.New("invalid request")
)

const (
	opTerminate = "terminate"
	opQuery     = "query"
)

// Error is every failure Terminate and Query return. Callers test for it with
// errors.As, classify with Classify and act on Sent.
type Error struct {
	API        API
	Op         string // "terminate" or "query"
	HTTPStatus int    // 0 when there was no HTTP answer
	Code       string // WeChat's error code, e.g. PARAM_ERROR
	Message    string // WeChat's error message
	// Sent means the request may have reached WeChat and its outcome is
	// unknown (timeout or reset after sending, 5xx, a success answer whose
	// signature did not validate): query the contract before retrying.
	Sent bool
	Err  error // the underlying cause, if any
}

// Error describes the failure; it never holds keys, the Authorization header
// or signatures.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "wxapi: %s %s: ", e.Op, e.API)
	if e.Err != nil {
		b.WriteString(e.Err.Error())
		return b.String()
	}
	b.WriteString(strconv.Itoa(e.HTTPStatus))
	b.WriteByte(' ')
	if e.Code != "" {
		b.WriteString(e.Code)
	} else {
		b.WriteString(http.StatusText(e.HTTPStatus))
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// classes is the classification table; the first matching row wins.
// status is an HTTP status, a family ("4xx"), "*" for any, or "-" for a
// failure without an HTTP answer (network error, timeout). code "" matches
// any code. cause, if set, must be in the error's chain.
var classes = []struct {
	status string
	code   string
	cause  error
	class  Class
}{
	{"*", "", ErrSignature, Systemic},
	{"*", "", ErrConfig, Systemic},
	{"*", "", ErrInvalidRequest, Permanent},
	{"401", "", nil, Systemic},  // SIGN_ERROR or any other authentication failure: our key, serial, mchid or clock
	{"429", "", nil, Transient}, // FREQUENCY_LIMITED, RATELIMIT_EXCEEDED
	{"404", "", nil, Permanent}, // NOT_FOUND, RESOURCE_NOT_EXISTS, ...
	{"403", "NO_AUTH", nil, Permanent},
	{"400", "PARAM_ERROR", nil, Permanent},
	{"400", "INVALID_REQUEST", nil, Permanent},
	{"*", "SYSTEM_ERROR", nil, Transient},
	{"*", "FREQUENCY_LIMITED", nil, Transient},
	{"*", "SIGN_ERROR", nil, Systemic},
	{"2xx", "", nil, Transient}, // a success answer we could not read: outcome unknown
	{"4xx", "", nil, Permanent},
	{"5xx", "", nil, Transient},
	{"-", "", nil, Transient},
}

// Classify says what to do about err. An *Error anywhere in err's chain is
// classified by its HTTP status, code and cause; any other error (a network
// error, a context deadline) is Transient, except those wrapping ErrConfig,
// ErrSignature or ErrInvalidRequest.
func Classify(err error) Class {
	var status int
	var code string
	if e, ok := errors.AsType[*Error](err); ok {
		status, code = e.HTTPStatus, e.Code
	}
	for _, row := range classes {
		if matchStatus(row.status, status) && (row.code == "" || row.code == code) &&
			(row.cause == nil || errors.Is(err, row.cause)) {
			return row.class
		}
	}
	return Transient
}

func matchStatus(pattern string, status int) bool {
	switch {
	case pattern == "*":
		return true
	case pattern == "-":
		return status == 0
	case strings.HasSuffix(pattern, "xx"):
		return status/100 == int(pattern[0]-'0')
	default:
		return pattern == strconv.Itoa(status)
	}
}

// IsFrequencyLimited reports whether err is WeChat's rate limit (429,
// FREQUENCY_LIMITED): back off harder than for other transient failures.
func IsFrequencyLimited(err error) bool {
	e, ok := errors.AsType[*Error](err)
	return ok && (e.HTTPStatus == http.StatusTooManyRequests || e.Code == "FREQUENCY_LIMITED" || e.Code == "RATELIMIT_EXCEEDED")
}
