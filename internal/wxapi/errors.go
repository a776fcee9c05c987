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

// WeChat Pay's error codes this package acts on. Sources: the SDK's error
// tables (wechatpay-go v0.2.21 services/*: NO_AUTH 403, RESOURCE_NOT_EXISTS
// 404, RATELIMIT_EXCEED 429, INVALID_REQUEST 400, PARAM_ERROR 400), the
// APIv3 common codes (SIGN_ERROR 401, SYSTEM_ERROR 500), and global papay's
// terminate page (403 CONTRACT_NOT_EXIST, NOTES-wechatpay.md:
// pay.weixin.qq.com/doc/global/v3/en/4012356587).
const (
	CodeParamError       = "PARAM_ERROR"
	CodeInvalidRequest   = "INVALID_REQUEST"
	CodeNoAuth           = "NO_AUTH"
	CodeContractNotExist = "CONTRACT_NOT_EXIST"
	CodeRateLimitExceed  = "RATELIMIT_EXCEED"  // the documented spelling, no trailing D
	CodeFrequencyLimited = "FREQUENCY_LIMITED" // SPEC's name for the same limit
	CodeSystemError      = "SYSTEM_ERROR"
	CodeSignError        = "SIGN_ERROR"
)

// classes is the classification table; the first matching row wins.
// status is an HTTP status, a family ("4xx"), "*" for any, or "-" for a
// failure without an HTTP answer (network error, timeout). code "" matches
// any code. cause, if set, must be in the error's chain. query marks a
// terminate refusal that may mean "already terminated": query the contract
// before judging (see MayBeTerminated).
var classes = []struct {
	status string
	code   string
	cause  error
	class  Class
	query  bool
}{
	{"*", "", ErrSignature, Systemic, false},
	{"*", "", ErrConfig, Systemic, false},
	{"*", "", ErrInvalidRequest, Permanent, false},
	{"401", "", nil, Systemic, false}, // SIGN_ERROR or any other authentication failure: our key, serial, mchid or clock
	// Rate limits are transient at any status; IsFrequencyLimited tells the
	// caller to back off harder (no page gives these APIs' QPS limits).
	{"429", "", nil, Transient, false},
	{"*", CodeRateLimitExceed, nil, Transient, false},
	{"*", CodeFrequencyLimited, nil, Transient, false},
	// Global papay's terminate answers 403 CONTRACT_NOT_EXIST for a contract
	// it cannot find "or" (the page's text is cut off) one already
	// terminated: query, then not_found or already terminated.
	{"403", CodeContractNotExist, nil, Permanent, true},
	{"404", "", nil, Permanent, false}, // NOT_FOUND, RESOURCE_NOT_EXISTS: no such contract
	// NO_AUTH is permanent for the call, never systemic: it can be one
	// contract's ("非服务商下的签约子商户", a sub-merchant not under this
	// service provider, in the SDK's tables) as well as the merchant's
	// ("商户无权限": the product or API not granted). Systemic would hold
	// every merchant's calls for one bad intent. But when it repeats across
	// contracts of one merchant it is the merchant's permission: the caller
	// should hold that merchant alone (IsNoAuth) rather than publish a
	// rejection per contract.
	{"403", CodeNoAuth, nil, Permanent, false},
	{"400", CodeParamError, nil, Permanent, false}, // the request is malformed: nothing to query
	// A well-formed request that breaks a business rule, e.g. a terminate of
	// a contract that is not effective (papay: "对应的委托代扣签约协议是已生效
	// 状态", seed 004). No page documents a dedicated "already terminated"
	// code for credit_repayment or papay.
	{"400", CodeInvalidRequest, nil, Permanent, true},
	{"*", CodeSystemError, nil, Transient, false},
	{"*", CodeSignError, nil, Systemic, false},
	{"2xx", "", nil, Transient, false}, // a success answer we could not read: outcome unknown
	{"4xx", "", nil, Permanent, true},  // an undocumented refusal: it may mean already terminated
	{"5xx", "", nil, Transient, false},
	{"-", "", nil, Transient, false},
}

// row returns the table row err matches, or -1.
func row(err error) int {
	var status int
	var code string
	if e, ok := errors.AsType[*Error](err); ok {
		status, code = e.HTTPStatus, e.Code
	}
	for i, r := range classes {
		if matchStatus(r.status, status) && (r.code == "" || r.code == code) &&
			(r.cause == nil || errors.Is(err, r.cause)) {
			return i
		}
	}
	return -1
}

// Classify says what to do about err. An *Error anywhere in err's chain is
// classified by its HTTP status, code and cause; any other error (a network
// error, a context deadline) is Transient, except those wrapping ErrConfig,
// ErrSignature or ErrInvalidRequest.
func Classify(err error) Class {
	if i := row(err); i >= 0 {
		return classes[i].class
	}
	return Transient
}

// MayBeTerminated reports whether err is a terminate refusal that may mean
// the contract is already terminated (403 CONTRACT_NOT_EXIST, 400
// INVALID_REQUEST, an undocumented 4xx): query the contract before judging
// it. A query that then finds it terminated makes the outcome terminated; a
// query that finds no contract (IsNotFound) makes it not_found.
func MayBeTerminated(err error) bool {
	e, ok := errors.AsType[*Error](err)
	i := row(err)
	return ok && e.Op == opTerminate && i >= 0 && classes[i].query
}

// IsNotFound reports whether err says the contract does not exist: a 404
// (NOT_FOUND, RESOURCE_NOT_EXISTS), or a query answered 403
// CONTRACT_NOT_EXIST (a query would return a terminated contract, so there
// the code is not ambiguous).
func IsNotFound(err error) bool {
	e, ok := errors.AsType[*Error](err)
	return ok && (e.HTTPStatus == http.StatusNotFound ||
		e.Op == opQuery && e.HTTPStatus == http.StatusForbidden && e.Code == CodeContractNotExist)
}

// IsNoAuth reports whether err is 403 NO_AUTH: permanent for the call, and,
// when it repeats across a merchant's contracts, that merchant's missing
// permission (see the classification table).
func IsNoAuth(err error) bool {
	e, ok := errors.AsType[*Error](err)
	return ok && e.Code == CodeNoAuth
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
// RATELIMIT_EXCEED, FREQUENCY_LIMITED): back off harder than for other
// transient failures.
func IsFrequencyLimited(err error) bool {
	e, ok := errors.AsType[*Error](err)
	return ok && (e.HTTPStatus == http.StatusTooManyRequests || e.Code == CodeFrequencyLimited || e.Code == CodeRateLimitExceed ||
		e.Code == "RATELIMIT_EXCEEDED") // a misspelling this package once matched; harmless to keep
}
