package wxsim_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/notify"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/wxapi"
	"github.com/wxterm/wxterm/internal/wxsim"
)

// A user's termination marks the contract terminated by the user and
// delivers one notification, retried until accepted; a contract already
// terminated (by our call, say) is not terminated again and nothing is sent.
func TestTerminateAndNotify(t *testing.T) {
	n, k := newNotifier(t, 0.0001)
	sdk, err := notify.NewRSANotifyHandler(notifAPIv3Key, verifiers.NewSHA256WithRSAPubkeyVerifier(k.PublicKeyID, k.PlatformKey.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var ids []string
	var modes []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		content := map[string]any{}
		req, err := sdk.ParseNotifyRequest(context.Background(), r, &content)
		if err != nil {
			t.Errorf("parse: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		ids = append(ids, req.ID)
		if len(ids) == 1 {
			w.WriteHeader(http.StatusInternalServerError) // WeChat Pay retries
			return
		}
		info, _ := content["contract_terminate_info"].(map[string]any)
		modes = append(modes, info["contract_termination_mode"].(string))
	}))
	defer recv.Close()

	opts := k.SimOptions()
	sim := wxsim.New(opts)
	sim.Seed(wxsim.Contract{API: wxapi.PapayDirect, OutContractCode: "U1", PlanID: "12535"})
	sim.Seed(wxsim.Contract{API: wxapi.PapayDirect, OutContractCode: "U2", PlanID: "12535", State: wxsim.Terminated})

	tm, ok, err := sim.TerminateAndNotify(context.Background(), n, recv.URL, "U1")
	if !ok || err != nil {
		t.Fatalf("got ok %v, err %v; want a termination", ok, err)
	}
	c, _ := sim.Contract("U1")
	if c.State != wxsim.Terminated || c.TerminatedBy != wxsim.ByUser || sim.TerminateCalls("U1") != 0 {
		t.Fatalf("got %+v, %d terminate calls; want terminated by the user without a call", c, sim.TerminateCalls("U1"))
	}
	if tm.EventType != event.NotifyEntrustTerminate || tm.Delivery.Attempts != 2 || len(ids) != 2 || ids[0] != tm.NotificationID || ids[1] != tm.NotificationID {
		t.Fatalf("got %+v, deliveries %v; want ENTRUST.TERMINATE delivered twice under one id", tm, ids)
	}
	if len(modes) != 1 || modes[0] != "USER_TERMINATE" {
		t.Fatalf("got modes %v; want USER_TERMINATE", modes)
	}
	for _, key := range []string{"U1", "U2", "UNKNOWN"} {
		if _, ok, err := sim.TerminateAndNotify(context.Background(), n, recv.URL, key); ok || err != nil {
			t.Errorf("%s: got ok %v, err %v; want nothing to terminate", key, ok, err)
		}
	}
	if len(ids) != 2 {
		t.Fatalf("got %d deliveries; want no more", len(ids))
	}

	// The simulator's own endpoint does the same for a separate process.
	sim.Seed(wxsim.Contract{API: wxapi.PapayDirect, OutContractCode: "U3", PlanID: "12535"})
	sim.ServeUserTerminations(n, recv.URL)
	srv := httptest.NewServer(sim)
	defer srv.Close()
	for _, c := range []struct {
		key    string
		status int
	}{{"U3", http.StatusAccepted}, {"U3", http.StatusConflict}} {
		resp, err := http.Post(srv.URL+wxsim.PathUserTerminate+"?key="+c.key, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var body struct{ ID string }
		_ = json.Unmarshal(b, &body)
		if resp.StatusCode != c.status || (c.status == http.StatusAccepted && !strings.Contains(string(b), `"id"`)) {
			t.Errorf("%s: got %d %s; want %d", c.key, resp.StatusCode, b, c.status)
		}
	}
}
