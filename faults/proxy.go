package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/wxterm/wxterm/internal/wxapi"
)

// callProxy stands between the consumers and the simulator and passes every
// call through unchanged (headers, body and signatures; a connection the
// simulator drops is dropped), recording what the simulator's counters
// cannot tell: which terminate calls WeChat Pay refused because the contract
// was already terminated. Such a call is a second terminate, whatever else
// happened; calls that failed before taking effect (an injected 5xx, a kill
// mid-request) are legitimately retried and do not count.
type callProxy struct {
	url  string // the endpoint of callers without a name
	rp   *httputil.ReverseProxy
	srvs []*http.Server

	mu       sync.Mutex
	refused  map[string]int    // simulator key → terminate calls refused as already terminated
	timeline map[string][]call // simulator key → its calls, in the order they ended
}

// tracked is a call in flight, carried in the outgoing request's context.
type tracked struct {
	key string
	c   call
}

// call is one terminate or query as the proxy saw it.
type call struct {
	client     string // which consumer (its endpoint's name)
	op         string // terminate or query
	start, end time.Time
	outcome    string // HTTP status, WeChat code or contract state, or the error
}

// answered reports whether WeChat's answer settles the call's outcome (not
// a network error nor a 5xx, after which the call may or may not apply).
func (c call) answered() bool {
	return !strings.HasPrefix(c.outcome, "error") && !strings.HasPrefix(c.outcome, "5")
}

// showsTerminated reports whether the answer said the contract is terminated.
func (c call) showsTerminated() bool {
	if c.op == "terminate" {
		return strings.HasPrefix(c.outcome, "2")
	}
	return strings.HasSuffix(c.outcome, "TERMINATED")
}

// showsEffective reports whether a query found the contract effective.
func (c call) showsEffective() bool {
	return c.op == "query" && strings.HasPrefix(c.outcome, "200") && !c.showsTerminated()
}

// judgeRefusal explains a terminate refused as already terminated, given
// the contract's calls: it is a late effect of an earlier call whose outcome
// was unknown (it ended without an answer, was applied by WeChat after the
// caller gave up, and a query in between found the contract still
// effective), or, if not, a second terminate that should not have been sent.
func judgeRefusal(calls []call, refused call) (late bool) {
	var unknown time.Time // start of the latest terminate without an answer
	effectiveSince := false
	for _, c := range calls {
		if !c.end.Before(refused.start) {
			continue
		}
		switch {
		case c.showsTerminated():
			return false // known terminated before the call
		case c.op == "terminate" && !c.answered():
			if c.start.After(unknown) {
				unknown, effectiveSince = c.start, false
			}
		case c.showsEffective() && c.start.After(unknown):
			effectiveSince = true
		}
	}
	return !unknown.IsZero() && effectiveSince
}

// refusedAsTerminated reports whether a terminate's error answer is
// WeChat Pay refusing a contract that is not effective: the simulator's 400
// INVALID_REQUEST for credit_repayment and papay (already terminated, or
// TERMINATE_PENDING), and global papay's documented 403 CONTRACT_NOT_EXIST
// ("cannot be found or has been terminated": for a contract that does not
// exist too; the checks know which contracts those are).
func refusedAsTerminated(op string, status int, code, msg string) bool {
	if op != "terminate" {
		return false
	}
	return status == http.StatusBadRequest && code == wxapi.CodeInvalidRequest && strings.Contains(msg, "already terminated") ||
		status == http.StatusForbidden && code == wxapi.CodeContractNotExist
}

func (c call) String() string {
	return fmt.Sprintf("%s %s %s +%dms %s", c.start.Format("15:04:05.000"), c.client, c.op, c.end.Sub(c.start).Milliseconds(), c.outcome)
}

type (
	proxyKey    struct{}
	proxyClient struct{}
)

func startProxy(simURL string) (*callProxy, error) {
	target, err := url.Parse(simURL)
	if err != nil {
		return nil, err
	}
	p := &callProxy{refused: make(map[string]int), timeline: make(map[string][]call)}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			key, op := callKey(pr.Out)
			pr.SetURL(target)
			if key != "" {
				client, _ := pr.In.Context().Value(proxyClient{}).(string)
				t := &tracked{key: key, c: call{client: client, op: op, start: time.Now()}}
				pr.Out = pr.Out.WithContext(context.WithValue(pr.Out.Context(), proxyKey{}, t))
			}
		},
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     30 * time.Second,
		},
		ModifyResponse: func(resp *http.Response) error {
			t, _ := resp.Request.Context().Value(proxyKey{}).(*tracked)
			if t == nil {
				return nil
			}
			outcome := resp.Status
			if t.c.op == "query" && resp.StatusCode == http.StatusOK {
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				resp.Body = io.NopCloser(bytes.NewReader(b))
				if err != nil {
					return err
				}
				// The domestic APIs answer contract_state, global papay
				// state (wxapi's golden tests name the pages).
				var st struct {
					State       string `json:"contract_state"`
					GlobalState string `json:"state"`
				}
				_ = json.Unmarshal(b, &st)
				outcome += " " + cmp.Or(st.State, st.GlobalState)
			}
			if resp.StatusCode >= 300 {
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				resp.Body = io.NopCloser(bytes.NewReader(b))
				if err != nil {
					return err
				}
				var e struct{ Code, Message string }
				if json.Unmarshal(b, &e) == nil && e.Code != "" {
					outcome += " " + e.Code
					if refusedAsTerminated(t.c.op, resp.StatusCode, e.Code, e.Message) {
						outcome += " (already terminated)"
						p.mu.Lock()
						p.refused[t.key]++
						p.mu.Unlock()
					}
				}
			}
			p.done(t, outcome)
			return nil
		},
		// The simulator dropped the connection or never answered: drop the
		// client's too, rather than answer 502, so the fault stays the same.
		ErrorHandler: func(_ http.ResponseWriter, r *http.Request, err error) {
			if t, _ := r.Context().Value(proxyKey{}).(*tracked); t != nil {
				p.done(t, "error: "+err.Error())
			}
			panic(http.ErrAbortHandler)
		},
		ErrorLog: discardLog,
	}
	url, err := p.endpoint("")
	if err != nil {
		return nil, err
	}
	p.url = url
	return p, nil
}

// endpoint opens a listener whose calls are recorded as client's.
func (p *callProxy) endpoint(client string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), proxyClient{}, client)))
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: discardLog}
	p.mu.Lock()
	p.srvs = append(p.srvs, srv)
	p.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), nil
}

// done files a finished call.
func (p *callProxy) done(t *tracked, outcome string) {
	t.c.end, t.c.outcome = time.Now(), outcome
	p.mu.Lock()
	p.timeline[t.key] = append(p.timeline[t.key], t.c)
	p.mu.Unlock()
}

var discardLog = log.New(io.Discard, "", 0)

// callKey returns the simulator key a terminate or query names (the
// out_contract_code, or the contract_id for global_papay) and which of the
// two it is, or "" for any other request. It leaves the body readable.
func callKey(r *http.Request) (key, op string) {
	terminate := r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/terminate")
	op = "query"
	if terminate {
		op = "terminate"
	} else if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/v3/") {
		return "", ""
	}
	seg := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	for i, s := range seg {
		if (s == "out-contract-code" || (s == "contracts" && i >= 2 && seg[i-1] == "papay" && seg[i-2] == "global")) && i+1 < len(seg) {
			return seg[i+1], op
		}
	}
	if !terminate {
		return seg[len(seg)-1], op // credit_repayment: /v3/credit-repayment/partner/contracts/{code}
	}
	// credit_repayment: the code is in the body.
	b, err := io.ReadAll(r.Body)
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(b))
	if err != nil {
		return "", ""
	}
	var body struct {
		OutContractCode string `json:"out_contract_code"`
	}
	_ = json.Unmarshal(b, &body)
	return body.OutContractCode, op
}

// timelineOf returns the calls of key.
func (p *callProxy) timelineOf(key string) []call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]call(nil), p.timeline[key]...)
}

// refusedSnapshot copies the refusal counts.
func (p *callProxy) refusedSnapshot() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.refused))
	for k, v := range p.refused {
		out[k] = v
	}
	return out
}

func (p *callProxy) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	p.mu.Lock()
	srvs := p.srvs
	p.mu.Unlock()
	for _, srv := range srvs {
		_ = srv.Shutdown(ctx)
	}
}
