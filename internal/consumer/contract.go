package consumer

import (
	"cmp"
	"time"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/wxapi"
)

// contract maps WeChat Pay's contract to the result event's: the display
// name falls back to the masked account, the service provider to the
// merchant (a direct merchant is its own). contract_state keeps WeChat's raw
// state (the old normalised one when WeChat gave none); state,
// termination_mode and terminated_at carry the normalised vocabulary.
func contract(ct *wxapi.Contract) event.Contract {
	if ct == nil {
		return event.Contract{}
	}
	display := ct.DisplayName
	if display == "" {
		display = ct.ContractDisplayAccount
	}
	sp := ct.SpMchID
	if sp == "" {
		sp = ct.MchID
	}
	var at *time.Time
	if !ct.TerminatedAt.IsZero() {
		t := ct.TerminatedAt.UTC()
		at = &t
	}
	return event.Contract{
		ContractID: ct.ContractID, PlanID: ct.PlanID, OutContractCode: ct.OutContractCode, DisplayName: display,
		SpMchID: sp, SubMchID: ct.SubMchID, AppID: ct.AppID, SpAppID: ct.SpAppID, SubAppID: ct.SubAppID,
		ContractState: cmp.Or(ct.ContractState, ct.State()), ContractSignedTime: ct.ContractSignedTime, ContractTerminatedTime: ct.ContractTerminatedTime,
		ContractTerminationMode: ct.ContractTerminationMode, ContractTerminationRemark: ct.ContractTerminationRemark,
		RepaymentDay: ct.RepaymentDay,
		State:        string(ct.Status), TerminationMode: string(ct.TerminationMode), TerminatedAt: at,
	}
}
