package wxapi

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
)

// Normalised contract states, as returned by Contract.State.
const (
	StateEffective  = "CONTRACT_STATE_EFFECTIVE"
	StateTerminated = "CONTRACT_STATE_TERMINATED"
	StateInvalid    = "CONTRACT_STATE_INVALID"
)

// states maps every contract_state WeChat documents to the normalised state:
// credit_repayment uses CONTRACT_STATE_*, the papay APIs SIGNED, TERMINATED, ...
var states = map[string]string{
	StateEffective:  StateEffective,
	StateTerminated: StateTerminated,
	StateInvalid:    StateInvalid,
	"SIGNED":        StateEffective,
	"TO_BE_RENEWED": StateEffective,
	"TERMINATED":    StateTerminated,
	"SIGN_FAILED":   StateInvalid,
	"NOT_SIGNED":    StateInvalid,
}

// Contract is what WeChat returned about a contract: the union of the APIs'
// fields, as WeChat names them. User identifiers (openid) and deduction
// schedules are not kept.
type Contract struct {
	ContractID                string `json:"contract_id,omitempty"`
	PlanID                    string `json:"plan_id,omitempty"` // an integer in the papay APIs, a string in credit_repayment
	OutContractCode           string `json:"out_contract_code,omitempty"`
	DisplayName               string `json:"display_name,omitempty"`             // credit_repayment
	ContractDisplayAccount    string `json:"contract_display_account,omitempty"` // papay
	MchID                     string `json:"mchid,omitempty"`
	SpMchID                   string `json:"sp_mchid,omitempty"`
	SubMchID                  string `json:"sub_mchid,omitempty"`
	AppID                     string `json:"appid,omitempty"`
	SpAppID                   string `json:"sp_appid,omitempty"`
	SubAppID                  string `json:"sub_appid,omitempty"`
	ContractState             string `json:"contract_state,omitempty"` // as WeChat returned it; see State
	ContractSignedTime        string `json:"contract_signed_time,omitempty"`
	ContractExpiredTime       string `json:"contract_expired_time,omitempty"`
	ContractTerminatedTime    string `json:"contract_terminated_time,omitempty"`
	ContractTerminationMode   string `json:"contract_termination_mode,omitempty"`
	ContractTerminationRemark string `json:"contract_termination_remark,omitempty"`
	RepaymentDay              int64  `json:"repayment_day,omitempty"`
	OutUserCode               string `json:"out_user_code,omitempty"`
}

// State returns the contract's state as one of StateEffective,
// StateTerminated and StateInvalid, whichever vocabulary the API used; a
// state WeChat does not document is returned as is.
func (c *Contract) State() string {
	if s, ok := states[c.ContractState]; ok {
		return s
	}
	return c.ContractState
}

// Terminated reports whether the contract is terminated. It is false for a
// nil Contract.
func (c *Contract) Terminated() bool { return c != nil && c.State() == StateTerminated }

type terminateInfo struct {
	Mode   string `json:"contract_termination_mode"`
	Time   string `json:"contract_terminated_time"`
	Remark string `json:"contract_termination_remark"`
}

// UnmarshalJSON reads a contract in any of the APIs' shapes: plan_id as a
// number or a string, the papay APIs' nested contract_terminate_info, and the
// contract_terminated_mode spelling of some documentation.
func (c *Contract) UnmarshalJSON(b []byte) error {
	type plain Contract
	var w struct {
		plain
		PlanID         json.RawMessage `json:"plan_id"`
		TerminatedMode string          `json:"contract_terminated_mode"`
		TerminateInfo  *terminateInfo  `json:"contract_terminate_info"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*c = Contract(w.plain)
	switch p := bytes.TrimSpace(w.PlanID); {
	case len(p) == 0 || string(p) == "null":
	case p[0] == '"':
		if err := json.Unmarshal(p, &c.PlanID); err != nil {
			return fmt.Errorf("plan_id: %w", err)
		}
	default:
		var n json.Number
		if err := json.Unmarshal(p, &n); err != nil {
			return fmt.Errorf("plan_id: %w", err)
		}
		c.PlanID = n.String()
	}
	if c.ContractTerminationMode == "" {
		c.ContractTerminationMode = w.TerminatedMode
	}
	if t := w.TerminateInfo; t != nil {
		c.ContractTerminationMode = cmp.Or(c.ContractTerminationMode, t.Mode)
		c.ContractTerminatedTime = cmp.Or(c.ContractTerminatedTime, t.Time)
		c.ContractTerminationRemark = cmp.Or(c.ContractTerminationRemark, t.Remark)
	}
	return nil
}

// decodeContract reads a 2xx answer: credit_repayment wraps the contract in
// contract_info, the other APIs return it bare.
func decodeContract(body []byte) (*Contract, error) {
	var w struct {
		Info *Contract `json:"contract_info"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, err
	}
	if w.Info != nil {
		return w.Info, nil
	}
	c := new(Contract)
	return c, json.Unmarshal(body, c)
}
