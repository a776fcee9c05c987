package wxapi

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// API names one of the WeChat Pay terminate APIs. Its values are the `api`
// field of a termination intent.
type API string

// The APIs this package calls.
const (
	// CreditRepayment is the service provider's 自动还款 contract:
	// POST /v3/credit-repayment/partner/contracts/terminate, 200 {contract_info}.
	CreditRepayment API = "credit_repayment"
	// PapayPartner is the service provider's 委托代扣 contract:
	// POST /v3/papay/sign/partner/contracts/plan-id/{plan_id}/out-contract-code/{out_contract_code}/terminate, 200 contract.
	PapayPartner API = "papay_partner"
	// PapayDirect is the direct merchant's 委托代扣 contract:
	// POST /v3/papay/sign/contracts/plan-id/{plan_id}/out-contract-code/{out_contract_code}/terminate, 200 contract.
	PapayDirect API = "papay_direct"
	// GlobalPapay is the cross-border auto-debit contract on the HK host:
	// POST /v3/global/papay/contracts/{contract_id}/terminate, 204 without a body.
	GlobalPapay API = "global_papay"
)

// Valid reports whether a is one of the APIs above.
func (a API) Valid() bool {
	_, ok := routes[a]
	return ok
}

// APIs lists the APIs the routing table serves, sorted by name.
func APIs() []API {
	out := make([]API, 0, len(routes))
	for a := range routes {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// Host names the WeChat Pay host a's calls go to: the global host for
// global_papay, the mainland one (with its backup domain) for the others.
// A fault one host shows says nothing of the other, so callers key what
// they learn about a merchant's calls on it.
func (a API) Host() string {
	if routes[a].global {
		return strings.TrimPrefix(DefaultGlobalBaseURL, "https://")
	}
	return strings.TrimPrefix(DefaultBaseURL, "https://")
}

// Request names one contract to terminate or query. Fields an API does not
// use are ignored.
type Request struct {
	API             API
	OutContractCode string // credit_repayment, papay_*
	PlanID          string // papay_*
	ContractID      string // global_papay
	SubMchID        string // papay_partner; global_papay institutional mode
	AppID           string // global_papay direct mode
	SpAppID         string // global_papay institutional mode
	SubAppID        string // global_papay institutional mode, optional
	Remark          string // contract_termination_remark, or termination_note for global_papay
}

// institutional reports whether a global_papay request is in institutional
// (service provider) mode rather than direct mode.
func (r Request) institutional() bool { return r.SpAppID != "" || r.SubMchID != "" }

// route is how one API is called.
type route struct {
	global    bool    // on GlobalBaseURL, which has no documented backup domain
	required  []field // identifiers both operations need
	terminate func(Request) (path string, body any)
	query     func(Request) (pathAndQuery string)
}

// routes is the routing table: which endpoints and bodies each API uses.
var routes = map[API]route{
	CreditRepayment: {
		required: []field{outContractCode},
		terminate: func(r Request) (string, any) {
			return "/v3/credit-repayment/partner/contracts/terminate", struct {
				OutContractCode string `json:"out_contract_code"`
				Remark          string `json:"contract_termination_remark"`
			}{r.OutContractCode, r.Remark}
		},
		query: func(r Request) string {
			return "/v3/credit-repayment/partner/contracts/" + url.PathEscape(r.OutContractCode)
		},
	},
	PapayPartner: {
		required: []field{planID, outContractCode, subMchID},
		terminate: func(r Request) (string, any) {
			return papayPath("/v3/papay/sign/partner/contracts", r) + "/terminate", struct {
				SubMchID string `json:"sub_mchid"`
				Remark   string `json:"contract_termination_remark"`
			}{r.SubMchID, r.Remark}
		},
		query: func(r Request) string {
			return papayPath("/v3/papay/sign/partner/contracts", r) + "?" + url.Values{"sub_mchid": {r.SubMchID}}.Encode()
		},
	},
	PapayDirect: {
		required: []field{planID, outContractCode},
		terminate: func(r Request) (string, any) {
			return papayPath("/v3/papay/sign/contracts", r) + "/terminate", struct {
				Remark string `json:"contract_termination_remark"`
			}{r.Remark}
		},
		query: func(r Request) string { return papayPath("/v3/papay/sign/contracts", r) },
	},
	GlobalPapay: {
		global:   true,
		required: []field{contractID, globalMerchant},
		terminate: func(r Request) (string, any) {
			body := globalTerminateBody{AppID: r.AppID, Note: r.Remark}
			if r.institutional() {
				body = globalTerminateBody{SpAppID: r.SpAppID, SubMchID: r.SubMchID, SubAppID: r.SubAppID, Note: r.Remark}
			}
			return globalPath(r) + "/terminate", body
		},
		query: func(r Request) string {
			q := url.Values{"appid": {r.AppID}}
			if r.institutional() {
				q = url.Values{"sub_mchid": {r.SubMchID}, "sp_appid": {r.SpAppID}}
				if r.SubAppID != "" {
					q.Set("sub_appid", r.SubAppID)
				}
			}
			return globalPath(r) + "?" + q.Encode()
		},
	},
}

type globalTerminateBody struct {
	AppID    string `json:"appid,omitempty"`
	SpAppID  string `json:"sp_appid,omitempty"`
	SubMchID string `json:"sub_mchid,omitempty"`
	SubAppID string `json:"sub_appid,omitempty"`
	Note     string `json:"termination_note"`
}

func papayPath(prefix string, r Request) string {
	return prefix + "/plan-id/" + url.PathEscape(r.PlanID) + "/out-contract-code/" + url.PathEscape(r.OutContractCode)
}

func globalPath(r Request) string {
	return "/v3/global/papay/contracts/" + url.PathEscape(r.ContractID)
}

// field is a Request field an API requires.
type field struct {
	name    string
	missing func(Request) bool
}

var (
	outContractCode = field{"out_contract_code", func(r Request) bool { return r.OutContractCode == "" }}
	planID          = field{"plan_id", func(r Request) bool { return r.PlanID == "" }}
	subMchID        = field{"sub_mchid", func(r Request) bool { return r.SubMchID == "" }}
	contractID      = field{"contract_id", func(r Request) bool { return r.ContractID == "" }}
	globalMerchant  = field{"appid (direct mode) or sp_appid and sub_mchid (institutional mode)", func(r Request) bool {
		if r.institutional() {
			return r.SpAppID == "" || r.SubMchID == ""
		}
		return r.AppID == ""
	}}
)

// check reports what r lacks for the operation.
func (rt route) check(r Request, op string) error {
	for _, f := range rt.required {
		if f.missing(r) {
			return fmt.Errorf("%w: %s is required", ErrInvalidRequest, f.name)
		}
	}
	if op == opTerminate && r.Remark == "" {
		return fmt.Errorf("%w: remark is required", ErrInvalidRequest)
	}
	return nil
}
