package wxsim

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/wxterm/wxterm/event"
)

// PathUserTerminate is the simulator's own endpoint (not WeChat Pay's) that
// terminates a contract as its user would in WeChat and then notifies the
// merchant: POST PathUserTerminate?key=<out_contract_code or contract_id>.
// ServeUserTerminations enables it.
const PathUserTerminate = "/sim/user-terminate"

// UserTermination is a contract its user terminated and the notification
// WeChat Pay sent about it.
type UserTermination struct {
	Contract       Contract
	NotificationID string // the notification's id: every delivery carries it
	EventType      string
	Delivery       NotificationDelivery
}

// TerminateByUser terminates the contract with that key as its user would
// in WeChat, at at, unless it is already terminated (by us,
// or by its user before): WeChat Pay then sends nothing. It reports the
// contract as it is now and whether this call terminated it.
func (s *Server) TerminateByUser(key string, at time.Time) (Contract, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.contract(key)
	if !ok {
		return Contract{}, false
	}
	c.resolve(at)
	if c.State == Terminated || c.State == TerminatePending {
		return *c, false
	}
	c.State, c.TerminatedBy, c.TerminatedTime, c.PendingUntil = Terminated, ByUser, at, time.Time{}
	return *c, true
}

// TerminateAndNotify terminates the contract with that key as its user
// (TerminateByUser) and then delivers the matching termination notification
// to url with n, signed and encrypted, retrying on n's schedule until it is
// answered 200 or 204 ("签约、解约成功后（包含用户主动解约）", webhook/v3/
// ENTRUST.TERMINATE.md). ok is false, and nothing is sent, when the
// contract does not exist or was already terminated.
func (s *Server) TerminateAndNotify(ctx context.Context, n *Notifier, url, key string) (t UserTermination, ok bool, err error) {
	t, body, ok, err := s.terminateByUser(n, key)
	if !ok || err != nil {
		return t, ok, err
	}
	t.Delivery, err = n.Deliver(ctx, url, body)
	return t, true, err
}

// ServeUserTerminations enables PathUserTerminate: each request terminates
// the contract as its user and answers 202 with the notification's id, then
// delivers the notification to url in the background, until it is accepted
// or n's schedule is spent; a contract that is unknown or already
// terminated is answered 409 and notifies nothing.
func (s *Server) ServeUserTerminations(n *Notifier, url string) {
	s.mux.HandleFunc("POST "+PathUserTerminate, func(w http.ResponseWriter, r *http.Request) {
		key := r.URL.Query().Get("key")
		t, body, ok, err := s.terminateByUser(n, key)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case !ok:
			w.WriteHeader(http.StatusConflict)
			_ = json.NewEncoder(w).Encode(map[string]string{"code": "NOT_TERMINATED", "message": "no effective contract " + strconv.Quote(key)})
			return
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		go func() { _, _ = n.Deliver(context.Background(), url, body) }()
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]string{"id": t.NotificationID, "event_type": t.EventType})
	})
}

// terminateByUser terminates key as its user and builds the notification
// about it; ok is false when there was nothing to terminate.
func (s *Server) terminateByUser(n *Notifier, key string) (t UserTermination, body []byte, ok bool, err error) {
	at := n.opts.Now()
	c, ok := s.TerminateByUser(key, at)
	if !ok {
		return t, nil, false, nil
	}
	t = UserTermination{Contract: c, NotificationID: newNotificationID(), EventType: NotificationEventType(event.API(c.API), true)}
	plan, _ := strconv.ParseInt(c.PlanID, 10, 64)
	body, err = n.NotificationBody(t.NotificationID, t.EventType, NotificationContract{
		API: event.API(c.API), MchID: s.opts.MchID, SubMchID: c.SubMchID, OutContractCode: c.OutContractCode,
		ContractID: c.ContractID, PlanID: plan, AppID: c.AppID, Time: at,
	})
	return t, body, true, err
}

// newNotificationID returns a random UUID, the form of WeChat Pay's
// notification ids (seed 003).
func newNotificationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
