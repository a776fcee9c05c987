package wxapi

import (
	"encoding/json"
	"testing"
)

func TestDecodeContract(t *testing.T) {
	for _, tc := range []struct {
		name           string
		body           string
		want           Contract
		wantTerminated bool
	}{
		{"credit_repayment contract_info (seed 000 example)",
			`{"contract_info":{"contract_id":"20250101000000123456789","plan_id":"WxCreditRepaymentPlan12345678","out_contract_code":"WxCreditRepayment20200910100000","display_name":"*明","contract_state":"CONTRACT_STATE_TERMINATED","contract_signed_time":"2020-09-10T13:29:35+08:00","contract_terminated_time":"2020-09-10T13:29:35+08:00","contract_termination_mode":"TERMINATION_MODE_BY_USER","contract_termination_remark":"签约信息有误","repayment_day":1}}`,
			Contract{ContractID: "20250101000000123456789", PlanID: "WxCreditRepaymentPlan12345678", OutContractCode: "WxCreditRepayment20200910100000",
				DisplayName: "*明", ContractState: "CONTRACT_STATE_TERMINATED", ContractSignedTime: "2020-09-10T13:29:35+08:00",
				ContractTerminatedTime: "2020-09-10T13:29:35+08:00", ContractTerminationMode: "TERMINATION_MODE_BY_USER",
				ContractTerminationRemark: "签约信息有误", RepaymentDay: 1}, true},
		{"credit_repayment with contract_terminated_mode (seed 001 spelling)",
			`{"contract_info":{"contract_id":"c","contract_state":"CONTRACT_STATE_TERMINATED","contract_terminated_mode":"TERMINATION_MODE_BY_MERCHANT"}}`,
			Contract{ContractID: "c", ContractState: "CONTRACT_STATE_TERMINATED", ContractTerminationMode: "TERMINATION_MODE_BY_MERCHANT"}, true},
		{"papay_partner, integer plan_id and nested terminate info (seed 004)",
			`{"contract_id":"wx1","sp_mchid":"1900000100","sp_appid":"wxsp","sub_mchid":"1900000109","plan_id":12535,"out_contract_code":"wxwtdk20200910100000","contract_display_account":"微信代扣","contract_state":"TERMINATED","contract_terminate_info":{"contract_termination_mode":"USER","contract_terminated_time":"2015-07-01T10:00:00+08:00","contract_termination_remark":"用户解约"},"sp_openid":"o1"}`,
			Contract{ContractID: "wx1", SpMchID: "1900000100", SpAppID: "wxsp", SubMchID: "1900000109", PlanID: "12535",
				OutContractCode: "wxwtdk20200910100000", ContractDisplayAccount: "微信代扣", ContractState: "TERMINATED",
				ContractTerminationMode: "USER", ContractTerminatedTime: "2015-07-01T10:00:00+08:00", ContractTerminationRemark: "用户解约"}, true},
		{"papay_direct signed",
			`{"mchid":"1900000109","appid":"wxa","contract_id":"wx2","plan_id":1,"out_contract_code":"a1","contract_state":"SIGNED"}`,
			Contract{MchID: "1900000109", AppID: "wxa", ContractID: "wx2", PlanID: "1", OutContractCode: "a1", ContractState: "SIGNED"}, false},
		{"null plan_id", `{"contract_id":"x","plan_id":null,"contract_state":"CONTRACT_STATE_EFFECTIVE"}`,
			Contract{ContractID: "x", ContractState: "CONTRACT_STATE_EFFECTIVE"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeContract([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if *got != tc.want {
				t.Errorf("got %+v; want %+v", *got, tc.want)
			}
			if got.Terminated() != tc.wantTerminated {
				t.Errorf("Terminated() = %v; want %v", got.Terminated(), tc.wantTerminated)
			}
		})
	}
}

// A Contract stored as JSON (e.g. in the dedupe record) reads back equal.
func TestContractRoundTrip(t *testing.T) {
	in := Contract{ContractID: "c", PlanID: "12535", ContractState: "TERMINATED", ContractTerminationMode: "m", RepaymentDay: 3}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Contract
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Errorf("got %+v; want %+v", out, in)
	}
}

func TestState(t *testing.T) {
	for raw, want := range map[string]string{
		"CONTRACT_STATE_EFFECTIVE": StateEffective, "SIGNED": StateEffective, "TO_BE_RENEWED": StateEffective,
		"CONTRACT_STATE_TERMINATED": StateTerminated, "TERMINATED": StateTerminated,
		"CONTRACT_STATE_INVALID": StateInvalid, "SIGN_FAILED": StateInvalid, "NOT_SIGNED": StateInvalid,
		"SOMETHING_NEW": "SOMETHING_NEW",
	} {
		if got := (&Contract{ContractState: raw}).State(); got != want {
			t.Errorf("State() of %s = %s; want %s", raw, got, want)
		}
	}
	var nilContract *Contract
	if nilContract.Terminated() {
		t.Error("nil Contract is Terminated; want not")
	}
}
