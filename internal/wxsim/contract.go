package wxsim

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/wxterm/wxterm/internal/wxapi"
)

// State is a contract's state in the simulator.
type State int

// Contract states. The zero State is Effective.
const (
	Effective  State = iota // CONTRACT_STATE_EFFECTIVE, or SIGNED in the papay APIs
	Terminated              // CONTRACT_STATE_TERMINATED, or TERMINATED
	Invalid                 // CONTRACT_STATE_INVALID, or SIGN_FAILED
	// TerminatePending is papay's TERMINATE_PENDING: a termination under
	// way, which becomes Terminated at Contract.PendingUntil (never, if
	// zero). A papay terminate leads to it when Options.PendingFor > 0.
	TerminatePending
)

// Terminator is who terminated a contract; each API renders it in its own
// vocabulary of termination modes.
type Terminator int

// Terminators. The zero Terminator is ByMerchant: a terminate call.
const (
	ByMerchant Terminator = iota
	ByUser
	ByCustomerService
	ByPlatform
	BySystem
	// ByMerchantConsole is the merchant's staff in the merchant platform
	// (商户平台), not an API call: papay's WEPAY_WEB_TERMINATE
	// (wechatpay-im/website webhook/v3/ENTRUST.TERMINATE.md: "商户在商户平台
	// 发起的解约"); the other families have no mode of their own for it.
	ByMerchantConsole
)

// Contract is a contract the simulator holds.
type Contract struct {
	API             wxapi.API
	OutContractCode string // the key of credit_repayment and papay_* contracts
	PlanID          string // digits for papay_* (requests must name the same plan)
	ContractID      string // the key of global_papay contracts; generated if empty
	// SubMchID, AppID, SpAppID and SubAppID, when set, must match the
	// request's (400 PARAM_ERROR otherwise).
	SubMchID, AppID, SpAppID, SubAppID string
	DisplayName                        string // display_name; contract_display_account (papay); user_display_name (global)
	RepaymentDay                       int64  // credit_repayment
	State                              State
	SignedTime                         time.Time
	TerminatedTime                     time.Time  // set by a termination
	TerminationRemark                  string     // set by a termination
	TerminatedBy                       Terminator // who terminated it; ByMerchant for a terminate call
	PendingUntil                       time.Time  // when a TerminatePending contract becomes Terminated
}

// resolve moves a pending termination that is due to Terminated; s.mu must
// be held.
func (c *Contract) resolve(now time.Time) {
	if c.State == TerminatePending && !c.PendingUntil.IsZero() && !now.Before(c.PendingUntil) {
		c.State, c.TerminatedTime = Terminated, c.PendingUntil
	}
}

// input is one parsed request.
type input struct {
	api        wxapi.API
	terminate  bool
	code, plan string // out_contract_code and plan_id from the path (code from the body for credit_repayment)
	id         string // contract_id from the path
	query      url.Values
	body       struct {
		OutContractCode string `json:"out_contract_code"`
		Remark          string `json:"contract_termination_remark"`
		SubMchID        string `json:"sub_mchid"`
		AppID           string `json:"appid"`
		SpAppID         string `json:"sp_appid"`
		SubAppID        string `json:"sub_appid"`
		Note            string `json:"termination_note"`
	}
	bodyErr error
}

// key is the contract the request names.
func (in *input) key() string {
	if in.api == wxapi.GlobalPapay {
		return in.id
	}
	return in.code
}

// merchant returns the sub_mchid, appid, sp_appid and sub_appid the request
// carries, from the body of a terminate or the query string of a query.
func (in *input) merchant() (subMchID, appID, spAppID, subAppID string) {
	if in.terminate {
		return in.body.SubMchID, in.body.AppID, in.body.SpAppID, in.body.SubAppID
	}
	return in.query.Get("sub_mchid"), in.query.Get("appid"), in.query.Get("sp_appid"), in.query.Get("sub_appid")
}

// Body limits, in characters.
const (
	maxRemark       = 128 // credit_repayment contract_termination_remark: string(128)
	maxPapayRemark  = 256 // papay contract_termination_remark: string(256)
	maxNote         = 256 // global_papay termination_note: string[1,256]
	maxContractCode = 64
)

// validate checks a request like the real API, before looking at state.
func (in *input) validate() *answer {
	if in.bodyErr != nil {
		a := paramError("body", "body", "", "not a valid JSON object")
		return &a
	}
	check := func(field, location, value string, ok bool, issue string) *answer {
		if ok {
			return nil
		}
		a := paramError(field, location, value, issue)
		return &a
	}
	required := func(field, location, value string) *answer {
		return check(field, location, value, value != "", "is required")
	}
	maxLen := func(field, value string, n int) *answer {
		return check(field, "body", "", utf8.RuneCountInString(value) <= n, fmt.Sprintf("must be at most %d characters", n))
	}
	subMchID, appID, spAppID, _ := in.merchant()
	where := "query"
	if in.terminate {
		where = "body"
	}
	var checks []*answer
	switch in.api {
	case wxapi.CreditRepayment:
		loc := "path"
		if in.terminate {
			loc = "body"
			checks = append(checks, required("out_contract_code", loc, in.code))
		}
		checks = append(checks, check("out_contract_code", loc, in.code, alnum(in.code), "must be digits and letters only"))
		if in.terminate {
			checks = append(checks, required("contract_termination_remark", "body", in.body.Remark),
				maxLen("contract_termination_remark", in.body.Remark, maxRemark))
		}
	case wxapi.PapayPartner, wxapi.PapayDirect:
		checks = append(checks,
			check("plan_id", "path", in.plan, digits(in.plan), "must be an integer"),
			check("out_contract_code", "path", in.code, alnum(in.code), "must be digits and letters only"))
		if in.api == wxapi.PapayPartner {
			checks = append(checks, required("sub_mchid", where, subMchID))
		}
		if in.terminate {
			checks = append(checks, required("contract_termination_remark", "body", in.body.Remark),
				maxLen("contract_termination_remark", in.body.Remark, maxPapayRemark))
		}
	case wxapi.GlobalPapay:
		if spAppID != "" || subMchID != "" { // institutional mode
			checks = append(checks, required("sp_appid", where, spAppID), required("sub_mchid", where, subMchID))
		} else {
			checks = append(checks, required("appid", where, appID))
		}
		if in.terminate {
			checks = append(checks, required("termination_note", "body", in.body.Note),
				maxLen("termination_note", in.body.Note, maxNote))
		}
	}
	for _, a := range checks {
		if a != nil {
			return a
		}
	}
	return nil
}

func alnum(s string) bool {
	if s == "" || len(s) > maxContractCode {
		return false
	}
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
			return false
		}
	}
	return true
}

func digits(s string) bool {
	_, err := strconv.ParseUint(s, 10, 63)
	return err == nil
}

// Error codes the simulator answers with, as the pages document them.
const (
	codeNotExists        = "RESOURCE_NOT_EXISTS" // 404; the SDK's error tables (e.g. services/profitsharing)
	codeContractNotExist = "CONTRACT_NOT_EXIST"  // 403, global papay terminate (NOTES-wechatpay.md)
	codeInvalidRequest   = "INVALID_REQUEST"     // 400, the APIv3 business-rule refusal
)

// process validates, applies and renders a request that passed the
// signature check.
func (s *Server) process(in *input) answer {
	if a := in.validate(); a != nil {
		return *a
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	c := s.lookup(in)
	if c == nil {
		if !s.opts.AutoCreate || s.missing[in.key()] {
			if in.api == wxapi.GlobalPapay && in.terminate {
				// Global papay's terminate documents 403 CONTRACT_NOT_EXIST:
				// "The contract cannot be found" (official page 4012356587).
				return errorAnswer(http.StatusForbidden, codeContractNotExist, "the contract cannot be found or has been terminated", nil)
			}
			return errorAnswer(http.StatusNotFound, codeNotExists, "contract does not exist", nil)
		}
		c = s.create(in)
	}
	if a := in.mismatch(c); a != nil {
		return *a
	}
	c.resolve(now)
	if in.terminate {
		if c.State != Effective {
			return refuseTerminate(in.api)
		}
		c.State, c.TerminatedTime, c.TerminatedBy = Terminated, now, ByMerchant
		c.TerminationRemark = in.body.Remark
		if in.api == wxapi.GlobalPapay {
			c.TerminationRemark = in.body.Note
		}
		if s.opts.PendingFor > 0 && (in.api == wxapi.PapayPartner || in.api == wxapi.PapayDirect) {
			c.State, c.TerminatedTime, c.PendingUntil = TerminatePending, time.Time{}, now.Add(s.opts.PendingFor)
		}
		s.done[in.key()]++
		if in.api == wxapi.GlobalPapay {
			return answer{status: http.StatusNoContent} // seed 002: "No data (the HTTP status code is 204)"
		}
	}
	return answer{http.StatusOK, s.render(c, in.terminate)}
}

// refuseTerminate answers a terminate of a contract that is not effective.
// The terminate APIs require an effective contract (papay: "对应的委托代扣
// 签约协议是已生效状态的委托代扣签约协议", seed 004). Global papay documents
// 403 CONTRACT_NOT_EXIST for a contract not found "or" already terminated;
// for credit_repayment and papay no page documents a dedicated code, so the
// APIv3 business-rule refusal 400 INVALID_REQUEST (请求的业务参数符合参数
// 格式，但不符合业务规则) stands in for it.
func refuseTerminate(api wxapi.API) answer {
	if api == wxapi.GlobalPapay {
		return errorAnswer(http.StatusForbidden, codeContractNotExist, "the contract cannot be found or has been terminated", nil)
	}
	return errorAnswer(http.StatusBadRequest, codeInvalidRequest, "contract is not effective: already terminated", nil)
}

// lookup finds the contract a request names; s.mu must be held.
func (s *Server) lookup(in *input) *Contract {
	c := s.byCode[in.code]
	if in.api == wxapi.GlobalPapay {
		c = s.byID[in.id]
	}
	if c == nil || c.API != in.api || (in.plan != "" && c.PlanID != in.plan) {
		return nil // papay contracts are identified by plan and code together
	}
	return c
}

// create adds a fresh effective contract for in (AutoCreate); s.mu must be held.
func (s *Server) create(in *input) *Contract {
	subMchID, appID, spAppID, subAppID := in.merchant()
	c := &Contract{API: in.api, OutContractCode: in.code, PlanID: in.plan, ContractID: in.id,
		SubMchID: subMchID, AppID: appID, SpAppID: spAppID, SubAppID: subAppID,
		DisplayName: "*auto", SignedTime: time.Now()}
	if c.ContractID == "" {
		c.ContractID = s.newContractID()
	}
	if in.api == wxapi.GlobalPapay {
		s.byID[c.ContractID] = c
	} else {
		s.byCode[c.OutContractCode] = c
	}
	return c
}

// newContractID returns a contract id like WeChat's; s.mu must be held.
func (s *Server) newContractID() string {
	s.nextID++
	return fmt.Sprintf("%s%010d", time.Now().Format("20060102150405"), s.nextID)
}

// mismatch reports request fields that contradict the contract: every
// merchant field the contract has must be in the request (sub_appid only if
// the request has one), which also catches a direct-mode request for an
// institutional contract and the reverse.
func (in *input) mismatch(c *Contract) *answer {
	subMchID, appID, spAppID, subAppID := in.merchant()
	type pair struct{ name, want, got string }
	var pairs []pair
	switch in.api {
	case wxapi.PapayPartner:
		pairs = []pair{{"sub_mchid", c.SubMchID, subMchID}}
	case wxapi.GlobalPapay:
		pairs = []pair{{"sub_mchid", c.SubMchID, subMchID}, {"appid", c.AppID, appID}, {"sp_appid", c.SpAppID, spAppID}}
		if subAppID != "" {
			pairs = append(pairs, pair{"sub_appid", c.SubAppID, subAppID})
		}
	}
	for _, p := range pairs {
		if p.want != "" && p.got != p.want {
			where := "query"
			if in.terminate {
				where = "body"
			}
			a := paramError(p.name, where, p.got, "does not match the contract")
			return &a
		}
	}
	return nil
}

var beijing = time.FixedZone("CST", 8*60*60)

func timestamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(beijing).Format(time.RFC3339)
}

// creditContract is credit_repayment's contract: the terminate answer's
// contract_info (seed 000) and the query answer, bare
// (openapi/v3/credit-repayment/partner/contracts/{out_contract_code}.md).
type creditContract struct {
	ContractID              string `json:"contract_id"`
	PlanID                  string `json:"plan_id"`
	OutContractCode         string `json:"out_contract_code"`
	DisplayName             string `json:"display_name"`
	ContractState           string `json:"contract_state"`
	ContractSignedTime      string `json:"contract_signed_time,omitempty"`
	ContractTerminatedTime  string `json:"contract_terminated_time,omitempty"`
	ContractTerminationMode string `json:"contract_termination_mode,omitempty"`
	// ContractTerminatedMode is the mode as seed 001 spells it in the
	// terminate answer; see creditSpelling.
	ContractTerminatedMode    string `json:"contract_terminated_mode,omitempty"`
	ContractTerminationRemark string `json:"contract_termination_remark,omitempty"`
	RepaymentDay              int64  `json:"repayment_day,omitempty"`
}

// papayContract is the papay APIs' contract, bare in both answers (seed
// 004; docs/v3/papay/sign/.../terminate.yaml).
type papayContract struct {
	MchID                  string         `json:"mchid,omitempty"`
	AppID                  string         `json:"appid,omitempty"`
	SpMchID                string         `json:"sp_mchid,omitempty"`
	SpAppID                string         `json:"sp_appid,omitempty"`
	SubMchID               string         `json:"sub_mchid,omitempty"`
	SubAppID               string         `json:"sub_appid,omitempty"`
	ContractID             string         `json:"contract_id"`
	PlanID                 int64          `json:"plan_id,omitempty"` // a number, unlike credit_repayment's
	OutContractCode        string         `json:"out_contract_code,omitempty"`
	ContractDisplayAccount string         `json:"contract_display_account,omitempty"`
	ContractState          string         `json:"contract_state"`
	ContractSignedTime     string         `json:"contract_signed_time,omitempty"`
	ContractTerminateInfo  *terminateInfo `json:"contract_terminate_info,omitempty"`
}

type terminateInfo struct {
	ContractTerminationMode   string `json:"contract_termination_mode"`
	ContractTerminatedTime    string `json:"contract_terminated_time"`
	ContractTerminationRemark string `json:"contract_termination_remark,omitempty"`
}

// globalContract is global papay's query answer
// (openapi/v3/global/papay/contracts/{contract_id}.md).
type globalContract struct {
	MchID           string `json:"mchid,omitempty"`
	AppID           string `json:"appid,omitempty"`
	SpMchID         string `json:"sp_mchid,omitempty"`
	SubMchID        string `json:"sub_mchid,omitempty"`
	SpAppID         string `json:"sp_appid,omitempty"`
	SubAppID        string `json:"sub_appid,omitempty"`
	ContractID      string `json:"contract_id"`
	PlanID          int64  `json:"plan_id,omitempty"` // integer
	OutContractCode string `json:"out_contract_code,omitempty"`
	UserDisplayName string `json:"user_display_name,omitempty"`
	State           string `json:"state"`
	SignedTime      string `json:"signed_time,omitempty"`
	TerminatedTime  string `json:"terminated_time,omitempty"`
	TerminationMode string `json:"termination_mode,omitempty"`
	TerminationNote string `json:"termination_note,omitempty"`
}

// Each family's vocabulary (see wxapi's vocabularies for the sources). A
// state a family lacks is rendered as its nearest: only papay has a
// pending state; global papay's query page
// (wechatpay-im/website openapi/v3/global/papay/contracts/{contract_id}.md)
// enumerates no state, its example gives SIGNED, so an Invalid (never in
// force) global contract is rendered TERMINATED, without mode or time. A
// terminator a family lacks is rendered as its catch-all:
// TERMINATION_MODE_INVALID, SYSTEM_TERMINATE, PLATFORM; the merchant's
// console as the merchant where only papay tells it apart.
var (
	creditStates = [...]string{Effective: "CONTRACT_STATE_EFFECTIVE", Terminated: "CONTRACT_STATE_TERMINATED",
		Invalid: "CONTRACT_STATE_INVALID", TerminatePending: "CONTRACT_STATE_TERMINATED"}
	papayStates = [...]string{Effective: "SIGNED", Terminated: "TERMINATED", Invalid: "SIGN_FAILED",
		TerminatePending: "TERMINATE_PENDING"}
	globalStates = [...]string{Effective: "SIGNED", Terminated: "TERMINATED", Invalid: "TERMINATED",
		TerminatePending: "TERMINATED"}
	creditModes = [...]string{ByMerchant: "TERMINATION_MODE_BY_MERCHANT", ByUser: "TERMINATION_MODE_BY_USER",
		ByCustomerService: "TERMINATION_MODE_BY_CUSTOMER_SERVICE", ByPlatform: "TERMINATION_MODE_INVALID", BySystem: "TERMINATION_MODE_INVALID",
		ByMerchantConsole: "TERMINATION_MODE_BY_MERCHANT"}
	papayModes = [...]string{ByMerchant: "MCH_API_TERMINATE", ByUser: "USER_TERMINATE",
		ByCustomerService: "CUSTOMER_SERVICE_TERMINATE", ByPlatform: "SYSTEM_TERMINATE", BySystem: "SYSTEM_TERMINATE",
		ByMerchantConsole: "WEPAY_WEB_TERMINATE"}
	globalModes = [...]string{ByMerchant: "MERCHANT", ByUser: "USER", ByCustomerService: "PLATFORM", ByPlatform: "PLATFORM", BySystem: "PLATFORM",
		ByMerchantConsole: "MERCHANT"}
)

// creditSpelling reports whether the credit repayment contract with that
// out_contract_code is answered by terminate with its mode spelled
// contract_terminated_mode (seed 001, a terminate page) rather than
// contract_termination_mode (seed 000, the other terminate page; the query
// page has only this one): decided by the code, so both spellings are
// served and a contract keeps one.
func creditSpelling(code string) bool {
	h := fnv.New32a()
	h.Write([]byte(code))
	return h.Sum32()%2 == 0
}

// render encodes c as its API answers it; terminate selects the terminate
// answer's shape (credit_repayment wraps it in contract_info); s.mu must
// be held.
func (s *Server) render(c *Contract, terminate bool) []byte {
	var v any
	terminated := c.State == Terminated
	plan, _ := strconv.ParseInt(c.PlanID, 10, 64)
	institutional := c.API == wxapi.PapayPartner || c.API == wxapi.GlobalPapay && c.SubMchID != ""
	switch c.API {
	case wxapi.CreditRepayment:
		cc := creditContract{
			ContractID: c.ContractID, PlanID: c.PlanID, OutContractCode: c.OutContractCode,
			DisplayName: c.DisplayName, ContractState: creditStates[c.State],
			ContractSignedTime: timestamp(c.SignedTime), RepaymentDay: c.RepaymentDay,
		}
		if terminated {
			cc.ContractTerminatedTime, cc.ContractTerminationMode = timestamp(c.TerminatedTime), creditModes[c.TerminatedBy]
			if terminate && creditSpelling(c.OutContractCode) {
				cc.ContractTerminatedMode, cc.ContractTerminationMode = cc.ContractTerminationMode, ""
			}
			cc.ContractTerminationRemark = c.TerminationRemark
		}
		v = cc
		if terminate {
			v = struct {
				Info creditContract `json:"contract_info"`
			}{cc}
		}
	case wxapi.GlobalPapay:
		gc := globalContract{
			ContractID: c.ContractID, PlanID: plan, OutContractCode: c.OutContractCode, UserDisplayName: c.DisplayName,
			State: globalStates[c.State], SignedTime: timestamp(c.SignedTime),
		}
		if institutional {
			gc.SpMchID, gc.SpAppID, gc.SubMchID, gc.SubAppID = s.opts.MchID, c.SpAppID, c.SubMchID, c.SubAppID
		} else {
			gc.MchID, gc.AppID = s.opts.MchID, c.AppID
		}
		if terminated {
			gc.TerminatedTime, gc.TerminationMode, gc.TerminationNote = timestamp(c.TerminatedTime), globalModes[c.TerminatedBy], c.TerminationRemark
		}
		v = gc
	default:
		pc := papayContract{
			ContractID: c.ContractID, PlanID: plan, OutContractCode: c.OutContractCode, ContractDisplayAccount: c.DisplayName,
			ContractState: papayStates[c.State], ContractSignedTime: timestamp(c.SignedTime),
		}
		if institutional {
			pc.SpMchID, pc.SpAppID, pc.SubMchID, pc.SubAppID = s.opts.MchID, c.SpAppID, c.SubMchID, c.SubAppID
		} else {
			pc.MchID, pc.AppID = s.opts.MchID, c.AppID
		}
		if terminated {
			pc.ContractTerminateInfo = &terminateInfo{papayModes[c.TerminatedBy], timestamp(c.TerminatedTime), c.TerminationRemark}
		}
		v = pc
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only strings and integers: cannot fail
	}
	return b
}
