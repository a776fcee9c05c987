package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/internal/childproc"
	"github.com/wxterm/wxterm/internal/e2e"
	"github.com/wxterm/wxterm/internal/wxsim"
)

// suite holds what every scenario shares: the simulator process, clients of
// Kafka and Redis, and the child processes to clean up.
type suite struct {
	cfg    config
	runID  string // distinguishes this run's topics, groups, keys and contracts
	logDir string
	keys   string // the simulator's keys directory
	id     *wxsim.Keys
	sim    *simProc
	proxy  *callProxy // between the consumers and the simulator
	rdb    *redis.Client
	kc     *kafka.Client
	http   *http.Client

	mu    sync.Mutex
	procs map[*proc]bool // live child processes
}

func newSuite(ctx context.Context, c config) (*suite, error) {
	var b [3]byte
	_, _ = rand.Read(b[:])
	s := &suite{
		cfg: c, runID: fmt.Sprintf("%06X", b[:]),
		procs: make(map[*proc]bool),
		http:  &http.Client{Timeout: 5 * time.Second},
	}
	for _, name := range []string{"consumer", "wxsim"} {
		if _, err := os.Stat(filepath.Join(c.binDir, name)); err != nil {
			return nil, fmt.Errorf("-bin %s: %w (build cmd/%s into it)", c.binDir, err, name)
		}
	}
	if err := os.RemoveAll(c.workDir); err != nil {
		return nil, err
	}
	s.logDir = filepath.Join(c.workDir, "logs")
	s.keys = filepath.Join(c.workDir, "keys")
	if err := os.MkdirAll(s.logDir, 0o755); err != nil {
		return nil, err
	}
	s.rdb = redis.NewClient(&redis.Options{Addr: c.redis, ContextTimeoutEnabled: true,
		DialTimeout: 2 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 5 * time.Second})
	s.kc = &kafka.Client{Addr: kafka.TCP(c.kafka), Timeout: 10 * time.Second}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.rdb.Ping(pctx).Err(); err != nil {
		return s, fmt.Errorf("redis %s: %w", c.redis, err)
	}
	if _, err := s.kc.Metadata(pctx, &kafka.MetadataRequest{}); err != nil {
		return s, fmt.Errorf("kafka %s: %w", c.kafka, err)
	}
	sim, err := s.startSim(ctx)
	if err != nil {
		return s, err
	}
	s.sim = sim
	if s.proxy, err = startProxy(sim.url); err != nil {
		return s, err
	}
	if s.id, err = wxsim.ReadKeys(s.keys); err != nil {
		return s, err
	}
	return s, nil
}

// close kills every child process still running.
func (s *suite) close() {
	s.mu.Lock()
	procs := make([]*proc, 0, len(s.procs))
	for p := range s.procs {
		procs = append(procs, p)
	}
	s.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
	if s.proxy != nil {
		s.proxy.close()
	}
	if s.rdb != nil {
		_ = s.rdb.Close()
	}
}

// proc is a child process whose stderr and stdout go to a log file.
type proc struct {
	*childproc.Proc
	log string
}

func (s *suite) spawn(name, logName string, args ...string) (*proc, error) {
	logPath := filepath.Join(s.logDir, logName)
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(s.cfg.binDir, name), args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = procAttr()
	p := &proc{log: logPath}
	s.mu.Lock() // held until p is listed, so that onExit finds it
	defer s.mu.Unlock()
	p.Proc, err = childproc.Start(logName, cmd, func() {
		f.Close()
		s.mu.Lock()
		delete(s.procs, p)
		s.mu.Unlock()
	})
	if err != nil {
		f.Close()
		return nil, err
	}
	s.procs[p] = true
	return p, nil
}

// tail returns the last n lines of the process's log.
func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// tailFrom returns up to n lines of the log from the first line that
// starts with prefix, or its last n lines if there is none.
func (p *proc) tailFrom(prefix string, n int) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return strings.Join(lines[i:min(i+n, len(lines))], "\n")
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// firstLines joins the non-empty lines of s with " / ".
func firstLines(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, " / ")
}

// simProc is the WeChat Pay simulator process, shared by all scenarios:
// every scenario's contracts have their own codes.
type simProc struct {
	*proc
	url string
}

func (s *suite) startSim(ctx context.Context) (*simProc, error) {
	addr, err := childproc.FreeAddr()
	if err != nil {
		return nil, err
	}
	p, err := s.spawn("wxsim", "wxsim.log", "-addr", addr, "-keys-dir", s.keys)
	if err != nil {
		return nil, err
	}
	sim := &simProc{proc: p, url: "http://" + addr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := s.simCounts(ctx, sim); err == nil {
			return sim, nil
		}
		if done, perr := p.ExitedOnItsOwn(); done {
			return nil, fmt.Errorf("wxsim exited: %v\n%s", perr, p.tail(20))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("wxsim not answering on %s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *suite) simCounts(ctx context.Context, sim *simProc) (wxsim.Counts, error) {
	if sim == nil {
		sim = s.sim
	}
	var c wxsim.Counts
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, sim.url+"/sim/counts", nil)
	resp, err := s.http.Do(req)
	if err != nil {
		return c, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c, fmt.Errorf("GET /sim/counts: %s", resp.Status)
	}
	return c, json.NewDecoder(resp.Body).Decode(&c)
}

// simFaults replaces the simulator's fault profile (PUT /sim/faults).
func (s *suite) simFaults(ctx context.Context, profile string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, s.sim.url+"/sim/faults", strings.NewReader(profile))
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("PUT /sim/faults %s: %w", profile, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("PUT /sim/faults %s: %s %s", profile, resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

// consumerProc is one consumer process.
type consumerProc struct {
	*proc
	httpAddr string
}

// startConsumer starts a consumer process for the scenario; extra flags
// come last and override the defaults.
func (r *runCtx) startConsumer(extra ...string) (*consumerProc, error) {
	s := r.s
	addr, err := childproc.FreeAddr()
	if err != nil {
		return nil, err
	}
	r.nconsumers++
	name := fmt.Sprintf("c%d", r.nconsumers)
	// Its own door into the proxy, so that its calls are told apart.
	wxURL, err := s.proxy.endpoint(name)
	if err != nil {
		return nil, err
	}
	args := r.consumerArgs(addr, wxURL)
	args = append(args, strings.Fields(s.cfg.consumerArgs)...)
	args = append(args, extra...)
	p, err := s.spawn("consumer", fmt.Sprintf("%02d-%s-%s.log", r.idx, r.name, name), args...)
	if err != nil {
		return nil, err
	}
	c := &consumerProc{proc: p, httpAddr: addr}
	c.proc.Name = name
	r.consumers = append(r.consumers, c)
	r.notef("%s started (%s)", name, addr)
	return c, nil
}

// consumerArgs are the flags of every consumer process of the scenario.
func (r *runCtx) consumerArgs(httpAddr, wxURL string) []string {
	s := r.s
	c := e2e.Consumer{
		Brokers: strings.Split(s.cfg.kafka, ","), Redis: s.cfg.redis,
		Requests: r.reqTopic, Results: r.resTopic, DLQ: r.dlqTopic, Group: r.group, DedupePrefix: r.prefix,
		Keys: s.id, MerchantKeyDir: s.keys, PubKeyDir: s.keys, WeChatURL: wxURL, HTTPAddr: httpAddr,
	}
	return c.Args(
		"-wechatpay-timeout", "3s",
		"-log-level", "warn",
		"-lease", "5s",
		"-session-timeout", "6s", "-heartbeat-interval", "1s",
		"-retry-initial", "50ms", "-retry-max", "500ms", "-retry-max-elapsed", "90s",
		"-shutdown-timeout", "5s",
		"-systemic-probe-interval", "1s",
	)
}

// runConsumerOnce runs the consumer binary to its end (a replay) with the
// scenario's flags and extra ones, and returns its standard output.
func (r *runCtx) runConsumerOnce(ctx context.Context, name string, d time.Duration, extra ...string) (string, error) {
	addr, err := childproc.FreeAddr()
	if err != nil {
		return "", err
	}
	wxURL, err := r.s.proxy.endpoint(name)
	if err != nil {
		return "", err
	}
	args := append(r.consumerArgs(addr, wxURL), strings.Fields(r.s.cfg.consumerArgs)...)
	args = append(args, extra...)
	p, err := r.s.spawn("consumer", fmt.Sprintf("%02d-%s-%s.log", r.idx, r.name, name), args...)
	if err != nil {
		return "", err
	}
	select {
	case <-p.Done():
	case <-time.After(d):
		p.Kill()
		return "", fmt.Errorf("%w: consumer %s still running after %s", errTimeout, name, d)
	case <-ctx.Done():
		p.Kill()
		return "", ctx.Err()
	}
	out, _ := os.ReadFile(p.log)
	if p.Err() != nil {
		return string(out), fmt.Errorf("consumer %s: %v: %s", name, p.Err(), firstLines(p.tail(6)))
	}
	return string(out), nil
}

// readyz returns /readyz's status and body (status 0: no answer).
func (c *consumerProc) readyz(ctx context.Context, hc *http.Client) (int, string) {
	return e2e.Readyz(ctx, hc, c.httpAddr)
}

// metric sums the samples of a metric family on c's /metrics (0: no
// sample; -1: no answer).
func (c *consumerProc) metric(ctx context.Context, hc *http.Client, name string) float64 {
	v, err := e2e.Metric(ctx, hc, "http://"+c.httpAddr+"/metrics", name)
	switch {
	case errors.Is(err, e2e.ErrNoMetric):
		return 0
	case err != nil:
		return -1
	}
	return v
}

// waitReady waits until /readyz answers 200 (the consumer joined a group
// generation).
func (r *runCtx) waitReady(ctx context.Context, c *consumerProc, d time.Duration) error {
	deadline := time.Now().Add(d)
	var last string
	for {
		st, body := c.readyz(ctx, r.s.http)
		if st == http.StatusOK {
			return nil
		}
		last = body
		if done, err := c.ExitedOnItsOwn(); done {
			return fmt.Errorf("%s exited: %v\n%s", c.Name, err, c.tail(20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %s", c.Name, d, last)
		}
		if !sleep(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// ctl runs a service control script (scripts/kafka.sh, scripts/redis.sh).
func (s *suite) ctl(ctx context.Context, script, verb string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, verb)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", script, verb, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// createTopics creates the topics, each with the suite's partitions, and
// waits until every partition has a leader.
func (s *suite) createTopics(ctx context.Context, topics ...string) error {
	cfgs := make([]kafka.TopicConfig, len(topics))
	for i, t := range topics {
		cfgs[i] = e2e.Topic(t, s.cfg.partitions)
	}
	return e2e.CreateTopics(ctx, s.kc, cfgs...)
}

// retry runs op until it succeeds, for up to 15 s: the suite's own Kafka
// client may hold connections to a broker that was just restarted.
func retry[T any](ctx context.Context, op func() (T, error)) (T, error) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		v, err := op()
		if err == nil || time.Now().After(deadline) || !sleep(ctx, 300*time.Millisecond) {
			return v, err
		}
	}
}

// endOffsets returns each partition's high watermark.
func (s *suite) endOffsets(ctx context.Context, topic string) (map[int]int64, error) {
	return retry(ctx, func() (map[int]int64, error) { return s.endOffsetsOnce(ctx, topic) })
}

func (s *suite) endOffsetsOnce(ctx context.Context, topic string) (map[int]int64, error) {
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for p := range s.cfg.partitions {
		req.Topics[topic] = append(req.Topics[topic], kafka.LastOffsetOf(p))
	}
	resp, err := s.kc.ListOffsets(ctx, req)
	if err != nil {
		return nil, err
	}
	out := make(map[int]int64)
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("list offsets %s/%d: %w", topic, po.Partition, po.Error)
		}
		out[po.Partition] = po.LastOffset
	}
	if len(out) != s.cfg.partitions {
		return nil, fmt.Errorf("list offsets %s: %d of %d partitions", topic, len(out), s.cfg.partitions)
	}
	return out, nil
}

// committed returns the group's committed offset of each partition (-1:
// none).
func (s *suite) committed(ctx context.Context, group, topic string) (map[int]int64, error) {
	return retry(ctx, func() (map[int]int64, error) { return s.committedOnce(ctx, group, topic) })
}

func (s *suite) committedOnce(ctx context.Context, group, topic string) (map[int]int64, error) {
	parts := make([]int, s.cfg.partitions)
	for i := range parts {
		parts[i] = i
	}
	resp, err := s.kc.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		return nil, err
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	out := make(map[int]int64)
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return nil, p.Error
		}
		out[p.Partition] = p.CommittedOffset
	}
	return out, nil
}

// sleep waits d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
