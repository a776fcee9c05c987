package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxterm/wxterm/internal/wxapi"
	"github.com/wxterm/wxterm/internal/wxsim"
)

// The standalone simulator shares its keys through -keys-dir, so a client
// built from the saved files (as a consumer process would) is accepted, and
// faults set over HTTP take effect.
func TestStandaloneSimulator(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- runMain(ctx, []string{"-addr", "127.0.0.1:0", "-keys-dir", dir}, out, out) }()
	defer func() { cancel(); <-done }()
	var base string
	for i := 0; i < 100 && base == ""; i++ {
		if m := regexp.MustCompile(`http://\S+`).FindString(out.String()); m != "" {
			base = m
		}
		time.Sleep(20 * time.Millisecond)
	}
	if base == "" {
		t.Fatalf("no listen address printed: %q", out.String())
	}
	keys, err := wxsim.ReadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	client, err := wxapi.New(keys.ClientConfig(base))
	if err != nil {
		t.Fatal(err)
	}
	req := wxapi.Request{API: wxapi.CreditRepayment, OutContractCode: "SA1", Remark: "r"}
	if _, err := client.Terminate(ctx, req); err != nil {
		t.Fatalf("terminate through the saved keys: %v", err)
	}

	put, _ := http.NewRequest(http.MethodPut, base+"/sim/faults", strings.NewReader(`{"rate":1,"kinds":["sign_error"]}`))
	resp, err := http.DefaultClient.Do(put)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("put faults: %v %v", resp, err)
	}
	req.OutContractCode = "SA2"
	if _, err := client.Terminate(ctx, req); wxapi.Classify(err) != wxapi.Systemic {
		t.Errorf("with sign_error faults: got %v; want a systemic error", err)
	}
	bad, _ := http.NewRequest(http.MethodPut, base+"/sim/faults", strings.NewReader(`{"kinds":["meteor"]}`))
	if resp, err := http.DefaultClient.Do(bad); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown fault kind: got %v %v; want 400", resp, err)
	}

	resp, err = http.Get(base + "/sim/counts")
	if err != nil {
		t.Fatal(err)
	}
	var c wxsim.Counts
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatal(err)
	}
	if c.TerminateCalls != 2 || c.Terminations["SA1"] != 1 || c.Calls["SA2"] != 1 {
		t.Errorf("got counts %+v; want 2 calls, SA1 terminated once", c)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
