package wxapi

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"time"
)

// Contract states in the old normalised vocabulary, as returned by
// Contract.State (and carried in result events' contract_state).
const (
	StateEffective  = "CONTRACT_STATE_EFFECTIVE"
	StateTerminated = "CONTRACT_STATE_TERMINATED"
	StateInvalid    = "CONTRACT_STATE_INVALID"
)

// Status is a contract's state in one vocabulary for every API.
type Status string

// The normalised states. WeChat's raw value stays in Contract.ContractState.
const (
	StatusEffective  Status = "effective"  // CONTRACT_STATE_EFFECTIVE, SIGNED, TO_BE_RENEWED
	StatusTerminated Status = "terminated" // CONTRACT_STATE_TERMINATED, TERMINATED
	StatusPending    Status = "pending"    // TERMINATE_PENDING: a termination under way
	StatusInvalid    Status = "invalid"    // CONTRACT_STATE_INVALID, SIGN_FAILED, NOT_SIGNED
	// StatusUnknown is a state no page documents: neither terminate again
	// nor report a failure on it; query again.
	StatusUnknown Status = "unknown"
)

// Mode is who terminated a contract, in one vocabulary for every API.
type Mode string

// The normalised termination modes. WeChat's raw value stays in
// Contract.ContractTerminationMode.
const (
	ModeUser            Mode = "user"
	ModeMerchant        Mode = "merchant" // a merchant API call (ours or another's) or the merchant's console
	ModeCustomerService Mode = "customer_service"
	ModePlatform        Mode = "platform"
	ModeSystem          Mode = "system"
	ModeUnknown         Mode = "unknown" // a mode no page documents, or TERMINATION_MODE_INVALID
)

// vocabulary is one API family's documented states and termination modes.
type vocabulary struct {
	states  map[string]Status
	modes   map[string]Mode
	console map[string]bool // modes that name the merchant's console, not an API call
}

// Credit repayment: seed 000 (official terminate page) and
// wechatpay-im/website openapi/v3/credit-repayment/partner/contracts/{out_contract_code}.md.
var creditVocabulary = vocabulary{
	states: map[string]Status{
		"CONTRACT_STATE_EFFECTIVE":  StatusEffective,
		"CONTRACT_STATE_TERMINATED": StatusTerminated,
		"CONTRACT_STATE_INVALID":    StatusInvalid,
	},
	modes: map[string]Mode{
		"TERMINATION_MODE_BY_USER":             ModeUser,
		"TERMINATION_MODE_BY_MERCHANT":         ModeMerchant,
		"TERMINATION_MODE_BY_CUSTOMER_SERVICE": ModeCustomerService,
		"TERMINATION_MODE_INVALID":             ModeUnknown,
	},
}

// Papay (partner and direct): states from wechatpay-im/website
// webhook/v3/ENTRUST.TERMINATE.md (SIGNED, TERMINATED) and NOTES-wechatpay.md
// (TO_BE_RENEWED, SIGN_FAILED; TERMINATE_PENDING from the insurance-entrust
// pages, unconfirmed); modes from ENTRUST.TERMINATE.md, which says
// MCH_API_TERMINATE is "商户通过API发起的解约" and WEPAY_WEB_TERMINATE
// "商户在商户平台发起的解约" (the merchant's console: Contract.Console). No
// page says what API means; it is read as the merchant's API.
var papayVocabulary = vocabulary{
	states: map[string]Status{
		"SIGNED":            StatusEffective,
		"TO_BE_RENEWED":     StatusEffective,
		"TERMINATED":        StatusTerminated,
		"TERMINATE_PENDING": StatusPending,
		"SIGN_FAILED":       StatusInvalid,
		"NOT_SIGNED":        StatusInvalid,
	},
	modes: map[string]Mode{
		"USER_TERMINATE":             ModeUser,
		"MCH_API_TERMINATE":          ModeMerchant,
		"API":                        ModeMerchant,
		"WEPAY_WEB_TERMINATE":        ModeMerchant,
		"CUSTOMER_SERVICE_TERMINATE": ModeCustomerService,
		"SYSTEM_TERMINATE":           ModeSystem,
	},
	console: map[string]bool{"WEPAY_WEB_TERMINATE": true},
}

// Global papay: state SIGNED from docs/v3/global/papay/contracts/{contract_id}.yaml
// (TheNorthMemory/wechatpay-openapi); TERMINATED by analogy (unconfirmed);
// modes from wechatpay-im/website webhook/v3/PAPAY.TERMINATE.md.
var globalVocabulary = vocabulary{
	states: map[string]Status{
		"SIGNED":     StatusEffective,
		"TERMINATED": StatusTerminated,
	},
	modes: map[string]Mode{
		"USER":     ModeUser,
		"MERCHANT": ModeMerchant,
		"PLATFORM": ModePlatform,
	},
}

var vocabularies = map[API]vocabulary{
	CreditRepayment: creditVocabulary,
	PapayPartner:    papayVocabulary,
	PapayDirect:     papayVocabulary,
	GlobalPapay:     globalVocabulary,
}

// Contract is what WeChat returned about a contract. The raw fields keep
// WeChat's values under the domestic APIs' names whatever the API called
// them (global papay's state, signed_time, terminated_time, termination_mode,
// termination_note and user_display_name land in ContractState,
// ContractSignedTime, ContractTerminatedTime, ContractTerminationMode,
// ContractTerminationRemark and DisplayName); Status, TerminationMode and
// TerminatedAt hold them normalised. User identifiers (openid) and deduction
// schedules are not kept.
type Contract struct {
	API                       API    `json:"api,omitempty"`
	ContractID                string `json:"contract_id,omitempty"`
	PlanID                    string `json:"plan_id,omitempty"` // a number in the papay APIs, a string in credit_repayment
	OutContractCode           string `json:"out_contract_code,omitempty"`
	DisplayName               string `json:"display_name,omitempty"`             // credit_repayment; global_papay user_display_name
	ContractDisplayAccount    string `json:"contract_display_account,omitempty"` // papay
	MchID                     string `json:"mchid,omitempty"`
	SpMchID                   string `json:"sp_mchid,omitempty"`
	SubMchID                  string `json:"sub_mchid,omitempty"`
	AppID                     string `json:"appid,omitempty"`
	SpAppID                   string `json:"sp_appid,omitempty"`
	SubAppID                  string `json:"sub_appid,omitempty"`
	ContractState             string `json:"contract_state,omitempty"` // WeChat's raw state; see Status
	ContractSignedTime        string `json:"contract_signed_time,omitempty"`
	ContractExpiredTime       string `json:"contract_expired_time,omitempty"`
	ContractTerminatedTime    string `json:"contract_terminated_time,omitempty"`
	ContractTerminationMode   string `json:"contract_termination_mode,omitempty"` // WeChat's raw mode; see TerminationMode
	ContractTerminationRemark string `json:"contract_termination_remark,omitempty"`
	RepaymentDay              int64  `json:"repayment_day,omitempty"`
	OutUserCode               string `json:"out_user_code,omitempty"`

	// Status is ContractState in the normalised vocabulary.
	Status Status `json:"status,omitempty"`
	// TerminationMode is ContractTerminationMode normalised; empty when
	// WeChat gave none (a contract not terminated, or a 204 answer).
	TerminationMode Mode `json:"termination_mode,omitempty"`
	// TerminatedAt is ContractTerminatedTime parsed (RFC 3339); zero when
	// WeChat gave none or it does not parse.
	TerminatedAt time.Time `json:"terminated_at,omitzero"`

	// HTTPStatus is the status of the answer this contract came from (200,
	// or global_papay terminate's 204); not part of WeChat Pay's body.
	HTTPStatus int `json:"-"`
}

// State returns the contract's state as StateEffective, StateTerminated or
// StateInvalid, whichever vocabulary the API used; any other state
// (TERMINATE_PENDING, one no page documents) is returned raw.
func (c *Contract) State() string {
	switch c.Status {
	case StatusEffective:
		return StateEffective
	case StatusTerminated:
		return StateTerminated
	case StatusInvalid:
		return StateInvalid
	}
	return c.ContractState
}

// Terminated reports whether the contract is terminated. It is false for a
// nil Contract.
func (c *Contract) Terminated() bool { return c != nil && c.Status == StatusTerminated }

// Console reports whether WeChat says the merchant's staff terminated the
// contract in the merchant platform (商户平台), not through the API:
// papay's WEPAY_WEB_TERMINATE ("商户在商户平台发起的解约", wechatpay-im/website
// webhook/v3/ENTRUST.TERMINATE.md), normalised as ModeMerchant. No other
// family's mode tells the console from the API. It reads the raw mode, so
// it holds for any Contract naming its API.
func (c *Contract) Console() bool {
	return c != nil && vocabularies[c.API].console[c.ContractTerminationMode]
}

// Pending reports whether the contract's state calls for querying again
// rather than judging: a termination under way (TERMINATE_PENDING) or a
// state no page documents. Never terminate a pending contract again.
func (c *Contract) Pending() bool {
	return c != nil && (c.Status == StatusPending || c.Status == StatusUnknown)
}

// normalise fills Status, TerminationMode and TerminatedAt from the raw
// fields in c.API's vocabulary.
func (c *Contract) normalise() {
	v := vocabularies[c.API]
	c.Status = ""
	if c.ContractState != "" {
		c.Status = cmp.Or(v.states[c.ContractState], StatusUnknown)
	}
	c.TerminationMode = ""
	if c.ContractTerminationMode != "" {
		c.TerminationMode = cmp.Or(v.modes[c.ContractTerminationMode], ModeUnknown)
	}
	c.TerminatedAt = time.Time{}
	if t, err := time.Parse(time.RFC3339, c.ContractTerminatedTime); err == nil {
		c.TerminatedAt = t
	}
}

// wirePlanID reads plan_id as a JSON string (credit repayment, seed 000) or a
// number (papay, seed 004; global papay, its query page).
type wirePlanID string

func (p *wirePlanID) UnmarshalJSON(b []byte) error {
	switch b = bytes.TrimSpace(b); {
	case len(b) == 0 || string(b) == "null":
		return nil
	case b[0] == '"':
		return json.Unmarshal(b, (*string)(p))
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("plan_id: %w", err)
		}
		*p = wirePlanID(n.String())
		return nil
	}
}

// creditWire is credit repayment's contract: the terminate answer's
// contract_info (seed 000) and the query answer, bare
// (openapi/v3/credit-repayment/partner/contracts/{out_contract_code}.md).
type creditWire struct {
	ContractID      string     `json:"contract_id"`
	PlanID          wirePlanID `json:"plan_id"`
	OutContractCode string     `json:"out_contract_code"`
	DisplayName     string     `json:"display_name"`
	AppID           string     `json:"appid"` // seed 001
	ContractState   string     `json:"contract_state"`
	SignedTime      string     `json:"contract_signed_time"`
	TerminatedTime  string     `json:"contract_terminated_time"`
	// The mode is spelled contract_termination_mode in seed 000 and the
	// query page, contract_terminated_mode in seed 001.
	TerminationMode string `json:"contract_termination_mode"`
	TerminatedMode  string `json:"contract_terminated_mode"`
	Remark          string `json:"contract_termination_remark"`
	RepaymentDay    int64  `json:"repayment_day"`
}

func (w *creditWire) contract() *Contract {
	return &Contract{
		API: CreditRepayment, ContractID: w.ContractID, PlanID: string(w.PlanID), OutContractCode: w.OutContractCode,
		DisplayName: w.DisplayName, AppID: w.AppID, ContractState: w.ContractState,
		ContractSignedTime: w.SignedTime, ContractTerminatedTime: w.TerminatedTime,
		ContractTerminationMode: cmp.Or(w.TerminationMode, w.TerminatedMode), ContractTerminationRemark: w.Remark,
		RepaymentDay: w.RepaymentDay,
	}
}

// papayWire is the papay APIs' contract, bare in both answers, with the
// termination nested in contract_terminate_info (seed 004;
// docs/v3/papay/sign/.../terminate.yaml).
type papayWire struct {
	MchID                  string     `json:"mchid"`
	AppID                  string     `json:"appid"`
	SpMchID                string     `json:"sp_mchid"`
	SpAppID                string     `json:"sp_appid"`
	SubMchID               string     `json:"sub_mchid"`
	SubAppID               string     `json:"sub_appid"`
	ContractID             string     `json:"contract_id"`
	PlanID                 wirePlanID `json:"plan_id"`
	OutContractCode        string     `json:"out_contract_code"`
	ContractDisplayAccount string     `json:"contract_display_account"`
	ContractState          string     `json:"contract_state"`
	SignedTime             string     `json:"contract_signed_time"`
	ExpiredTime            string     `json:"contract_expired_time"`
	OutUserCode            string     `json:"out_user_code"`
	TerminateInfo          *struct {
		Mode   string `json:"contract_termination_mode"`
		Time   string `json:"contract_terminated_time"`
		Remark string `json:"contract_termination_remark"`
	} `json:"contract_terminate_info"`
}

func (w *papayWire) contract(api API) *Contract {
	c := &Contract{
		API: api, MchID: w.MchID, AppID: w.AppID, SpMchID: w.SpMchID, SpAppID: w.SpAppID, SubMchID: w.SubMchID,
		SubAppID: w.SubAppID, ContractID: w.ContractID, PlanID: string(w.PlanID), OutContractCode: w.OutContractCode,
		ContractDisplayAccount: w.ContractDisplayAccount, ContractState: w.ContractState,
		ContractSignedTime: w.SignedTime, ContractExpiredTime: w.ExpiredTime, OutUserCode: w.OutUserCode,
	}
	if t := w.TerminateInfo; t != nil {
		c.ContractTerminationMode, c.ContractTerminatedTime, c.ContractTerminationRemark = t.Mode, t.Time, t.Remark
	}
	return c
}

// globalWire is global papay's query answer
// (openapi/v3/global/papay/contracts/{contract_id}.md): state, signed_time,
// terminated_time, termination_mode, termination_note, user_display_name,
// not the domestic contract_* names.
type globalWire struct {
	MchID           string     `json:"mchid"`
	AppID           string     `json:"appid"`
	SpMchID         string     `json:"sp_mchid"`
	SubMchID        string     `json:"sub_mchid"`
	SpAppID         string     `json:"sp_appid"`
	SubAppID        string     `json:"sub_appid"`
	ContractID      string     `json:"contract_id"`
	PlanID          wirePlanID `json:"plan_id"`
	OutContractCode string     `json:"out_contract_code"`
	UserDisplayName string     `json:"user_display_name"`
	State           string     `json:"state"`
	SignedTime      string     `json:"signed_time"`
	TerminatedTime  string     `json:"terminated_time"`
	TerminationMode string     `json:"termination_mode"`
	TerminationNote string     `json:"termination_note"`
}

func (w *globalWire) contract() *Contract {
	return &Contract{
		API: GlobalPapay, MchID: w.MchID, AppID: w.AppID, SpMchID: w.SpMchID, SubMchID: w.SubMchID,
		SpAppID: w.SpAppID, SubAppID: w.SubAppID, ContractID: w.ContractID, PlanID: string(w.PlanID),
		OutContractCode: w.OutContractCode, DisplayName: w.UserDisplayName, ContractState: w.State,
		ContractSignedTime: w.SignedTime, ContractTerminatedTime: w.TerminatedTime,
		ContractTerminationMode: w.TerminationMode, ContractTerminationRemark: w.TerminationNote,
	}
}

// errNoContract: a success answer without the contract its API documents.
var errNoContract = fmt.Errorf("answer holds no contract")

// errUndocumented: a success answer in a status or shape its API does not
// document.
var errUndocumented = fmt.Errorf("undocumented success answer")

// decodeAnswer reads a 2xx answer's body in the shape api documents for
// op. It returns nil, nil where the API documents an answer without a
// contract: global papay's terminate (204, seed 002) and a credit repayment
// terminate without its optional contract_info (seed 000).
func decodeAnswer(api API, op string, body []byte) (*Contract, error) {
	empty := len(bytes.TrimSpace(body)) == 0
	var c *Contract
	switch {
	case api == GlobalPapay && op == opTerminate:
		return nil, nil // 204, no body (decode refuses any other answer)
	case empty:
		return nil, errNoContract
	case api == CreditRepayment && op == opTerminate:
		var w struct {
			Info *creditWire `json:"contract_info"`
		}
		if err := json.Unmarshal(body, &w); err != nil {
			return nil, err
		}
		if w.Info == nil {
			return nil, nil
		}
		c = w.Info.contract()
	case api == CreditRepayment:
		var w creditWire
		if err := json.Unmarshal(body, &w); err != nil {
			return nil, err
		}
		c = w.contract()
	case api == GlobalPapay:
		var w globalWire
		if err := json.Unmarshal(body, &w); err != nil {
			return nil, err
		}
		c = w.contract()
	default:
		var w papayWire
		if err := json.Unmarshal(body, &w); err != nil {
			return nil, err
		}
		c = w.contract(api)
	}
	if c.ContractState == "" && c.ContractID == "" && c.OutContractCode == "" {
		return nil, errNoContract // e.g. another family's shape: nothing we know was read
	}
	c.normalise()
	return c, nil
}
