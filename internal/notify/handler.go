// Package notify is the receiving end of WeChat Pay's contract
// notifications: an http.Handler that verifies each notification's
// signature with the addressed merchant's WeChat Pay keys, rejects stale
// timestamps, unknown serials and oversized bodies, decrypts the resource
// with the merchant's APIv3 key through the official SDK's notify handler,
// and acknowledges it only once it is durable in Kafka as an
// event.Notification. Every failure is answered 4xx/5xx with
// {"code":"FAIL",…}, so WeChat Pay retries it.
package notify

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core/consts"
	"github.com/wechatpay-apiv3/wechatpay-go/core/notify"

	"github.com/wxterm/wxterm/event"
)

// Defaults of Options.
const (
	// DefaultMaxBodyBytes bounds a notification body. The documented
	// bodies (an encrypted contract of a few hundred bytes) are far smaller.
	DefaultMaxBodyBytes = MaxBodyBytesLimit
	// DefaultMaxSkew is how far Wechatpay-Timestamp may be from now: the
	// SDK's bound (consts.FiveMinute) and the documented one ("允许5分钟之内
	// 的偏移", webhook/v3/*.md in wechatpay-im/website).
	DefaultMaxSkew = consts.FiveMinute * time.Second
	// DefaultPublishTimeout bounds the Kafka write: WeChat Pay gives up on
	// an answer after 5 s (webhook/v3/CREDIT_REPAYMENT.TERMINATE_CONTRACT.md,
	// "超时(5s)未应答") and retries; answering 503 before that is clearer.
	DefaultPublishTimeout = 4 * time.Second
)

// MaxBodyBytesLimit is the largest body limit with which every accepted body
// yields an event within event.MaxNotificationBytes, which the consumer
// refuses beyond (and dead-letters, after WeChat Pay was told SUCCESS). The
// event holds the decrypted resource once, compacted and not HTML-escaped
// (at most 3/4 of its base64 ciphertext), plus copies of its fields and of
// the body's id and event_type, whose re-encoding grows a byte at most
// threefold (an invalid UTF-8 byte becomes U+FFFD): at most three times the
// body, plus the fixed fields (well under 4 KiB). The handler still checks
// each encoded event, so a larger Options.MaxBodyBytes never yields a
// refused event either, only a refusal (CauseSize) that WeChat Pay retries.
const MaxBodyBytesLimit = (event.MaxNotificationBytes - 4<<10) / 3 &^ 1023

// Path is the notification URL's path; {mchid} names the merchant the
// notification is for. PathSingle serves a deployment of one merchant.
const (
	Path       = "/v1/notify/{mchid}"
	PathSingle = "/v1/notify"
)

// Merchant is what verifies and decrypts one merchant's notifications.
type Merchant struct {
	MchID    string
	APIv3Key string // 32 bytes
	Keys     Keys
}

// Options configure a Handler.
type Options struct {
	Merchants []Merchant
	Publisher Publisher
	Metrics   *Metrics
	Logger    *slog.Logger

	MaxBodyBytes   int64         // 0: DefaultMaxBodyBytes; above MaxBodyBytesLimit a body may be refused for its event's size
	MaxSkew        time.Duration // 0: DefaultMaxSkew; more than DefaultMaxSkew is refused by the SDK anyway
	PublishTimeout time.Duration // 0: DefaultPublishTimeout
	Now            func() time.Time
}

// Handler serves POST Path (and PathSingle when one merchant is
// configured). It is safe for concurrent use.
type Handler struct {
	opts      Options
	merchants map[string]*merchant
	single    *merchant
	mux       *http.ServeMux
}

type merchant struct {
	Merchant
	sdk *notify.Handler
}

// New checks opts and builds a Handler.
func New(opts Options) (*Handler, error) {
	if opts.Publisher == nil || opts.Metrics == nil || opts.Logger == nil {
		return nil, errors.New("notify: Publisher, Metrics and Logger are required")
	}
	if len(opts.Merchants) == 0 {
		return nil, errors.New("notify: no merchants")
	}
	opts.MaxBodyBytes = cmp.Or(opts.MaxBodyBytes, DefaultMaxBodyBytes)
	opts.MaxSkew = cmp.Or(opts.MaxSkew, DefaultMaxSkew)
	opts.PublishTimeout = cmp.Or(opts.PublishTimeout, DefaultPublishTimeout)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handler{opts: opts, merchants: make(map[string]*merchant), mux: http.NewServeMux()}
	for _, m := range opts.Merchants {
		if m.MchID == "" || h.merchants[m.MchID] != nil {
			return nil, fmt.Errorf("notify: merchant %q is empty or listed twice", m.MchID)
		}
		if len(m.APIv3Key) != 32 || m.Keys == nil {
			return nil, fmt.Errorf("notify: merchant %s: needs a 32-byte APIv3 key and WeChat Pay keys", m.MchID)
		}
		sdk, err := notify.NewRSANotifyHandler(m.APIv3Key, recordingVerifier{m.Keys})
		if err != nil {
			return nil, fmt.Errorf("notify: merchant %s: %w", m.MchID, err)
		}
		h.merchants[m.MchID] = &merchant{Merchant: m, sdk: sdk}
	}
	if len(h.merchants) == 1 {
		h.single = h.merchants[opts.Merchants[0].MchID]
		h.mux.HandleFunc("POST "+PathSingle, h.serve)
	}
	h.mux.HandleFunc("POST "+Path, h.serve)
	return h, nil
}

// ServeHTTP serves the notification paths.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Cause names why a notification was refused, in a word; it labels the
// rejected metric and the refusal's log line.
type Cause string

// The causes of a refusal.
const (
	CauseMerchant  Cause = "merchant"  // the path names no configured merchant, or the resource another one
	CauseSize      Cause = "size"      // the body is over MaxBodyBytes, or its event over event.MaxNotificationBytes
	CauseRead      Cause = "read"      // the body could not be read
	CauseHeaders   Cause = "headers"   // a Wechatpay-* header is missing or malformed
	CauseTimestamp Cause = "timestamp" // Wechatpay-Timestamp is more than MaxSkew from now
	CauseSerial    Cause = "serial"    // Wechatpay-Serial names no key of the merchant's
	CauseSignature Cause = "signature" // the signature does not verify
	CauseJSON      Cause = "json"      // the body or the decrypted resource is not the documented JSON
	CauseAlgorithm Cause = "algorithm" // resource.algorithm is not AEAD_AES_256_GCM
	CauseDecrypt   Cause = "decrypt"   // the resource does not decrypt with the APIv3 key
	CauseType      Cause = "type"      // an event_type this endpoint does not accept
	CausePayload   Cause = "payload"   // the resource lacks out_contract_code, or the event is not schema-valid
	CausePublish   Cause = "publish"   // Kafka did not store it
)

var causes = []Cause{CauseMerchant, CauseSize, CauseRead, CauseHeaders, CauseTimestamp, CauseSerial, CauseSignature,
	CauseJSON, CauseAlgorithm, CauseDecrypt, CauseType, CausePayload, CausePublish}

// status is the HTTP status a refusal for c is answered with. WeChat Pay
// retries on any 4xx or 5xx (seed 003: "应答的HTTP状态码应为500，或者4xx").
func (c Cause) status() int {
	switch c {
	case CauseMerchant:
		return http.StatusNotFound
	case CauseSize:
		return http.StatusRequestEntityTooLarge
	case CauseTimestamp, CauseSerial, CauseSignature:
		return http.StatusUnauthorized
	case CausePublish:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

// refusal is a failure with its cause and a message safe to log and answer:
// it never holds the SDK's error text, which embeds the whole request.
type refusal struct {
	cause   Cause
	message string // answered and logged
	detail  string // logged only (e.g. Kafka's error)
}

func (r *refusal) Error() string { return string(r.cause) + ": " + r.message }

func refuse(c Cause, msg string) *refusal { return &refusal{cause: c, message: msg} }

// answer is the body of every answer (seed 003; webhook/v3/*.md 应答规范).
type answer struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	h.opts.Metrics.received.Inc()
	n, err := h.handle(w, r, h.opts.Now())
	if err != nil {
		var rf *refusal
		if !errors.As(err, &rf) {
			rf = refuse(CausePublish, "internal error")
		}
		h.opts.Metrics.rejected.WithLabelValues(string(rf.cause)).Inc()
		h.opts.Metrics.latency.WithLabelValues("rejected").Observe(time.Since(start).Seconds())
		attrs := []any{"cause", rf.cause, "message", rf.message, "mchid_path", r.PathValue("mchid"), "remote", r.RemoteAddr}
		if rf.detail != "" {
			attrs = append(attrs, "error", rf.detail)
		}
		if n != nil {
			attrs = append(attrs, "id", n.ID, "event_type", n.EventType, "out_contract_code", n.OutContractCode)
		}
		h.opts.Logger.Warn("notification refused", attrs...)
		writeAnswer(w, rf.cause.status(), answer{Code: "FAIL", Message: string(rf.cause) + ": " + rf.message})
		return
	}
	h.opts.Metrics.published.WithLabelValues(n.EventType).Inc()
	h.opts.Metrics.latency.WithLabelValues("accepted").Observe(time.Since(start).Seconds())
	h.opts.Logger.Info("notification accepted", "id", n.ID, "event_type", n.EventType, "mchid", n.MchID,
		"out_contract_code", n.OutContractCode, "termination_mode", n.TerminationMode)
	writeAnswer(w, http.StatusOK, answer{Code: "SUCCESS", Message: "OK"})
}

func writeAnswer(w http.ResponseWriter, status int, a answer) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(a)
}

// handle verifies, decrypts and publishes one notification. The
// notification is returned, once known, for logging.
func (h *Handler) handle(w http.ResponseWriter, r *http.Request, now time.Time) (*event.Notification, error) {
	m := h.single
	if id := r.PathValue("mchid"); id != "" {
		m = h.merchants[id]
	}
	if m == nil {
		return nil, refuse(CauseMerchant, "no such merchant")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, refuse(CauseSize, fmt.Sprintf("body over %d bytes", h.opts.MaxBodyBytes))
		}
		return nil, refuse(CauseRead, "cannot read the body")
	}
	if err := h.checkHeaders(r.Header, now); err != nil {
		return nil, err
	}

	rec := &verification{}
	ctx := context.WithValue(r.Context(), verificationKey{}, rec)
	r.Body = io.NopCloser(bytes.NewReader(body))
	var content json.RawMessage
	req, err := m.sdk.ParseNotifyRequest(ctx, r, &content)
	if err != nil {
		return nil, classify(rec, req, body) // never err's text: it embeds the request
	}
	h.opts.Metrics.verified.WithLabelValues(req.EventType).Inc()
	n, err := notification(req, m.MchID, now)
	if err != nil {
		return n, err
	}
	b, err := encode(n)
	if err != nil {
		return n, refuse(CauseJSON, "cannot encode the event")
	}
	// The consumer refuses an invalid event for good (dead-letters it):
	// refuse it here, while WeChat Pay still retries, rather than
	// acknowledge it and lose it.
	if len(b) > event.MaxNotificationBytes {
		return n, refuse(CauseSize, fmt.Sprintf("event of %d bytes over %d", len(b), event.MaxNotificationBytes))
	}
	if err := event.ValidateNotification(b); err != nil {
		rf := refuse(CausePayload, "not a valid notification event")
		rf.detail = err.Error() // schema locations, never the input
		return n, rf
	}
	pctx, cancel := context.WithTimeout(r.Context(), h.opts.PublishTimeout)
	defer cancel()
	if err := h.opts.Publisher.Publish(pctx, []byte(n.OutContractCode), b); err != nil {
		rf := refuse(CausePublish, "not stored, retry later")
		rf.detail = err.Error()
		return n, rf
	}
	return n, nil
}

// encode encodes n without HTML escaping: the resource stays as WeChat Pay
// sent it, instead of growing sixfold on each '&', '<' or '>'.
func encode(n *event.Notification) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(n); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// checkHeaders checks what the SDK would refuse before verifying, so each
// refusal has its own cause.
func (h *Handler) checkHeaders(hd http.Header, now time.Time) error {
	for _, name := range []string{consts.WechatPaySerial, consts.WechatPaySignature, consts.WechatPayTimestamp, consts.WechatPayNonce} {
		if strings.TrimSpace(hd.Get(name)) == "" {
			return refuse(CauseHeaders, "no "+name)
		}
	}
	ts, err := strconv.ParseInt(strings.TrimSpace(hd.Get(consts.WechatPayTimestamp)), 10, 64)
	if err != nil {
		return refuse(CauseHeaders, "malformed "+consts.WechatPayTimestamp)
	}
	// The SDK refuses a skew of FiveMinute or more; refuse the same here.
	if skew := now.Sub(time.Unix(ts, 0)).Abs(); skew >= h.opts.MaxSkew {
		return refuse(CauseTimestamp, fmt.Sprintf("%s off by %s", consts.WechatPayTimestamp, skew.Round(time.Second)))
	}
	return nil
}

// classify names the cause of a ParseNotifyRequest failure from what the
// verifier recorded and what the SDK returned, never from its error text.
func classify(rec *verification, req *notify.Request, body []byte) error {
	switch {
	case rec.unknownSerial:
		return refuse(CauseSerial, "unknown "+consts.WechatPaySerial)
	case !rec.called:
		// Refused before verifying: a header check or an unsupported
		// Wechatpay-Signature-Type.
		return refuse(CauseHeaders, "refused before verification")
	case rec.err != nil:
		return refuse(CauseSignature, "signature does not verify")
	case req == nil:
		var probe notify.Request
		if json.Unmarshal(body, &probe) == nil && probe.Resource != nil {
			return refuse(CauseAlgorithm, "resource.algorithm is not AEAD_AES_256_GCM")
		}
		return refuse(CauseJSON, "body is not a notification")
	case req.Resource == nil:
		return refuse(CauseJSON, "no resource")
	case req.Resource.Plaintext == "":
		return refuse(CauseDecrypt, "resource does not decrypt with the APIv3 key")
	}
	return refuse(CauseJSON, "decrypted resource is not JSON")
}

// verification is what recordingVerifier saw during one request.
type verification struct {
	called        bool
	unknownSerial bool
	err           error
}

type verificationKey struct{}

// recordingVerifier checks the serial, verifies through Keys, and records
// the outcome in the request's verification.
type recordingVerifier struct{ keys Keys }

var errUnknownSerial = errors.New("unknown serial")

func (v recordingVerifier) Verify(ctx context.Context, serial, message, signature string) error {
	rec, _ := ctx.Value(verificationKey{}).(*verification)
	if rec == nil {
		rec = &verification{}
	}
	if !v.keys.Knows(ctx, serial) {
		rec.unknownSerial = true
		return errUnknownSerial
	}
	rec.called = true
	rec.err = v.keys.Verify(ctx, serial, message, signature)
	return rec.err
}

func (v recordingVerifier) GetSerial(ctx context.Context) (string, error) {
	return v.keys.GetSerial(ctx)
}
