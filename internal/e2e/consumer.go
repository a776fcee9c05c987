package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/wxterm/wxterm/internal/wxsim"
)

// Consumer is what a consumer run from outside (a child process, or runMain
// in a test) is pointed at: its services, topics, merchant keys and the
// WeChat Pay simulator.
type Consumer struct {
	Brokers                   []string
	Redis                     string
	Requests, Results, DLQ    string
	Group, DedupePrefix       string
	Keys                      *wxsim.Keys
	MerchantKeyDir, PubKeyDir string // where Keys.WriteFiles wrote the merchant key and the WeChat Pay public key
	WeChatURL                 string // the simulator: main, backup and global domain alike
	HTTPAddr                  string
}

// Args are the service's flags for c, with extra last (a flag given twice
// takes its last value).
func (c Consumer) Args(extra ...string) []string {
	args := []string{
		"-brokers", strings.Join(c.Brokers, ","),
		"-redis-addrs", c.Redis,
		"-request-topic", c.Requests, "-result-topic", c.Results, "-dlq-topic", c.DLQ,
		"-group", c.Group,
		"-dedupe-prefix", c.DedupePrefix,
		"-mchid", c.Keys.MchID,
		"-mch-cert-serial", c.Keys.MerchantCertSerial,
		"-mch-private-key-file", filepath.Join(c.MerchantKeyDir, wxsim.FileMerchantKey),
		"-wechatpay-public-key-id", c.Keys.PublicKeyID,
		"-wechatpay-public-key-file", filepath.Join(c.PubKeyDir, wxsim.FilePublicKey),
		"-wechatpay-base-url", c.WeChatURL, "-wechatpay-backup-url", c.WeChatURL, "-wechatpay-global-url", c.WeChatURL,
		"-http-addr", c.HTTPAddr,
	}
	return append(args, extra...)
}

// Readyz returns the status and body of a consumer's /readyz at httpAddr
// (status 0: no answer, the body then says why).
func Readyz(ctx context.Context, hc *http.Client, httpAddr string) (int, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/readyz", nil)
	if err != nil {
		return 0, err.Error()
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// WaitReady polls /readyz at httpAddr until it answers 200. It fails when ctx
// ends first, or when exited (the running service's result; nil: none to
// watch) delivers before.
func WaitReady(ctx context.Context, hc *http.Client, httpAddr string, exited <-chan error) error {
	for {
		status, body := Readyz(ctx, hc, httpAddr)
		if status == http.StatusOK {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("wait for /readyz: exited before it was ready: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("wait for /readyz: last got %d %q; want 200: %w", status, body, ctx.Err())
		case <-time.After(50 * time.Millisecond): // polling, not a timed assertion
		}
	}
}
