package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/wxsim"
)

// brokenMchID is the second merchant of the broken-merchant scenario. It
// signs with the suite merchant's key, so once its fault clears its calls
// reach the one simulator under the suite merchant's mchid (the request
// signature does not cover the mchid attribute).
const brokenMchID = "1900000299"

// merchantRouter stands in front of the suite's proxy for one consumer:
// the healthy merchant's calls pass through, the broken merchant's are
// answered 401 SIGN_ERROR while broken is set (as WeChat Pay answers a
// merchant whose key it does not know), and passed through under the suite
// merchant's mchid once it is cleared. It counts the broken merchant's calls.
type merchantRouter struct {
	healthyID string
	next      *httputil.ReverseProxy
	broken    atomic.Bool
	calls     atomic.Int64 // the broken merchant's calls, refused or not
	srv       *http.Server
	url       string
}

func newMerchantRouter(healthyID, proxyURL string) (*merchantRouter, error) {
	u, err := url.Parse(proxyURL)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	mr := &merchantRouter{healthyID: healthyID, next: httputil.NewSingleHostReverseProxy(u), url: "http://" + ln.Addr().String()}
	mr.srv = &http.Server{Handler: mr, ReadHeaderTimeout: 5 * time.Second, ErrorLog: discardLog}
	go func() { _ = mr.srv.Serve(ln) }()
	return mr, nil
}

func (mr *merchantRouter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	if strings.Contains(auth, `mchid="`+brokenMchID+`"`) {
		mr.calls.Add(1)
		if mr.broken.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"code":"SIGN_ERROR","message":"signature verification failed"}`))
			return
		}
		r.Header.Set("Authorization", strings.Replace(auth, `mchid="`+brokenMchID+`"`, `mchid="`+mr.healthyID+`"`, 1))
	}
	mr.next.ServeHTTP(w, r)
}

func (mr *merchantRouter) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = mr.srv.Shutdown(ctx)
}

// brokenMerchantScenario: two merchants; the healthy one works alone, then
// beside the broken one (every call refused SIGN_ERROR), then the fault
// clears. The healthy merchant's rate must hold up beside the broken one,
// the broken one's calls must be at most one per probe interval (after its
// first attempts), and its intents must finish once the fault cleared.
func brokenMerchantScenario(ctx context.Context, r *runCtx) error {
	const n, brokenCount, probe = 400, 20, time.Second // probe: the suite's -systemic-probe-interval
	r.setup(n)
	// The broken merchant's intents: the first brokenCount credit_repayment
	// contracts of the workload, every message of them rewritten with its mchid.
	brokenCodes := make(map[string]bool)
	for _, in := range r.w.intents {
		if len(brokenCodes) < brokenCount && in.valid && in.primary && in.api == event.CreditRepayment {
			brokenCodes[in.code] = true
		}
	}
	var healthy, broken []kafka.Message
	for i, m := range r.w.msgs {
		if !brokenCodes[string(m.Key)] {
			healthy = append(healthy, m)
			continue
		}
		var in event.Intent
		if err := json.Unmarshal(m.Value, &in); err != nil {
			return fmt.Errorf("broken merchant's intent: %w", err)
		}
		in.MchID = brokenMchID
		raw := mustJSON(in)
		for _, it := range r.w.byCode[in.OutContractCode] {
			if string(it.raw) == string(m.Value) {
				it.raw = raw
			}
		}
		r.w.msgs[i].Value = raw
		broken = append(broken, r.w.msgs[i])
	}

	id := r.s.id
	mf := map[string]any{"default": id.MchID, "merchants": []map[string]any{
		merchantEntry(id.MchID, id.MerchantCertSerial, id.PublicKeyID, r.s.keys),
		merchantEntry(brokenMchID, id.MerchantCertSerial, id.PublicKeyID, r.s.keys),
	}}
	path := filepath.Join(r.s.logDir, fmt.Sprintf("%02d-%s-merchants.json", r.idx, r.name))
	if err := os.WriteFile(path, mustJSON(mf), 0o600); err != nil {
		return err
	}
	proxyURL, err := r.s.proxy.endpoint("c1")
	if err != nil {
		return err
	}
	mr, err := newMerchantRouter(id.MchID, proxyURL)
	if err != nil {
		return err
	}
	defer mr.close()
	if err := r.s.simFaults(ctx, `{"latency":"10ms"}`); err != nil {
		return err
	}
	c, err := r.startConsumer("-mchid", "", "-merchants-file", path,
		"-wechatpay-base-url", mr.url, "-wechatpay-backup-url", mr.url, "-wechatpay-global-url", mr.url)
	if err != nil {
		return err
	}
	if err := r.waitReady(ctx, c, 60*time.Second); err != nil {
		return err
	}

	// The healthy merchant alone: the first half of its messages.
	half := len(healthy) / 2
	rate := func(msgs []kafka.Message) (float64, error) {
		start := time.Now()
		if err := r.s.publish(ctx, r.reqTopic, msgs, 50, time.Millisecond); err != nil {
			return 0, err
		}
		if err := r.waitAnswered(ctx, msgs); err != nil {
			return 0, err
		}
		return float64(len(msgs)) / time.Since(start).Seconds(), nil
	}
	alone, err := rate(healthy[:half])
	if err != nil {
		return err
	}

	// Beside the broken merchant.
	mr.broken.Store(true)
	r.mark("merchant " + brokenMchID + " broken")
	start := time.Now()
	if err := r.s.publish(ctx, r.reqTopic, broken, 50, time.Millisecond); err != nil {
		return err
	}
	beside, err := rate(healthy[half:])
	if err != nil {
		return err
	}
	// Hold a few probe intervals more, reading /readyz.
	st, body := r.readyState(ctx, c)
	sleep(ctx, 3*probe)
	calls, held := mr.calls.Load(), time.Since(start)
	limit := int64(len(brokenCodes)) + int64(held/probe) + 1
	r.notef("healthy merchant: %.0f intents/s alone, %.0f/s beside the broken one (%.0f%%)", alone, beside, 100*beside/alone)
	r.notef("broken merchant %s: %d calls in %.1fs held (probe interval %v; limit %d: its %d contracts' first attempts + one per interval + 1)",
		brokenMchID, calls, held.Seconds(), probe, limit, len(brokenCodes))
	r.notef("/readyz while held: %d %q", st, body)
	if calls > limit {
		r.probs.add("broken merchant", "%d calls in %.1fs; want at most %d (one per %v probe interval)", calls, held.Seconds(), limit, probe)
	}
	if beside < alone/2 {
		r.probs.add("healthy merchant", "%.0f intents/s beside the broken merchant, %.0f/s alone: the broken merchant slowed it", beside, alone)
	}
	if st != http.StatusOK || !strings.Contains(body, "held: merchant "+brokenMchID) {
		r.probs.add("readiness", "/readyz with one merchant of two held: %d %q; want 200 naming the held merchant", st, body)
	}
	r.col.mu.Lock()
	for _, rec := range r.col.results {
		if rec.res != nil && brokenCodes[rec.res.OutContractCode] {
			r.probs.add("broken merchant", "request %s answered %s while its merchant was held", rec.res.RequestID, rec.res.EventType)
		}
	}
	r.col.mu.Unlock()

	// The fault clears: the broken merchant's intents finish (waitDone).
	mr.broken.Store(false)
	r.mark("merchant " + brokenMchID + " fixed")
	cleared := time.Now()
	if err := r.waitAnswered(ctx, broken); err != nil {
		return err
	}
	r.notef("broken merchant's %d contracts answered %.1fs after the fault cleared", len(brokenCodes), time.Since(cleared).Seconds())
	return nil
}

// merchantEntry is one merchant of a -merchants-file with the suite's key files.
func merchantEntry(mchID, serial, pubKeyID, dir string) map[string]any {
	return map[string]any{"mchid": mchID, "cert_serial": serial, "public_key_id": pubKeyID,
		"private_key_file": filepath.Join(dir, wxsim.FileMerchantKey), "public_key_file": filepath.Join(dir, wxsim.FilePublicKey)}
}
