package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/wxterm/wxterm/internal/intentid"
	"github.com/wxterm/wxterm/schemas"
)

// The contract notifications WeChat Pay sends to a merchant's callback URL,
// by event_type (webhook/v3/<type>.md in wechatpay-im/website; PAPAY.* also
// seed 003).
const (
	// NotifyEntrustTerminate: papay (委托代扣), partner and direct.
	NotifyEntrustTerminate = "ENTRUST.TERMINATE"
	// NotifyEntrustSign: papay signing.
	NotifyEntrustSign = "ENTRUST.SIGN"
	// NotifyCreditTerminate: credit repayment (自动还款).
	NotifyCreditTerminate = "CREDIT_REPAYMENT.TERMINATE_CONTRACT"
	// NotifyCreditSign: credit repayment signing.
	NotifyCreditSign = "CREDIT_REPAYMENT.SIGN_CONTRACT"
	// NotifyPapayTerminate: global (cross-border) papay.
	NotifyPapayTerminate = "PAPAY.TERMINATE"
	// NotifyPapaySign: global papay signing.
	NotifyPapaySign = "PAPAY.SIGN"
)

// NotificationKind says whether a notification reports a termination or a
// signing.
type NotificationKind string

// The kinds of notification.
const (
	KindTermination NotificationKind = "termination"
	KindSigning     NotificationKind = "signing"
)

// NotificationKindOf returns the kind of a known event type, or false for
// an event type this service does not accept.
func NotificationKindOf(eventType string) (NotificationKind, bool) {
	switch eventType {
	case NotifyEntrustTerminate, NotifyCreditTerminate, NotifyPapayTerminate:
		return KindTermination, true
	case NotifyEntrustSign, NotifyCreditSign, NotifyPapaySign:
		return KindSigning, true
	}
	return "", false
}

// TerminationMode is who or what ended a contract, normalised across the
// three APIs' vocabularies.
type TerminationMode string

// The normalised termination modes.
const (
	ModeUser            TerminationMode = "user"
	ModeMerchant        TerminationMode = "merchant"
	ModeCustomerService TerminationMode = "customer_service"
	ModePlatform        TerminationMode = "platform"
	ModeSystem          TerminationMode = "system"
	ModeUnknown         TerminationMode = "unknown"
)

// NormaliseTerminationMode maps a raw termination mode of any API to a
// TerminationMode; an empty or unrecognised one is ModeUnknown.
//
// Sources: papay's contract_terminate_info.contract_termination_mode
// (webhook/v3/ENTRUST.TERMINATE.md), credit repayment's
// contract_termination_mode (webhook/v3/CREDIT_REPAYMENT.TERMINATE_CONTRACT.md,
// seeds 000/001) and global papay's (webhook/v3/PAPAY.TERMINATE.md, seed 003).
func NormaliseTerminationMode(raw string) TerminationMode {
	switch raw {
	case "USER_TERMINATE", "TERMINATION_MODE_BY_USER", "USER":
		return ModeUser
	// API is papay's older name for a merchant's API call. WEPAY_WEB_TERMINATE
	// reads as v2 papay's "商户平台解约" (the merchant terminating on WeChat
	// Pay's merchant platform); unconfirmed.
	case "MCH_API_TERMINATE", "API", "WEPAY_WEB_TERMINATE", "TERMINATION_MODE_BY_MERCHANT", "MERCHANT":
		return ModeMerchant
	case "CUSTOMER_SERVICE_TERMINATE", "TERMINATION_MODE_BY_CUSTOMER_SERVICE":
		return ModeCustomerService
	case "PLATFORM":
		return ModePlatform
	case "SYSTEM_TERMINATE":
		return ModeSystem
	}
	return ModeUnknown
}

// Notification is one verified, decrypted WeChat Pay contract notification
// (schemas/notification.v1.json), as the notify endpoint publishes it to the
// notifications topic keyed by OutContractCode.
type Notification struct {
	SchemaVersion int `json:"schema_version"`
	// ID is WeChat Pay's notification id: every retry of one notification
	// carries it, so it identifies the notification across repeats.
	ID         string           `json:"id"`
	EventType  string           `json:"event_type"`
	Kind       NotificationKind `json:"kind"`
	CreateTime time.Time        `json:"create_time"`
	ReceivedAt time.Time        `json:"received_at"`
	// MchID is the merchant the notification was addressed to (its
	// signature and APIv3 key are that merchant's).
	MchID           string `json:"mchid"`
	API             API    `json:"api"`
	OutContractCode string `json:"out_contract_code"`
	ContractID      string `json:"contract_id,omitempty"`
	PlanID          string `json:"plan_id,omitempty"`
	SubMchID        string `json:"sub_mchid,omitempty"`
	// Set on terminations only.
	TerminationMode    TerminationMode `json:"termination_mode,omitempty"`
	RawTerminationMode string          `json:"raw_termination_mode,omitempty"`
	TerminatedTime     string          `json:"terminated_time,omitempty"`
	// Resource is the decrypted resource exactly as WeChat Pay sent it.
	Resource json.RawMessage `json:"resource"`
}

// RequestID is the request id a result derived from n carries: stable
// across WeChat Pay's repeats of n, so event.EventID(n.RequestID(), …) is
// too, and distinct from any intent's.
func (n Notification) RequestID() string { return intentid.NotificationPrefix + n.ID }

// InvalidNotificationError says why bytes are not a valid notification
// event. Its text quotes schema locations, never the input.
type InvalidNotificationError struct {
	Detail string
}

func (e *InvalidNotificationError) Error() string { return "invalid notification: " + e.Detail }

// MaxNotificationBytes bounds an encoded notification event.
const MaxNotificationBytes = 64 << 10

var (
	notificationOnce sync.Once
	notificationSch  *jsonschema.Schema
	notificationErr  error
)

func notificationSchema() (*jsonschema.Schema, error) {
	notificationOnce.Do(func() {
		b, err := fs.ReadFile(schemas.FS, schemas.NotificationV1)
		if err != nil {
			notificationErr = err
			return
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			notificationErr = fmt.Errorf("%s: %w", schemas.NotificationV1, err)
			return
		}
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		if notificationErr = c.AddResource(schemas.NotificationV1, doc); notificationErr != nil {
			return
		}
		notificationSch, notificationErr = c.Compile(schemas.NotificationV1)
	})
	return notificationSch, notificationErr
}

// ValidateNotification checks an encoded notification event against
// schemas/notification.v1.json. A failure is an *InvalidNotificationError;
// any other error means the embedded schema itself is broken.
func ValidateNotification(b []byte) error {
	sch, err := notificationSchema()
	if err != nil {
		return fmt.Errorf("event: schemas: %w", err)
	}
	if len(b) > MaxNotificationBytes {
		return &InvalidNotificationError{Detail: fmt.Sprintf("%d bytes exceeds the %d-byte limit", len(b), MaxNotificationBytes)}
	}
	if detail := schemaDetail(sch, b); detail != "" {
		return &InvalidNotificationError{Detail: detail}
	}
	return nil
}

// DecodeNotification validates b and decodes it, and checks that its kind
// is the one its event_type implies.
func DecodeNotification(b []byte) (Notification, error) {
	var n Notification
	if err := ValidateNotification(b); err != nil {
		return n, err
	}
	if err := json.Unmarshal(b, &n); err != nil {
		return n, &InvalidNotificationError{Detail: "decode: " + jsonErrText(err)}
	}
	// kind is derived from event_type: a message that says ENTRUST.SIGN
	// must not be handled as a termination because its kind says so.
	if want, _ := NotificationKindOf(n.EventType); n.Kind != want {
		return n, &InvalidNotificationError{Detail: fmt.Sprintf("kind %q does not match event_type %s (want %q)", n.Kind, n.EventType, want)}
	}
	return n, nil
}
