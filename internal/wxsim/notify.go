package wxsim

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/wxterm/wxterm/event"
)

// NotificationSchedule is how long WeChat Pay waits before each retry of a
// notification that was not answered 200 or 204: "15s/15s/30s/3m/10m/20m/
// 30m/30m/30m/60m/3h/3h/3h/6h/6h - 总计 24h4m" (seed 003; the same in
// webhook/v3/ENTRUST.TERMINATE.md of wechatpay-im/website).
var NotificationSchedule = []time.Duration{
	15 * time.Second, 15 * time.Second, 30 * time.Second, 3 * time.Minute, 10 * time.Minute, 20 * time.Minute,
	30 * time.Minute, 30 * time.Minute, 30 * time.Minute, time.Hour, 3 * time.Hour, 3 * time.Hour, 3 * time.Hour,
	6 * time.Hour, 6 * time.Hour,
}

// NotifierOptions configure a Notifier.
type NotifierOptions struct {
	// PublicKeyID (Wechatpay-Serial) and PlatformKey sign each delivery, as
	// the simulator's answers are signed (Keys.PublicKeyID, Keys.PlatformKey).
	PublicKeyID string
	PlatformKey *rsa.PrivateKey
	// APIv3Key encrypts the resource: the merchant's 32-byte APIv3 key.
	APIv3Key string
	// Client delivers; nil: a client with a 5 s timeout, WeChat Pay's
	// ("超时(5s)未应答", webhook/v3/CREDIT_REPAYMENT.TERMINATE_CONTRACT.md).
	Client *http.Client
	// Schedule of retries; nil: NotificationSchedule.
	Schedule []time.Duration
	// TimeScale multiplies every wait of Schedule (0: 1, real time); tests
	// compress WeChat Pay's day of retries with, say, 0.001.
	TimeScale float64
	// Now stamps Wechatpay-Timestamp and create_time; nil: time.Now.
	Now func() time.Time
}

// Notifier builds contract notifications exactly as WeChat Pay sends them
// (signed Wechatpay-* headers, AEAD_AES_256_GCM resource under the
// merchant's APIv3 key) and delivers them, retrying on WeChat Pay's schedule
// until answered 200 or 204. It is safe for concurrent use.
type Notifier struct {
	opts NotifierOptions
	aead cipher.AEAD
}

// NewNotifier checks opts and returns a Notifier.
func NewNotifier(opts NotifierOptions) (*Notifier, error) {
	if opts.PublicKeyID == "" || opts.PlatformKey == nil {
		return nil, errors.New("wxsim: notifier needs PublicKeyID and PlatformKey")
	}
	block, err := aes.NewCipher([]byte(opts.APIv3Key))
	if err != nil || len(opts.APIv3Key) != 32 {
		return nil, errors.New("wxsim: notifier needs a 32-byte APIv3 key")
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("wxsim: notifier: %w", err)
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 5 * time.Second}
	}
	if opts.Schedule == nil {
		opts.Schedule = NotificationSchedule
	}
	if opts.TimeScale == 0 {
		opts.TimeScale = 1
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Notifier{opts: opts, aead: aead}, nil
}

// NotificationContract is the contract a notification reports on.
type NotificationContract struct {
	API             event.API
	MchID           string // the merchant: sp_mchid for partner APIs, mchid for direct ones
	SubMchID        string // partner APIs
	OutContractCode string
	ContractID      string
	PlanID          int64
	AppID           string
	OpenID          string
	// RawMode is the termination mode as the API spells it; empty: the
	// user's (USER_TERMINATE, TERMINATION_MODE_BY_USER or USER).
	RawMode string
	// Time of the signing or termination; zero: now.
	Time time.Time
}

// NotificationEventType is the event type reporting c's termination (or,
// with terminate false, its signing).
func NotificationEventType(api event.API, terminate bool) string {
	switch {
	case api == event.CreditRepayment && terminate:
		return event.NotifyCreditTerminate
	case api == event.CreditRepayment:
		return event.NotifyCreditSign
	case api == event.GlobalPapay && terminate:
		return event.NotifyPapayTerminate
	case api == event.GlobalPapay:
		return event.NotifyPapaySign
	case terminate:
		return event.NotifyEntrustTerminate
	}
	return event.NotifyEntrustSign
}

// NotificationBody builds the body of notification id of eventType about c:
// the plaintext resource each API documents, encrypted with the APIv3 key.
func (n *Notifier) NotificationBody(id, eventType string, c NotificationContract) ([]byte, error) {
	kind, ok := event.NotificationKindOf(eventType)
	if !ok {
		return nil, fmt.Errorf("wxsim: notification: unknown event type %q", eventType)
	}
	terminate := kind == event.KindTermination
	at := c.Time
	if at.IsZero() {
		at = n.opts.Now()
	}
	stamp := at.In(notifCST).Format(time.RFC3339)
	res, aad, original := notificationResource(c, terminate, stamp)
	plain, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("wxsim: notification: %w", err)
	}
	nonce := notifNonce(12) // the GCM nonce: 12 characters, used as bytes
	sealed := n.aead.Seal(nil, []byte(nonce), plain, []byte(aad))
	summary := "签约成功"
	if terminate {
		summary = "解约成功"
	}
	return json.Marshal(map[string]any{
		"id": id, "create_time": n.opts.Now().In(notifCST).Format(time.RFC3339), "resource_type": "encrypt-resource",
		"event_type": eventType, "summary": summary,
		"resource": map[string]string{
			"original_type": original, "algorithm": "AEAD_AES_256_GCM", "ciphertext": base64.StdEncoding.EncodeToString(sealed),
			"associated_data": aad, "nonce": nonce,
		},
	})
}

// notifCST is China Standard Time, in which WeChat Pay writes its times.
var notifCST = time.FixedZone("CST", 8*3600)

// notificationResource returns the decrypted resource of c's notification
// with its associated data and original_type: for papay
// webhook/v3/ENTRUST.{SIGN,TERMINATE}.md (original_type entrust), for credit
// repayment webhook/v3/CREDIT_REPAYMENT.{SIGN,TERMINATE}_CONTRACT.md (its
// associated data and original_type are not documented; the simulator uses
// credit_repayment), for global papay seed 003 (associated_data and
// original_type papay).
func notificationResource(c NotificationContract, terminate bool, stamp string) (map[string]any, string, string) {
	r := map[string]any{"out_contract_code": c.OutContractCode, "contract_id": c.ContractID, "plan_id": c.PlanID}
	owner := func(partner bool) {
		if partner {
			r["sp_mchid"], r["sub_mchid"] = c.MchID, c.SubMchID
		} else {
			r["mchid"] = c.MchID
		}
	}
	mode := func(def string) string {
		if c.RawMode != "" {
			return c.RawMode
		}
		return def
	}
	switch c.API {
	case event.CreditRepayment:
		r["sp_mchid"], r["appid"], r["openid"], r["display_name"] = c.MchID, c.AppID, c.OpenID, "*明"
		r["contract_signed_time"], r["repayment_amount_limit"] = stamp, "10000"
		r["contract_state"], r["contract_termination_mode"] = "CONTRACT_STATE_EFFECTIVE", "TERMINATION_MODE_INVALID"
		if terminate {
			r["contract_state"], r["contract_termination_mode"] = "CONTRACT_STATE_TERMINATED", mode("TERMINATION_MODE_BY_USER")
			r["contract_terminated_time"] = stamp
		}
		return r, "credit_repayment", "credit_repayment"
	case event.GlobalPapay:
		owner(c.SubMchID != "")
		r["sp_appid"], r["openid"], r["operate_time"] = c.AppID, c.OpenID, stamp
		if terminate {
			r["contract_termination_mode"] = mode("USER")
		}
		return r, "papay", "papay"
	}
	owner(c.API == event.PapayPartner)
	r["appid"], r["openid"], r["contract_display_account"], r["contract_signed_time"] = c.AppID, c.OpenID, "*明", stamp
	r["contract_state"] = "SIGNED"
	if terminate {
		r["contract_state"] = "TERMINATED"
		r["contract_terminate_info"] = map[string]string{
			"contract_termination_mode": mode("USER_TERMINATE"), "contract_terminated_time": stamp, "contract_termination_remark": "",
		}
	}
	return r, "entrust", "entrust"
}

// NotificationHeaders signs body as WeChat Pay signs a notification:
// SHA256withRSA over "timestamp\nnonce\nbody\n" with the platform key.
func (n *Notifier) NotificationHeaders(body []byte) (http.Header, error) {
	ts := strconv.FormatInt(n.opts.Now().Unix(), 10)
	nonce := notifNonce(32)
	sig, err := utils.SignSHA256WithRSA(ts+"\n"+nonce+"\n"+string(body)+"\n", n.opts.PlatformKey)
	if err != nil {
		return nil, fmt.Errorf("wxsim: notification: sign: %w", err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Request-ID", notifNonce(32))
	h.Set("Wechatpay-Serial", n.opts.PublicKeyID)
	h.Set("Wechatpay-Signature", sig)
	h.Set("Wechatpay-Signature-Type", authScheme)
	h.Set("Wechatpay-Timestamp", ts)
	h.Set("Wechatpay-Nonce", nonce)
	return h, nil
}

// NotificationPost makes one delivery of body to url, freshly signed, and
// returns the answer's status.
func (n *Notifier) NotificationPost(ctx context.Context, url string, body []byte) (int, error) {
	h, err := n.NotificationHeaders(body)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("wxsim: notification: %w", err)
	}
	req.Header = h
	resp, err := n.opts.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("wxsim: notification: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

// NotificationDelivery is how a delivery went.
type NotificationDelivery struct {
	Attempts int   // deliveries made, the first included
	Statuses []int // each attempt's status; 0 when no answer came
}

// Deliver sends body to url until it is answered 200 or 204, waiting
// Schedule (scaled) between attempts and signing each attempt afresh. It
// fails once the schedule is spent or ctx ends.
func (n *Notifier) Deliver(ctx context.Context, url string, body []byte) (NotificationDelivery, error) {
	var d NotificationDelivery
	for i := 0; ; i++ {
		status, err := n.NotificationPost(ctx, url, body)
		d.Attempts++
		d.Statuses = append(d.Statuses, status)
		// "http应答码为200或204才会当作正常接收" (seed 003).
		if err == nil && (status == http.StatusOK || status == http.StatusNoContent) {
			return d, nil
		}
		if i == len(n.opts.Schedule) {
			return d, fmt.Errorf("wxsim: notification: not accepted after %d attempts", d.Attempts)
		}
		wait := time.Duration(float64(n.opts.Schedule[i]) * n.opts.TimeScale)
		select {
		case <-ctx.Done():
			return d, fmt.Errorf("wxsim: notification: %w", ctx.Err())
		case <-time.After(wait):
		}
	}
}

// notifNonce is a random string of n letters and digits.
func notifNonce(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
