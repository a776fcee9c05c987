// Package wxapi terminates and queries WeChat Pay APIv3 auto-debit contracts
// (credit_repayment, papay_partner, papay_direct, global_papay) through the
// official SDK, which signs requests with the merchant key and validates
// response signatures with the WeChat Pay public key, with platform
// certificates the SDK downloads with the merchant's APIv3 key, or with
// either while a merchant migrates (see Verification).
//
// Each API family's answers are decoded in the shape its pages document
// and normalised (Contract.Status, Contract.TerminationMode,
// Contract.TerminatedAt) beside WeChat's raw values.
//
// Every failure is an *Error, classified as Transient, Permanent or Systemic
// by one table (see Classify), and marked Sent when WeChat may have acted on
// the request without our knowing the outcome.
package wxapi

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/signers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/validators"
)

// Default hosts and timeout.
const (
	DefaultBaseURL       = "https://api.mch.weixin.qq.com"
	DefaultBackupURL     = "https://api2.mch.weixin.qq.com"
	DefaultGlobalBaseURL = "https://apihk.mch.weixin.qq.com"
	DefaultTimeout       = 10 * time.Second
)

// Config is one merchant's credentials and the hosts to call.
type Config struct {
	MchID      string          // merchant id (商户号)
	CertSerial string          // merchant API certificate serial number
	PrivateKey *rsa.PrivateKey // merchant API private key: signs requests

	// Verification says how answers are verified; the zero value is
	// VerifyPublicKey.
	Verification Verification
	PublicKeyID  string         // WeChat Pay public key id (PUB_KEY_ID_...): VerifyPublicKey, VerifyBoth
	PublicKey    *rsa.PublicKey // WeChat Pay public key: VerifyPublicKey, VerifyBoth
	// APIv3Key decrypts the platform certificates (32 bytes):
	// VerifyCertificates, VerifyBoth.
	APIv3Key string
	// CertificateRefresh is how often platform certificates are downloaded
	// again; default downloader.DefaultDownloadInterval (24 h). The SDK
	// advises between 1 hour and 2 days.
	CertificateRefresh time.Duration

	BaseURL       string // default DefaultBaseURL
	BackupURL     string // default DefaultBackupURL; tried on a network failure to BaseURL (see Client.Terminate)
	GlobalBaseURL string // default DefaultGlobalBaseURL, for global_papay

	// HTTPClient defaults to one that keeps up to 1024 idle connections per
	// host. Its own Timeout, if any, applies on top of Timeout.
	HTTPClient *http.Client
	Timeout    time.Duration // per HTTP attempt; default DefaultTimeout
}

func (c *Config) setDefaults() {
	c.BaseURL = strings.TrimSuffix(cmp.Or(c.BaseURL, DefaultBaseURL), "/")
	c.BackupURL = strings.TrimSuffix(cmp.Or(c.BackupURL, DefaultBackupURL), "/")
	c.GlobalBaseURL = strings.TrimSuffix(cmp.Or(c.GlobalBaseURL, DefaultGlobalBaseURL), "/")
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	if c.HTTPClient == nil {
		c.HTTPClient = defaultHTTPClient()
	}
}

// Validate reports what is missing or unusable in c, wrapping ErrConfig.
func (c *Config) Validate() error {
	var problems []string
	required := []struct{ name, value string }{{"mchid", c.MchID}, {"merchant certificate serial", c.CertSerial}}
	if c.Verification.usesPublicKey() {
		required = append(required, struct{ name, value string }{"wechat pay public key id", c.PublicKeyID})
	}
	for _, f := range required {
		if strings.TrimSpace(f.value) == "" {
			problems = append(problems, f.name+" is required")
		}
	}
	switch {
	case c.PrivateKey == nil:
		problems = append(problems, "merchant private key is required")
	case c.PrivateKey.Validate() != nil:
		problems = append(problems, "merchant private key is invalid")
	case c.PrivateKey.N.BitLen() < 2048:
		problems = append(problems, "merchant private key must be RSA-2048 or longer")
	}
	switch {
	case c.Verification < VerifyPublicKey || c.Verification > VerifyBoth:
		problems = append(problems, "unknown verification mode")
	case c.Verification.usesPublicKey() && (c.PublicKey == nil || c.PublicKey.N == nil):
		problems = append(problems, "wechat pay public key is required")
	}
	if c.Verification.usesCertificates() && len(c.APIv3Key) != apiV3KeyLen {
		problems = append(problems, "apiv3 key of 32 bytes is required to download platform certificates")
	}
	if c.CertificateRefresh < 0 {
		problems = append(problems, "certificate refresh must not be negative")
	}
	for _, u := range []struct{ name, value string }{
		{"base url", c.BaseURL}, {"backup url", c.BackupURL}, {"global base url", c.GlobalBaseURL},
	} {
		if p, err := url.Parse(u.value); u.value != "" && (err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "") {
			problems = append(problems, u.name+" must be an http(s) URL")
		}
	}
	if c.Timeout < 0 {
		problems = append(problems, "timeout must not be negative")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrConfig, strings.Join(problems, "; "))
	}
	return nil
}

// defaultHTTPClient keeps as many idle connections as a consumer has calls
// in flight (-max-in-flight × partitions, 512 by default with 8): a smaller
// pool closes connections after a burst and dials them again in the next.
// Idle ones close after 90 s. Deadlines come from each call's context.
func defaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.MaxIdleConns = 2048
	t.MaxIdleConnsPerHost = 1024
	t.IdleConnTimeout = 90 * time.Second
	t.TLSHandshakeTimeout = 5 * time.Second
	t.ExpectContinueTimeout = time.Second
	return &http.Client{Transport: t}
}

// Client calls the WeChat Pay contract APIs for one merchant. It is safe for
// concurrent use. A Client verifying with platform certificates refreshes
// them in a goroutine until Close.
type Client struct {
	sdk                      *core.Client
	base, backup, globalBase string
	timeout                  time.Duration
	certs                    *certificates // nil with VerifyPublicKey
}

// New returns a Client for cfg, or an error wrapping ErrConfig (Systemic)
// if a key or setting is missing or unusable.
func New(cfg Config) (*Client, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("wxapi: %w", err)
	}
	certs, err := startCertificates(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("wxapi: %w", err)
	}
	sdk, err := core.NewClientWithDialSettings(context.Background(), &core.DialSettings{
		HTTPClient: cfg.HTTPClient,
		Signer: stateSigner{&signers.SHA256WithRSASigner{
			MchID: cfg.MchID, CertificateSerialNo: cfg.CertSerial, PrivateKey: cfg.PrivateKey,
		}},
		Validator: signatureValidator{validators.NewWechatPayResponseValidator(verifier(cfg, certs))},
	})
	if err != nil {
		certs.stop()
		return nil, fmt.Errorf("wxapi: %w: %v", ErrConfig, err)
	}
	return &Client{sdk: sdk, base: cfg.BaseURL, backup: cfg.BackupURL, globalBase: cfg.GlobalBaseURL, timeout: cfg.Timeout, certs: certs}, nil
}

// Close stops refreshing platform certificates; it does nothing for a
// Client verifying with the public key. The Client must not be used after.
func (c *Client) Close() error {
	c.certs.stop()
	return nil
}

// Terminate asks WeChat to terminate the contract r names and returns what
// WeChat answered about it.
//
// global_papay answers 204 without a body, and credit_repayment may answer
// without its optional contract_info: the Contract returned then holds the
// request's identifiers, the remark, Status StatusTerminated and
// TerminationMode ModeMerchant, its raw state empty; Query it for WeChat's
// record. Identifiers a success answer lacks are filled from the request. A
// nil error means WeChat accepted the termination; the contract may still
// be Pending (papay's TERMINATE_PENDING): query it again, never terminate
// it again. Any other 2xx without the documented contract is an error,
// Sent: the outcome is unknown.
//
// On a network failure before the request was written to BaseURL, the call
// is repeated on BackupURL. It is not repeated once the request may have
// reached WeChat: the Error is then Sent, and the caller must Query before
// retrying, since a second terminate would be answered as already terminated.
func (c *Client) Terminate(ctx context.Context, r Request) (*Contract, error) {
	contract, status, err := c.call(ctx, opTerminate, r)
	if err != nil {
		return nil, err
	}
	if contract == nil {
		// An answer documented without a contract (global_papay's 204,
		// credit_repayment without contract_info): WeChat accepted our call,
		// so the contract is terminated, by us; the raw fields stay empty.
		contract = &Contract{API: r.API, AppID: r.AppID, SpAppID: r.SpAppID, SubMchID: r.SubMchID, SubAppID: r.SubAppID,
			ContractTerminationRemark: r.Remark, Status: StatusTerminated, TerminationMode: ModeMerchant}
	}
	contract.ContractID = cmp.Or(contract.ContractID, r.ContractID)
	contract.OutContractCode = cmp.Or(contract.OutContractCode, r.OutContractCode)
	contract.PlanID = cmp.Or(contract.PlanID, r.PlanID)
	contract.Status = cmp.Or(contract.Status, StatusTerminated)
	contract.HTTPStatus = status
	return contract, nil
}

// Query fetches the contract r names with its current state, e.g. to learn
// the outcome of a Sent failure. Queries fail over to BackupURL on any
// network failure.
func (c *Client) Query(ctx context.Context, r Request) (*Contract, error) {
	contract, status, err := c.call(ctx, opQuery, r)
	if err == nil && contract == nil {
		return nil, &Error{API: r.API, Op: opQuery, HTTPStatus: status, Sent: true,
			Err: errors.New("empty answer")}
	}
	if err == nil && contract.Status == "" {
		// An answer without the state its API documents (none, or another
		// family's field names) is not WeChat's word that the contract is
		// effective: never terminate on it; query again (Pending).
		contract.Status = StatusUnknown
	}
	if contract != nil {
		contract.HTTPStatus = status
	}
	return contract, err
}

// call makes one call (on the backup host too when allowed) and returns the
// decoded contract, nil for a documented answer without one, and the
// answer's HTTP status.
func (c *Client) call(ctx context.Context, op string, r Request) (*Contract, int, error) {
	rt, ok := routes[r.API]
	if !ok {
		return nil, 0, newError(op, r.API, fmt.Errorf("%w: unknown api %q", ErrInvalidRequest, r.API))
	}
	if err := rt.check(r, op); err != nil {
		return nil, 0, newError(op, r.API, err)
	}
	method, path, body := http.MethodGet, rt.query(r), []byte(nil)
	if op == opTerminate {
		var v any
		method = http.MethodPost
		path, v = rt.terminate(r)
		var err error
		if body, err = json.Marshal(v); err != nil {
			return nil, 0, newError(op, r.API, err)
		}
	}
	hosts := []string{c.base, c.backup}
	if rt.global {
		hosts = []string{c.globalBase}
	}
	var e *Error
	for i, host := range hosts {
		if i > 0 && host == hosts[i-1] {
			break
		}
		res, st, err := c.attempt(ctx, method, host+path, body)
		if err == nil {
			contract, err := decode(op, r.API, res.Response)
			return contract, res.Response.StatusCode, err
		}
		if e = wrap(op, r.API, res, st, err); !mayFailOver(e, method) || ctx.Err() != nil {
			break
		}
	}
	return nil, 0, e
}

// mayFailOver reports whether a failed attempt may be repeated on the backup
// host: only after a network failure, and for a terminate only if the
// request was not written.
func mayFailOver(e *Error, method string) bool {
	network := e.HTTPStatus == 0 && e.Err != nil && !errors.Is(e, ErrConfig) && !errors.Is(e, ErrSignature)
	return network && (!e.Sent || method == http.MethodGet)
}

// attempt makes one HTTP call with its own timeout.
func (c *Client) attempt(ctx context.Context, method, url string, body []byte) (*core.APIResult, *callState, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	st := new(callState)
	ctx = context.WithValue(ctx, callStateKey{}, st)
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteHeaders: func() { st.sent.Store(true) }})
	if method == http.MethodGet {
		res, err := c.sdk.Get(ctx, url)
		return res, st, err
	}
	res, err := c.sdk.Post(ctx, url, body)
	return res, st, err
}

// decode reads a validated 2xx answer; the SDK has buffered its body.
func decode(op string, api API, resp *http.Response) (*Contract, error) {
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	var c *Contract
	switch {
	case err != nil:
	case api == GlobalPapay && op == opTerminate && (resp.StatusCode != http.StatusNoContent || len(bytes.TrimSpace(body)) > 0):
		// Global papay's terminate documents 204 and no body, nothing else
		// (seed 002; docs/v3/global/papay/contracts/{contract_id}/terminate.yaml
		// in TheNorthMemory/wechatpay-openapi: responses '204': {}). Any
		// other success answer is not WeChat's word that it terminated the
		// contract: the outcome is unknown, query first.
		err = fmt.Errorf("%w: global terminate answered %d with %d bytes, not 204 without a body", errUndocumented, resp.StatusCode, len(body))
	default:
		c, err = decodeAnswer(api, op, body)
	}
	if err != nil {
		e := newError(op, api, fmt.Errorf("decode answer: %w", err))
		e.HTTPStatus, e.Sent = resp.StatusCode, true
		return nil, e
	}
	return c, nil
}

func newError(op string, api API, err error) *Error {
	return &Error{API: api, Op: op, Err: err}
}

// wrap turns what the SDK returned into an *Error.
func wrap(op string, api API, res *core.APIResult, st *callState, err error) *Error {
	e := &Error{API: api, Op: op}
	if apiErr, ok := errors.AsType[*core.APIError](err); ok {
		// apiErr itself is not kept: its Error() prints the response headers.
		e.HTTPStatus, e.Code, e.Message = apiErr.StatusCode, apiErr.Code, apiErr.Message
		e.Sent = apiErr.StatusCode >= 500
	} else {
		e.Err = err
		switch {
		case errors.Is(err, ErrSignature):
			e.Sent = true
			if res != nil && res.Response != nil {
				e.HTTPStatus = res.Response.StatusCode
			}
		case st.signErr != nil:
			e.Err = fmt.Errorf("%w: sign request: %v", ErrConfig, st.signErr)
		default:
			e.Sent = st.sent.Load()
		}
	}
	return e
}

// callState is what one HTTP attempt learned beyond the SDK's error.
type callState struct {
	sent    atomic.Bool // request headers were written: WeChat may have acted
	signErr error       // signing failed: our key is unusable
}

type callStateKey struct{}

// signing admits as many RSA signatures at once, process-wide, as Go has
// CPUs to run them. Hundreds of calls may be in flight (-max-in-flight per
// partition); signed all at once, each signature would share the CPUs with
// every other, so all would be done late together and the goroutines that
// read fetches and answers would queue behind them. Admitted in arrival
// order, the first requests go out first.
var signing = make(chan struct{}, runtime.GOMAXPROCS(0))

// stateSigner records a signing failure in the call's state, since the SDK
// flattens signer errors into text. A context that ends while waiting for
// signing is not such a failure: the request is simply not sent.
type stateSigner struct{ auth.Signer }

func (s stateSigner) Sign(ctx context.Context, message string) (*auth.SignatureResult, error) {
	select {
	case signing <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-signing }()
	res, err := s.Signer.Sign(ctx, message)
	if st, ok := ctx.Value(callStateKey{}).(*callState); ok && err != nil {
		st.signErr = err
	}
	return res, err
}

// signatureValidator marks every validation failure with ErrSignature,
// after reading the body itself so that a network failure while reading
// is not mistaken for a bad signature.
type signatureValidator struct{ auth.Validator }

func (v signatureValidator) Validate(ctx context.Context, resp *http.Response) error {
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err := v.Validator.Validate(ctx, resp); err != nil {
		return fmt.Errorf("%w: %w", ErrSignature, err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return nil
}
