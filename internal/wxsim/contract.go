package wxsim

import (
	"encoding/json"
	"fmt"
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
	DisplayName                        string // display_name, or contract_display_account in the papay APIs
	RepaymentDay                       int64  // credit_repayment
	State                              State
	SignedTime                         time.Time
	TerminatedTime                     time.Time // set by a termination
	TerminationRemark                  string    // set by a termination
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

// process validates, applies and renders a request that passed the
// signature check.
func (s *Server) process(in *input) answer {
	if a := in.validate(); a != nil {
		return *a
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.lookup(in)
	if c == nil {
		if !s.opts.AutoCreate {
			// 404 NOT_FOUND is the APIv3 business error code for "the requested
			// resource does not exist" (请求的资源不存在).
			return errorAnswer(http.StatusNotFound, "NOT_FOUND", "contract does not exist", nil)
		}
		c = s.create(in)
	}
	if a := in.mismatch(c); a != nil {
		return *a
	}
	if in.terminate {
		if c.State != Effective {
			// The terminate APIs require an effective contract (papay: "对应的
			// 委托代扣签约协议是已生效状态的委托代扣签约协议"). A request that is
			// well formed but breaks a business rule is answered, per the APIv3
			// common error codes, 400 INVALID_REQUEST (请求的业务参数符合参数格式，
			// 但不符合业务规则). No page documents a dedicated code for it.
			return errorAnswer(http.StatusBadRequest, "INVALID_REQUEST", "contract is not effective: already terminated", nil)
		}
		c.State, c.TerminatedTime = Terminated, time.Now()
		c.TerminationRemark = in.body.Remark
		if in.api == wxapi.GlobalPapay {
			c.TerminationRemark = in.body.Note
		}
		s.done[in.key()]++
		if in.api == wxapi.GlobalPapay {
			return answer{status: http.StatusNoContent}
		}
	}
	return answer{http.StatusOK, s.render(c)}
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

// creditContract is credit_repayment's contract_info.
type creditContract struct {
	ContractID                string `json:"contract_id"`
	PlanID                    string `json:"plan_id"`
	OutContractCode           string `json:"out_contract_code"`
	DisplayName               string `json:"display_name"`
	ContractState             string `json:"contract_state"`
	ContractSignedTime        string `json:"contract_signed_time,omitempty"`
	ContractTerminatedTime    string `json:"contract_terminated_time,omitempty"`
	ContractTerminationMode   string `json:"contract_termination_mode,omitempty"`
	ContractTerminationRemark string `json:"contract_termination_remark,omitempty"`
	RepaymentDay              int64  `json:"repayment_day,omitempty"`
}

// papayContract is the papay APIs' contract; global_papay's query answer
// is rendered the same way.
type papayContract struct {
	MchID                  string         `json:"mchid,omitempty"`
	AppID                  string         `json:"appid,omitempty"`
	SpMchID                string         `json:"sp_mchid,omitempty"`
	SpAppID                string         `json:"sp_appid,omitempty"`
	SubMchID               string         `json:"sub_mchid,omitempty"`
	SubAppID               string         `json:"sub_appid,omitempty"`
	ContractID             string         `json:"contract_id"`
	PlanID                 int64          `json:"plan_id,omitempty"` // an integer, unlike credit_repayment's
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

var (
	creditStates = [...]string{Effective: "CONTRACT_STATE_EFFECTIVE", Terminated: "CONTRACT_STATE_TERMINATED", Invalid: "CONTRACT_STATE_INVALID"}
	papayStates  = [...]string{Effective: "SIGNED", Terminated: "TERMINATED", Invalid: "SIGN_FAILED"}
)

// terminationMode is the mode of a termination made through these APIs.
const terminationMode = "TERMINATION_MODE_BY_MERCHANT"

// render encodes c as its API answers it; s.mu must be held.
func (s *Server) render(c *Contract) []byte {
	var v any
	if c.API == wxapi.CreditRepayment {
		cc := creditContract{
			ContractID: c.ContractID, PlanID: c.PlanID, OutContractCode: c.OutContractCode,
			DisplayName: c.DisplayName, ContractState: creditStates[c.State],
			ContractSignedTime: timestamp(c.SignedTime), RepaymentDay: c.RepaymentDay,
		}
		if c.State == Terminated {
			cc.ContractTerminatedTime, cc.ContractTerminationMode = timestamp(c.TerminatedTime), terminationMode
			cc.ContractTerminationRemark = c.TerminationRemark
		}
		v = struct {
			Info creditContract `json:"contract_info"`
		}{cc}
	} else {
		pc := papayContract{
			ContractID: c.ContractID, OutContractCode: c.OutContractCode, ContractDisplayAccount: c.DisplayName,
			ContractState: papayStates[c.State], ContractSignedTime: timestamp(c.SignedTime),
		}
		pc.PlanID, _ = strconv.ParseInt(c.PlanID, 10, 64)
		switch {
		case c.API == wxapi.PapayPartner || c.API == wxapi.GlobalPapay && c.SubMchID != "":
			pc.SpMchID, pc.SpAppID, pc.SubMchID, pc.SubAppID = s.opts.MchID, c.SpAppID, c.SubMchID, c.SubAppID
		default:
			pc.MchID, pc.AppID = s.opts.MchID, c.AppID
		}
		if c.State == Terminated {
			pc.ContractTerminateInfo = &terminateInfo{terminationMode, timestamp(c.TerminatedTime), c.TerminationRemark}
		}
		v = pc
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only strings and integers: cannot fail
	}
	return b
}
