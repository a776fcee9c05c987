package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wxterm/wxterm/internal/childproc"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/e2e"
	"github.com/wxterm/wxterm/internal/wxsim"
)

// env is what every scenario shares: the services, the binaries and the
// merchant keys the simulator and the consumers agree on.
type env struct {
	brokers   []string
	redisAddr string
	binDir    string // holds consumer, wxsim and consumer-pprof
	keysDir   string
	workDir   string // profiles and logs
	runID     string // makes topics, groups and contract codes unique
	prefix    string // dedupe key prefix of this run
	keys      *wxsim.Keys
	// lightKeysDir holds keys with the same merchant key and a smaller
	// WeChat Pay key (-sim-platform-key-bits), for simulators started with
	// startLightSim.
	lightKeys    *wxsim.Keys
	lightKeysDir string
	rdb          *redis.Client
	store        *dedupe.Store
}

func (e *env) bin(name string) string { return filepath.Join(e.binDir, name) }

// proc is a child process (the consumer or the simulator) whose CPU time and
// memory are read from /proc while it runs.
type proc struct {
	*childproc.Proc
	stdout *lineBuffer
	stderr *lineBuffer
}

// lineBuffer keeps the last lines a child wrote, for error reports and for
// parsing the replay's progress.
type lineBuffer struct {
	mu    sync.Mutex
	lines []string
	part  []byte
}

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.part = append(b.part, p...)
	for {
		i := bytes.IndexByte(b.part, '\n')
		if i < 0 {
			break
		}
		b.lines = append(b.lines, string(b.part[:i]))
		b.part = b.part[i+1:]
		if len(b.lines) > 200 {
			b.lines = b.lines[len(b.lines)-100:]
		}
	}
	return len(p), nil
}

func (b *lineBuffer) Lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := append([]string(nil), b.lines...)
	if len(b.part) > 0 {
		out = append(out, string(b.part))
	}
	return out
}

func (b *lineBuffer) tail(n int) string {
	l := b.Lines()
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func startProc(name, path string, args []string, extraEnv ...string) (*proc, error) {
	p := &proc{stdout: &lineBuffer{}, stderr: &lineBuffer{}}
	cmd := exec.Command(path, args...)
	cmd.Env = childproc.Env(extraEnv...)
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var err error
	if p.Proc, err = childproc.Start(name, cmd, nil); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return p, nil
}

// stop sends SIGTERM, waits up to timeout, then SIGKILL; a nil proc (never
// started) is fine.
func (p *proc) stop(timeout time.Duration) {
	if p != nil {
		p.Stop(timeout)
	}
}

func (p *proc) failure() error {
	return fmt.Errorf("%s exited (%v); stderr:\n%s", p.Name, p.Err(), p.stderr.tail(15))
}

// clockTick is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// cpu is the process's user+system CPU time so far, all threads.
func (p *proc) cpu() (time.Duration, error) {
	u, s, err := p.times()
	return u + s, err
}

// times is the process's user and system CPU time so far, all threads.
func (p *proc) times() (user, sys time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	// Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, 0, errors.New("malformed /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, errors.New("malformed /proc stat")
	}
	return time.Duration(ut) * clockTick, time.Duration(st) * clockTick, nil
}

// mem returns the resident set size now and its high-water mark, in bytes.
func (p *proc) mem() (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		kb := func() int64 {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n << 10
		}
		switch name {
		case "VmRSS":
			rss = kb()
		case "VmHWM":
			hwm = kb()
		}
	}
	return rss, hwm, sc.Err()
}

// sim is a running simulator process.
type sim struct {
	*proc
	url     string
	keys    *wxsim.Keys
	keysDir string // where keys are: the consumer reads the WeChat Pay public key there
	bits    int    // size of its signing key
}

// startSim runs cmd/wxsim with the shared keys (RSA-2048 on both sides) and a
// fixed latency.
func (e *env) startSim(latency time.Duration) (*sim, error) {
	return e.runSim(latency, e.keys, e.keysDir)
}

// startLightSim is startSim with the simulator signing its answers with an
// -sim-platform-key-bits key. The consumer still signs with its RSA-2048
// merchant key.
func (e *env) startLightSim(latency time.Duration) (*sim, error) {
	return e.runSim(latency, e.lightKeys, e.lightKeysDir)
}

func (e *env) runSim(latency time.Duration, keys *wxsim.Keys, keysDir string) (*sim, error) {
	addr, err := childproc.FreeAddr()
	if err != nil {
		return nil, err
	}
	p, err := startProc("wxsim", e.bin("wxsim"), []string{"-addr", addr, "-keys-dir", keysDir, "-latency", latency.String()})
	if err != nil {
		return nil, err
	}
	s := &sim{proc: p, url: "http://" + addr, keys: keys, keysDir: keysDir, bits: keys.PlatformKey.N.BitLen()}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := s.counts(); err == nil {
			return s, nil
		}
		if p.Exited() {
			return nil, p.failure()
		}
		if time.Now().After(deadline) {
			p.stop(time.Second)
			return nil, errors.New("wxsim not answering after 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *sim) counts() (wxsim.Counts, error) {
	var c wxsim.Counts
	resp, err := http.Get(s.url + "/sim/counts")
	if err != nil {
		return c, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c, fmt.Errorf("sim counts: %s", resp.Status)
	}
	err = json.NewDecoder(resp.Body).Decode(&c)
	return c, err
}

// setFaults replaces the simulator's fault profile (see cmd/wxsim).
func (s *sim) setFaults(profile string) error {
	req, err := http.NewRequest(http.MethodPut, s.url+"/sim/faults", strings.NewReader(profile))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("sim faults: %s: %s", resp.Status, b)
	}
	return nil
}

// topics names one scenario's topics and consumer group.
type topics struct {
	requests, results, dlq, group string
	partitions                    int
}

// newTopics names a scenario's topics and group and creates the topics.
func (e *env) newTopics(ctx context.Context, scenario string, partitions int) (topics, error) {
	base := "bench-" + e.runID + "-" + scenario
	t := topics{requests: base + "-requests", results: base + "-results", dlq: base + "-dlq", group: base + "-group", partitions: partitions}
	return t, e.createTopics(ctx, t)
}

// setUp starts what most scenarios run on: their topics, a simulator
// (startSim or startLightSim) at latency, and a collector of their results.
// stop closes the collector, then stops the simulator.
func (e *env) setUp(ctx context.Context, scenario string, partitions int, startSim func(time.Duration) (*sim, error), latency time.Duration) (t topics, s *sim, col *collector, stop func(), err error) {
	if t, err = e.newTopics(ctx, scenario, partitions); err != nil {
		return t, nil, nil, nil, err
	}
	if s, err = startSim(latency); err != nil {
		return t, nil, nil, nil, err
	}
	col = e.startCollector(ctx, t)
	return t, s, col, func() { col.close(); s.stop(5 * time.Second) }, nil
}

// consumerProc is a running consumer process with its HTTP address.
type consumerProc struct {
	*proc
	http string
}

// consumerArgs are the flags of a consumer on t calling the simulator s.
func (e *env) consumerArgs(t topics, s *sim, httpAddr string, extra ...string) []string {
	c := e2e.Consumer{
		Brokers: e.brokers, Redis: e.redisAddr,
		Requests: t.requests, Results: t.results, DLQ: t.dlq, Group: t.group, DedupePrefix: e.prefix,
		Keys: e.keys, MerchantKeyDir: e.keysDir, PubKeyDir: s.keysDir, WeChatURL: s.url, HTTPAddr: httpAddr,
	}
	return c.Args(append([]string{"-log-level", "warn"}, extra...)...)
}

// startConsumer runs the consumer binary (or the profiling copy, bin
// "consumer-pprof") and waits until it has joined its group.
func (e *env) startConsumer(ctx context.Context, bin string, t topics, s *sim, extraEnv []string, extra ...string) (*consumerProc, error) {
	addr, err := childproc.FreeAddr()
	if err != nil {
		return nil, err
	}
	p, err := startProc(bin, e.bin(bin), e.consumerArgs(t, s, addr, extra...), extraEnv...)
	if err != nil {
		return nil, err
	}
	c := &consumerProc{proc: p, http: "http://" + addr}
	deadline := time.Now().Add(90 * time.Second)
	for {
		if st, _ := e2e.Readyz(ctx, http.DefaultClient, addr); st == http.StatusOK {
			return c, nil
		}
		if p.Exited() {
			return nil, p.failure()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop(5 * time.Second)
			return nil, fmt.Errorf("consumer not ready after 90s; stderr:\n%s", p.stderr.tail(15))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metric sums the samples of one metric (all its label sets) on the
// consumer's /metrics; a name with labels, as in m{stage="claim"}, reads
// that series alone.
func (c *consumerProc) metric(name string) (float64, error) {
	return e2e.Metric(context.Background(), http.DefaultClient, c.http+"/metrics", name)
}

// meanCall is the mean WeChat Pay call duration the consumer measured.
func (c *consumerProc) meanCall() time.Duration {
	sum, err1 := c.metric("wxterm_wechat_call_duration_seconds_sum")
	n, err2 := c.metric("wxterm_wechat_call_duration_seconds_count")
	if err1 != nil || err2 != nil || n == 0 {
		return 0
	}
	return time.Duration(sum / n * float64(time.Second))
}

// stages is the mean time an intent spent in each step around the call
// (wxterm_stage_duration_seconds), as "claim 1.2 ms, store ...".
func (c *consumerProc) stages() string {
	var parts []string
	for _, st := range []string{"claim", "store", "publish", "mark"} {
		sum, err1 := c.metric(`wxterm_stage_duration_seconds_sum{stage="` + st + `"}`)
		n, err2 := c.metric(`wxterm_stage_duration_seconds_count{stage="` + st + `"}`)
		if err1 != nil || err2 != nil || n == 0 {
			continue
		}
		parts = append(parts, st+" "+ms(time.Duration(sum/n*float64(time.Second))))
	}
	return strings.Join(parts, ", ")
}

// sampler reads one metric of a consumer periodically.
type sampler struct {
	stop, done chan struct{}
	vals       []float64
}

func (c *consumerProc) sample(name string, every time.Duration) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				if v, err := c.metric(name); err == nil {
					s.vals = append(s.vals, v)
				}
			}
		}
	}()
	return s
}

// finish stops sampling and returns the mean and the largest sample.
func (s *sampler) finish() (mean, largest float64) {
	close(s.stop)
	<-s.done
	for _, v := range s.vals {
		mean += v
		largest = max(largest, v)
	}
	if len(s.vals) > 0 {
		mean /= float64(len(s.vals))
	}
	return mean, largest
}
