package wxsim_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/notify"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/wxsim"
	"github.com/wxterm/wxterm/internal/wxsim/wxsimtest"
)

const notifAPIv3Key = "0123456789abcdef0123456789abcdef"

func newNotifier(t *testing.T, scale float64) (*wxsim.Notifier, *wxsim.Keys) {
	t.Helper()
	k := wxsimtest.Keys(t)
	n, err := wxsim.NewNotifier(wxsim.NotifierOptions{PublicKeyID: k.PublicKeyID, PlatformKey: k.PlatformKey, APIv3Key: notifAPIv3Key, TimeScale: scale})
	if err != nil {
		t.Fatal(err)
	}
	return n, k
}

// The official SDK's notify handler, configured as a merchant would be,
// verifies and decrypts every notification the Notifier builds, and the
// resource carries the fields each API's page documents.
func TestNotificationsParseWithTheSDK(t *testing.T) {
	n, k := newNotifier(t, 1)
	sdk, err := notify.NewRSANotifyHandler(notifAPIv3Key, verifiers.NewSHA256WithRSAPubkeyVerifier(k.PublicKeyID, k.PlatformKey.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		api       event.API
		sub       string
		terminate bool
		eventType string
		modePath  []string // where the termination mode is in the resource
		wantMode  string
	}{
		{event.PapayPartner, "1900000109", true, event.NotifyEntrustTerminate, []string{"contract_terminate_info", "contract_termination_mode"}, "USER_TERMINATE"},
		{event.PapayDirect, "", true, event.NotifyEntrustTerminate, []string{"contract_terminate_info", "contract_termination_mode"}, "USER_TERMINATE"},
		{event.CreditRepayment, "", true, event.NotifyCreditTerminate, []string{"contract_termination_mode"}, "TERMINATION_MODE_BY_USER"},
		{event.GlobalPapay, "10000097", true, event.NotifyPapayTerminate, []string{"contract_termination_mode"}, "USER"},
		{event.PapayPartner, "1900000109", false, event.NotifyEntrustSign, nil, ""},
		{event.CreditRepayment, "", false, event.NotifyCreditSign, nil, ""},
		{event.GlobalPapay, "10000097", false, event.NotifyPapaySign, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.eventType+"/"+string(tt.api), func(t *testing.T) {
			if got := wxsim.NotificationEventType(tt.api, tt.terminate); got != tt.eventType {
				t.Fatalf("NotificationEventType = %q; want %q", got, tt.eventType)
			}
			c := wxsim.NotificationContract{API: tt.api, MchID: "1900000100", SubMchID: tt.sub, OutContractCode: "C1", ContractID: "W1", PlanID: 12535}
			body, err := n.NotificationBody("EV-1", tt.eventType, c)
			if err != nil {
				t.Fatal(err)
			}
			h, err := n.NotificationHeaders(body)
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodPost, "/notify", bytes.NewReader(body))
			req.Header = h
			var res map[string]any
			got, err := sdk.ParseNotifyRequest(context.Background(), req, &res)
			if err != nil {
				t.Fatalf("ParseNotifyRequest: %v", err)
			}
			if got.ID != "EV-1" || got.EventType != tt.eventType || got.CreateTime == nil {
				t.Errorf("got id %q, type %q, create_time %v; want EV-1, %q, set", got.ID, got.EventType, got.CreateTime, tt.eventType)
			}
			if res["out_contract_code"] != "C1" || res["plan_id"] != float64(12535) {
				t.Errorf("resource %v; want out_contract_code C1, plan_id 12535", res)
			}
			var mode any = res
			for _, k := range tt.modePath {
				m, _ := mode.(map[string]any)
				mode = m[k]
			}
			if tt.modePath != nil && mode != tt.wantMode {
				t.Errorf("termination mode %v; want %q", mode, tt.wantMode)
			}
			if tt.modePath == nil {
				if _, has := res["contract_terminate_info"]; has {
					t.Errorf("signing resource has contract_terminate_info: %v", res)
				}
			}
		})
	}
}

// Deliver retries on the (scaled) schedule until it gets 200 or 204.
func TestDeliverRetriesUntilAccepted(t *testing.T) {
	for _, final := range []int{http.StatusOK, http.StatusNoContent} {
		var calls atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch calls.Add(1) {
			case 1:
				w.WriteHeader(http.StatusInternalServerError)
			case 2:
				w.WriteHeader(http.StatusBadRequest)
			default:
				w.WriteHeader(final)
			}
		}))
		n, _ := newNotifier(t, 0.0001)
		body, err := n.NotificationBody("EV-2", event.NotifyPapayTerminate, wxsim.NotificationContract{API: event.GlobalPapay, MchID: "1", OutContractCode: "C2"})
		if err != nil {
			t.Fatal(err)
		}
		d, err := n.Deliver(context.Background(), srv.URL, body)
		srv.Close()
		if err != nil || d.Attempts != 3 || d.Statuses[2] != final {
			t.Errorf("Deliver = %+v, %v; want 3 attempts ending %d", d, err, final)
		}
	}
}

// Deliver gives up once WeChat Pay's schedule is spent: 16 attempts.
func TestDeliverGivesUpAfterTheSchedule(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	n, _ := newNotifier(t, 0.00001) // the day of retries in about a second
	body, _ := n.NotificationBody("EV-3", event.NotifyEntrustTerminate, wxsim.NotificationContract{API: event.PapayDirect, MchID: "1", OutContractCode: "C3"})
	d, err := n.Deliver(context.Background(), srv.URL, body)
	if err == nil || d.Attempts != len(wxsim.NotificationSchedule)+1 || int(calls.Load()) != d.Attempts {
		t.Errorf("Deliver = %+v, %v with %d calls; want an error after %d attempts", d, err, calls.Load(), len(wxsim.NotificationSchedule)+1)
	}
	var total time.Duration
	for _, s := range wxsim.NotificationSchedule {
		total += s
	}
	if total != 24*time.Hour+4*time.Minute {
		t.Errorf("schedule totals %s; want 24h4m (seed 003)", total)
	}
}
