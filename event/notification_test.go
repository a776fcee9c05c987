package event

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNormaliseTerminationMode(t *testing.T) {
	tests := []struct {
		raw  string
		want TerminationMode
	}{
		{"USER_TERMINATE", ModeUser},
		{"TERMINATION_MODE_BY_USER", ModeUser},
		{"USER", ModeUser},
		{"MCH_API_TERMINATE", ModeMerchant},
		{"API", ModeMerchant},
		{"WEPAY_WEB_TERMINATE", ModeMerchant},
		{"TERMINATION_MODE_BY_MERCHANT", ModeMerchant},
		{"MERCHANT", ModeMerchant},
		{"CUSTOMER_SERVICE_TERMINATE", ModeCustomerService},
		{"TERMINATION_MODE_BY_CUSTOMER_SERVICE", ModeCustomerService},
		{"PLATFORM", ModePlatform},
		{"SYSTEM_TERMINATE", ModeSystem},
		{"TERMINATION_MODE_INVALID", ModeUnknown},
		{"", ModeUnknown},
		{"user_terminate", ModeUnknown},
	}
	for _, tt := range tests {
		if got := NormaliseTerminationMode(tt.raw); got != tt.want {
			t.Errorf("NormaliseTerminationMode(%q) = %q; want %q", tt.raw, got, tt.want)
		}
	}
}

func TestNotificationKindOf(t *testing.T) {
	tests := []struct {
		eventType string
		want      NotificationKind
		ok        bool
	}{
		{NotifyEntrustTerminate, KindTermination, true},
		{NotifyCreditTerminate, KindTermination, true},
		{NotifyPapayTerminate, KindTermination, true},
		{NotifyEntrustSign, KindSigning, true},
		{NotifyCreditSign, KindSigning, true},
		{NotifyPapaySign, KindSigning, true},
		{"TRANSACTION.SUCCESS", "", false},
		{"ENTRUST.TERMINATE_RETENTION", "", false},
	}
	for _, tt := range tests {
		got, ok := NotificationKindOf(tt.eventType)
		if got != tt.want || ok != tt.ok {
			t.Errorf("NotificationKindOf(%q) = %q, %v; want %q, %v", tt.eventType, got, ok, tt.want, tt.ok)
		}
	}
}

func validNotification() Notification {
	return Notification{
		SchemaVersion: SchemaVersion, ID: "EV-1", EventType: NotifyPapayTerminate, Kind: KindTermination,
		CreateTime: time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC), ReceivedAt: time.Date(2026, 11, 22, 8, 0, 1, 0, time.UTC),
		MchID: "10000091", API: GlobalPapay, OutContractCode: "100001256", ContractID: "Wx1", PlanID: "123",
		SubMchID: "10000097", TerminationMode: ModeUser, RawTerminationMode: "USER", TerminatedTime: "2026-11-22T16:00:00+08:00",
		Resource: json.RawMessage(`{"out_contract_code":"100001256"}`),
	}
}

func TestNotificationRoundTrip(t *testing.T) {
	n := validNotification()
	b, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeNotification(b)
	if err != nil {
		t.Fatalf("DecodeNotification: %v", err)
	}
	if got.ID != n.ID || got.OutContractCode != n.OutContractCode || got.TerminationMode != n.TerminationMode ||
		!got.CreateTime.Equal(n.CreateTime) || string(got.Resource) != string(n.Resource) {
		t.Errorf("round trip: got %+v; want %+v", got, n)
	}
}

func TestValidateNotificationRejects(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(n *Notification)
		want   string // substring of the detail
	}{
		{"no id", func(n *Notification) { n.ID = "" }, "/id"},
		// Review of issue 14: dedupe refuses notification:<id> with white
		// space for good, which blocked the partition.
		{"id with a space", func(n *Notification) { n.ID = "EV 1" }, "/id"},
		{"id with a tab", func(n *Notification) { n.ID = "EV\t1" }, "/id"},
		{"id over 64 characters", func(n *Notification) { n.ID = strings.Repeat("a", 65) }, "/id"},
		{"unknown event type", func(n *Notification) { n.EventType = "TRANSACTION.SUCCESS" }, "/event_type"},
		{"unknown api", func(n *Notification) { n.API = "papay_magic" }, "/api"},
		{"no out_contract_code", func(n *Notification) { n.OutContractCode = "" }, "/out_contract_code"},
		{"termination without mode", func(n *Notification) { n.TerminationMode = "" }, "termination_mode"},
		{"unknown mode", func(n *Notification) { n.TerminationMode = "aliens" }, "/termination_mode"},
		{"resource not an object", func(n *Notification) { n.Resource = json.RawMessage(`"x"`) }, "/resource"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := validNotification()
			tt.mutate(&n)
			b, err := json.Marshal(n)
			if err != nil {
				t.Fatal(err)
			}
			err = ValidateNotification(b)
			var ie *InvalidNotificationError
			if !errors.As(err, &ie) || !strings.Contains(ie.Detail, tt.want) {
				t.Errorf("ValidateNotification = %v; want an *InvalidNotificationError naming %q", err, tt.want)
			}
		})
	}
}

// Review of issue 14: DecodeNotification trusted kind, so a signing
// notification labelled a termination was handled as one.
func TestDecodeNotificationChecksKind(t *testing.T) {
	tests := []struct {
		name      string
		eventType string
		kind      NotificationKind
		ok        bool
	}{
		{"termination", NotifyEntrustTerminate, KindTermination, true},
		{"signing", NotifyEntrustSign, KindSigning, true},
		{"signing said to be a termination", NotifyEntrustSign, KindTermination, false},
		{"termination said to be a signing", NotifyCreditTerminate, KindSigning, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := validNotification()
			n.EventType, n.Kind = tt.eventType, tt.kind
			b, _ := json.Marshal(n)
			_, err := DecodeNotification(b)
			var ie *InvalidNotificationError
			if tt.ok && err != nil || !tt.ok && (!errors.As(err, &ie) || !strings.Contains(ie.Detail, "kind")) {
				t.Errorf("DecodeNotification(%s, kind %s) = %v; want ok %v", tt.eventType, tt.kind, err, tt.ok)
			}
		})
	}
}

func TestNotificationIDsOfWeChatPayAreValid(t *testing.T) {
	for _, id := range []string{"EV-2018022511223320873", "2646bee0-aef8-5804-9752-ef1a56170fdf"} { // seed 003
		n := validNotification()
		n.ID = id
		b, _ := json.Marshal(n)
		if err := ValidateNotification(b); err != nil {
			t.Errorf("ValidateNotification(id %q) = %v; want nil", id, err)
		}
	}
}

func TestSigningNotificationNeedsNoMode(t *testing.T) {
	n := validNotification()
	n.EventType, n.Kind, n.TerminationMode, n.RawTerminationMode, n.TerminatedTime = NotifyPapaySign, KindSigning, "", "", ""
	b, _ := json.Marshal(n)
	if err := ValidateNotification(b); err != nil {
		t.Errorf("ValidateNotification(signing) = %v; want nil", err)
	}
}

func TestNotificationRequestIDIsStable(t *testing.T) {
	a, b := validNotification(), validNotification()
	b.ReceivedAt = b.ReceivedAt.Add(time.Hour) // a retry, received later
	if a.RequestID() != b.RequestID() || EventID(a.RequestID(), a.OutContractCode, TypeTerminated) != EventID(b.RequestID(), b.OutContractCode, TypeTerminated) {
		t.Errorf("request ids %q and %q differ for one notification", a.RequestID(), b.RequestID())
	}
	c := validNotification()
	c.ID = "EV-2"
	if a.RequestID() == c.RequestID() {
		t.Errorf("two notifications share request id %q", a.RequestID())
	}
}
