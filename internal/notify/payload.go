package notify

import (
	"bytes"
	"cmp"
	"encoding/json"
	"strings"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core/notify"

	"github.com/wxterm/wxterm/event"
)

// resource holds the fields of the decrypted resource the event carries,
// under every documented spelling:
//   - papay (ENTRUST.*, webhook/v3/ENTRUST.TERMINATE.md and ENTRUST.SIGN.md):
//     mchid or sp_mchid/sub_mchid, contract_id, plan_id (a number),
//     out_contract_code, and contract_terminate_info{contract_termination_mode,
//     contract_terminated_time};
//   - credit repayment (webhook/v3/CREDIT_REPAYMENT.TERMINATE_CONTRACT.md):
//     sp_mchid, contract_id, plan_id, out_contract_code,
//     contract_termination_mode (contract_terminated_mode on another page,
//     seeds 000/001) and contract_terminated_time at the top level;
//   - global papay (webhook/v3/PAPAY.TERMINATE.md, seed 003): mchid or
//     sp_mchid/sub_mchid, out_contract_code, contract_id, plan_id,
//     contract_termination_mode (USER, MERCHANT, PLATFORM) and operate_time.
type resource struct {
	MchID           string          `json:"mchid"`
	SpMchID         string          `json:"sp_mchid"`
	SubMchID        string          `json:"sub_mchid"`
	OutContractCode string          `json:"out_contract_code"`
	ContractID      string          `json:"contract_id"`
	PlanID          json.RawMessage `json:"plan_id"`
	Mode            string          `json:"contract_termination_mode"`
	ModeAlt         string          `json:"contract_terminated_mode"`
	TerminatedTime  string          `json:"contract_terminated_time"`
	OperateTime     string          `json:"operate_time"`
	TerminateInfo   *struct {
		Mode           string `json:"contract_termination_mode"`
		TerminatedTime string `json:"contract_terminated_time"`
	} `json:"contract_terminate_info"`
}

// notification builds the event of a verified, decrypted notification for
// merchant mchID.
func notification(req *notify.Request, mchID string, now time.Time) (*event.Notification, error) {
	n := &event.Notification{SchemaVersion: event.SchemaVersion, ID: req.ID, EventType: req.EventType, MchID: mchID, ReceivedAt: now.UTC()}
	kind, ok := event.NotificationKindOf(req.EventType)
	if !ok {
		return n, refuse(CauseType, "event_type not accepted here")
	}
	n.Kind = kind
	if req.ID == "" || req.CreateTime == nil {
		return n, refuse(CauseJSON, "no id or create_time")
	}
	n.CreateTime = *req.CreateTime
	plain := []byte(req.Resource.Plaintext)
	var res resource
	if err := json.Unmarshal(plain, &res); err != nil {
		return n, refuse(CauseJSON, "decrypted resource is not the documented object")
	}
	n.Resource = json.RawMessage(bytes.TrimSpace(plain))
	n.OutContractCode, n.ContractID, n.SubMchID = res.OutContractCode, res.ContractID, res.SubMchID
	n.PlanID = planID(res.PlanID)
	if n.OutContractCode == "" {
		return n, refuse(CausePayload, "resource has no out_contract_code")
	}
	// WeChat Pay's pages ask to check that a notification's data matches the
	// merchant's own ("校验通知的信息是否与商户侧的信息一致", webhook/v3/*.md).
	if owner := cmp.Or(res.SpMchID, res.MchID); owner != "" && owner != mchID {
		return n, refuse(CauseMerchant, "resource is for another merchant")
	}
	switch {
	case strings.HasPrefix(req.EventType, "CREDIT_REPAYMENT."):
		n.API = event.CreditRepayment
	case strings.HasPrefix(req.EventType, "PAPAY."):
		n.API = event.GlobalPapay
	case res.SpMchID != "" || res.SubMchID != "":
		n.API = event.PapayPartner
	default:
		n.API = event.PapayDirect
	}
	if kind == event.KindTermination {
		raw, when := cmp.Or(res.Mode, res.ModeAlt), res.TerminatedTime
		if res.TerminateInfo != nil {
			raw, when = cmp.Or(res.TerminateInfo.Mode, raw), cmp.Or(res.TerminateInfo.TerminatedTime, when)
		}
		n.RawTerminationMode = raw
		n.TerminationMode = event.NormaliseTerminationMode(raw)
		n.TerminatedTime = cmp.Or(when, res.OperateTime)
	}
	return n, nil
}

// planID renders plan_id, a number on every page, as a string; a string
// is taken as it is.
func planID(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var num json.Number
	if json.Unmarshal(raw, &num) == nil {
		return num.String()
	}
	return ""
}
