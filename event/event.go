// Package event defines the termination intent that upstream services publish
// and the result event that the consumer publishes, with their validation
// against the JSON Schemas in the schemas package. Upstream Go services import
// it to build intents; downstream ones to decode results.
package event

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// API names one of WeChat Pay's terminate endpoints.
type API string

// The terminate APIs an intent can name.
const (
	CreditRepayment API = "credit_repayment" // service provider, 自动还款
	PapayPartner    API = "papay_partner"    // service provider, 委托代扣
	PapayDirect     API = "papay_direct"     // direct merchant, 委托代扣
	GlobalPapay     API = "global_papay"     // cross-border auto-debit
)

// APIs lists every API an intent may name.
var APIs = []API{CreditRepayment, PapayPartner, PapayDirect, GlobalPapay}

// SchemaVersion is the version of both schemas this package speaks.
const SchemaVersion = 1

// Intent asks for one contract to be terminated (schemas/intent.v1.json).
type Intent struct {
	SchemaVersion   int       `json:"schema_version"`
	RequestID       string    `json:"request_id"`
	RequestedAt     time.Time `json:"requested_at"`
	Source          string    `json:"source"`
	API             API       `json:"api"`
	OutContractCode string    `json:"out_contract_code"`
	ContractID      string    `json:"contract_id,omitempty"`
	PlanID          string    `json:"plan_id,omitempty"`
	MchID           string    `json:"mchid,omitempty"`
	SubMchID        string    `json:"sub_mchid,omitempty"`
	AppID           string    `json:"appid,omitempty"`
	SpAppID         string    `json:"sp_appid,omitempty"`
	SubAppID        string    `json:"sub_appid,omitempty"`
	Remark          string    `json:"remark"`
}

// Event types of a result, also sent as the Kafka header HeaderEventType.
const (
	TypeTerminated = "contract-terminated"
	TypeFailed     = "terminate-failed"
)

// Origins of a result: what told the consumer about the termination.
const (
	OriginIntent       = "intent"       // an intent on the request topic, answered by the consumer
	OriginNotification = "notification" // WeChat Pay's termination notification (docs/notify.md)
)

// The default topics: each command's topic flags take their defaults from
// these, so a deployment that keeps them needs to name none.
const (
	TopicRequests      = "contract-termination.requested"     // intents, key out_contract_code
	TopicResults       = "contract-termination.results"       // result events
	TopicDLQ           = "contract-termination.dlq"           // undecodable intents
	TopicNotifications = "contract-termination.notifications" // WeChat Pay's notifications (cmd/notify)
)

// HeaderEventType is the Kafka header that carries a result's event type.
const HeaderEventType = "event_type"

// Kafka headers a dead letter carries besides the original message's own:
// why it was refused and where it was read.
const (
	HeaderDLQError           = "dlq_error"
	HeaderDLQSourceTopic     = "dlq_source_topic"
	HeaderDLQSourcePartition = "dlq_source_partition"
	HeaderDLQSourceOffset    = "dlq_source_offset"
)

// Reasons a termination failed.
const (
	ReasonInvalidRequest   = "invalid_request"   // the intent failed validation
	ReasonRejected         = "rejected"          // WeChat Pay refused it (PARAM_ERROR, NO_AUTH, …)
	ReasonNotFound         = "not_found"         // WeChat Pay has no such contract
	ReasonRetriesExhausted = "retries_exhausted" // transient failures outlasted the retry budget
	ReasonNotAllowed       = "not_allowed"       // this deployment does not act for that merchant or API
)

// Source locates the intent a result answers.
type Source struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
}

// Contract is the contract as WeChat Pay returned it or a query confirmed it.
type Contract struct {
	ContractID                string `json:"contract_id,omitempty"`
	PlanID                    string `json:"plan_id,omitempty"`
	OutContractCode           string `json:"out_contract_code,omitempty"`
	DisplayName               string `json:"display_name,omitempty"`
	SpMchID                   string `json:"sp_mchid,omitempty"`
	SubMchID                  string `json:"sub_mchid,omitempty"`
	AppID                     string `json:"appid,omitempty"`
	SpAppID                   string `json:"sp_appid,omitempty"`
	SubAppID                  string `json:"sub_appid,omitempty"`
	ContractState             string `json:"contract_state,omitempty"`
	ContractSignedTime        string `json:"contract_signed_time,omitempty"`
	ContractTerminatedTime    string `json:"contract_terminated_time,omitempty"`
	ContractTerminationMode   string `json:"contract_termination_mode,omitempty"`
	ContractTerminationRemark string `json:"contract_termination_remark,omitempty"`
	RepaymentDay              int64  `json:"repayment_day,omitempty"`

	// The contract_* fields are WeChat's raw values; these normalise them
	// across the APIs (docs/wechatpay.md).
	State           string     `json:"state,omitempty"`            // effective, terminated, pending, invalid, unknown
	TerminationMode string     `json:"termination_mode,omitempty"` // user, merchant, customer_service, platform, system, unknown
	TerminatedAt    *time.Time `json:"terminated_at,omitempty"`    // contract_terminated_time parsed, in UTC
}

// Result is what happened to one intent (schemas/result.v1.json).
type Result struct {
	SchemaVersion     int       `json:"schema_version"`
	EventID           string    `json:"event_id"`
	EventType         string    `json:"event_type"`
	RequestID         string    `json:"request_id"`
	OutContractCode   string    `json:"out_contract_code"`
	API               API       `json:"api,omitempty"`
	MchID             string    `json:"mchid,omitempty"`
	OccurredAt        time.Time `json:"occurred_at"`
	Attempts          int       `json:"attempts"`
	Source            Source    `json:"source"`
	Replayed          bool      `json:"replayed"`
	AlreadyTerminated bool      `json:"already_terminated,omitempty"`
	// Origin is OriginIntent or OriginNotification; absent in events
	// written before it existed, which are all intents' answers.
	Origin   string    `json:"origin,omitempty"`
	Contract *Contract `json:"contract,omitempty"`

	// Set on terminate-failed only.
	Reason       string `json:"reason,omitempty"`
	Retryable    *bool  `json:"retryable,omitempty"`
	ErrorCode    string `json:"error_code,omitempty"`
	ErrorMessage string `json:"error_message,omitempty"`
	HTTPStatus   int    `json:"http_status,omitempty"`
	Detail       string `json:"detail,omitempty"`
}

// EventID is the stable id of the outcome eventType of request requestID
// for contract outContractCode: every publication of that outcome, by any
// replica or replay, carries it, and a request id reused for another
// contract gives another id. It is the first 16 bytes, in hex, of the
// SHA-256 of eventType, outContractCode and requestID separated by NUL
// (none of them holds one); downstream dedupes on it, so it never changes.
func EventID(requestID, outContractCode, eventType string) string {
	h := sha256.Sum256([]byte(eventType + "\x00" + outContractCode + "\x00" + requestID))
	return hex.EncodeToString(h[:16])
}

// Terminated builds a contract-terminated result.
func Terminated(in Intent, src Source, c Contract, attempts int, already bool, at time.Time) Result {
	return Result{
		SchemaVersion: SchemaVersion, EventID: EventID(in.RequestID, in.OutContractCode, TypeTerminated), EventType: TypeTerminated,
		RequestID: in.RequestID, OutContractCode: in.OutContractCode, API: in.API, MchID: in.MchID,
		OccurredAt: at.UTC(), Attempts: attempts, Source: src, AlreadyTerminated: already, Origin: OriginIntent, Contract: &c,
	}
}

// Failure says why a termination failed.
type Failure struct {
	Reason       string
	Retryable    bool
	ErrorCode    string
	ErrorMessage string
	HTTPStatus   int
	Detail       string
}

// Failed builds a terminate-failed result.
func Failed(requestID, outContractCode string, api API, mchID string, src Source, f Failure, attempts int, at time.Time) Result {
	retry := f.Retryable
	return Result{
		SchemaVersion: SchemaVersion, EventID: EventID(requestID, outContractCode, TypeFailed), EventType: TypeFailed,
		RequestID: requestID, OutContractCode: outContractCode, API: api, MchID: mchID,
		OccurredAt: at.UTC(), Attempts: attempts, Source: src, Origin: OriginIntent,
		Reason: f.Reason, Retryable: &retry, ErrorCode: f.ErrorCode, ErrorMessage: f.ErrorMessage,
		HTTPStatus: f.HTTPStatus, Detail: f.Detail,
	}
}
