package testenv

import (
	"context"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// PrivateRedis starts a redis-server of the test's own on 127.0.0.1 with args
// (settings the shared test server must keep, such as a maxmemory-policy),
// stopped when the test ends, and returns its address. It skips the test when
// redis-server is not installed, unless real services are required
// (WXTERM_TEST_REDIS set, or CI=true), where it fails.
func PrivateRedis(t testing.TB, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(EnvRedis) != "" || os.Getenv("CI") == "true" {
			t.Fatalf("testenv: redis-server: %v", err)
		}
		t.Skipf("testenv: redis-server is not installed: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: reserve a port: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, append([]string{"--bind", "127.0.0.1", "--port", port,
		"--save", "", "--appendonly", "no", "--dir", t.TempDir()}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start redis-server: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return addr
		}
		if i == 100 {
			t.Fatalf("testenv: redis-server at %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond) // waiting for the server to listen, not a timed assertion
	}
}
