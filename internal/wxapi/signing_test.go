package wxapi

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core/auth"
	"golang.org/x/sync/errgroup"
)

// countingSigner records how many of its signatures run at once.
type countingSigner struct {
	now, peak, calls atomic.Int32
}

func (c *countingSigner) Sign(ctx context.Context, message string) (*auth.SignatureResult, error) {
	c.calls.Add(1)
	n := c.now.Add(1)
	for {
		p := c.peak.Load()
		if n <= p || c.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(2 * time.Millisecond)
	c.now.Add(-1)
	return &auth.SignatureResult{Signature: "sig:" + message}, nil
}

func (c *countingSigner) Algorithm() string { return "SHA256-RSA2048" }

func TestSigningBoundedByCPUs(t *testing.T) {
	fake := new(countingSigner)
	s := stateSigner{fake}
	n := 8 * cap(signing)
	var g errgroup.Group
	for i := range n {
		g.Go(func() error {
			msg := string(rune('a' + i%26))
			res, err := s.Sign(context.Background(), msg)
			if err == nil && res.Signature != "sig:"+msg {
				err = errors.New("wrong signature " + res.Signature)
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if got := fake.calls.Load(); got != int32(n) {
		t.Fatalf("%d signatures made, want %d", got, n)
	}
	if p := fake.peak.Load(); p > int32(cap(signing)) {
		t.Fatalf("%d signatures at once, want at most %d (GOMAXPROCS)", p, cap(signing))
	}
	if len(signing) != 0 {
		t.Fatalf("%d signing places still held", len(signing))
	}
}

func TestSigningWaitEndsWithContext(t *testing.T) {
	for range cap(signing) {
		signing <- struct{}{}
	}
	defer func() {
		for range cap(signing) {
			<-signing
		}
	}()
	fake := new(countingSigner)
	st := new(callState)
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), callStateKey{}, st), 20*time.Millisecond)
	defer cancel()
	_, err := stateSigner{fake}.Sign(ctx, "m")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's deadline", err)
	}
	if fake.calls.Load() != 0 {
		t.Fatal("signed although the context ended while waiting")
	}
	if st.signErr != nil {
		t.Fatalf("a context that ended while waiting was recorded as a signing failure: %v", st.signErr)
	}
}
