// Command bench measures the consumer against real Kafka, real Redis and the
// WeChat Pay simulator, each scenario side by side with what it is compared
// to in the same run, prints a table and writes docs/benchmarks.md.
//
// Run it through scripts/bench.sh (make bench), which starts the services and
// builds the binaries:
//
//	scripts/bench.sh [-quick] [-scenarios a,b,c,d,e,rate,profile]
//
// or by hand against running services:
//
//	go run ./bench -kafka 127.0.0.1:29092 -redis 127.0.0.1:26379 -bin .cache/bin
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/wxsim"
)

type config struct {
	kafka, redis, binDir, keysDir, workDir, out, kafkaVersion string
	scenarios                                                 []string
	quick                                                     bool
	log                                                       io.Writer

	simKeyBits              int
	aCompare                bool
	partitions, maxInFlight int
	latency                 time.Duration

	warmupIntents             int
	aIntents, baselineIntents int
	bIntents, rsaSigs         int
	bSignerDuty               float64
	bWarmup, bMaxInFlight     int
	bRounds                   int
	cIntents, rawCommitEvery  int
	cRuns                     int
	dBacklog                  int
	dLatency, dDuration       time.Duration
	eDuration                 time.Duration
	eRate                     float64

	rateLimit, rateLimit429, rate429Share float64
	rateIntents                           int
	ratePhase                             time.Duration

	profileIntents, profileReplay int
	profileFor                    time.Duration
	replayFetchMaxWait            time.Duration
	profileLatency                time.Duration
	profileMaxInFlight            int
	replayCompare                 []time.Duration
}

var allScenarios = []string{"a", "b", "c", "d", "e", "rate", "profile"}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&c.kafka, "kafka", "127.0.0.1:29092", "Kafka bootstrap broker(s), comma-separated")
	fs.StringVar(&c.redis, "redis", "127.0.0.1:26379", "Redis address")
	fs.StringVar(&c.binDir, "bin", ".cache/bin", "directory of the consumer, wxsim and consumer-pprof binaries")
	fs.StringVar(&c.keysDir, "keys-dir", ".cache/bench/keys", "merchant and WeChat Pay keys shared by the simulator and the consumers (generated if absent)")
	fs.StringVar(&c.workDir, "work-dir", ".cache/bench", "profiles and scratch files")
	fs.StringVar(&c.out, "out", "", "markdown report to write (default docs/benchmarks.md; with -quick .cache/bench/quick.md; \"-\" for none)")
	fs.StringVar(&c.kafkaVersion, "kafka-version", "unknown", "Kafka version, for the report")
	sc := fs.String("scenarios", strings.Join(allScenarios, ","), "scenarios to run: "+strings.Join(allScenarios, ","))
	fs.BoolVar(&c.quick, "quick", false, "small sizes: a smoke run of every scenario in about two minutes")

	fs.IntVar(&c.partitions, "partitions", 8, "partitions of each request topic")
	fs.IntVar(&c.maxInFlight, "max-in-flight", 4, "consumer -max-in-flight (per partition) in scenarios a, e and rate")
	fs.IntVar(&c.simKeyBits, "sim-platform-key-bits", 1024, "scenarios a, e and rate: size of the RSA key the simulator signs its answers with (b, c, d: 2048); the consumer signs with RSA-2048 always")
	fs.BoolVar(&c.aCompare, "a-compare-2048", true, "scenario a: run the consumer once more against a simulator signing with RSA-2048, for reference")
	fs.DurationVar(&c.latency, "latency", 100*time.Millisecond, "simulated API latency in scenarios a, e and rate")
	fs.IntVar(&c.warmupIntents, "warmup-intents", 0, "intents run through a consumer in scenario a's set-up before the first scenario, not measured, so that a broker just started has compiled its hot paths (default 12000; quick 500; -1: none)")
	fs.IntVar(&c.aIntents, "a-intents", 0, "scenario a: intents (default 5000; quick 800)")
	fs.IntVar(&c.baselineIntents, "baseline-intents", 0, "scenario a: intents for the sequential baseline (default 150; quick 25)")
	fs.IntVar(&c.bIntents, "b-intents", 0, "scenario b: intents measured in each round (default 2000; quick 500)")
	fs.IntVar(&c.bRounds, "b-rounds", 0, "scenario b: measured rounds; the median round is the verdict (default 5; quick 1)")
	fs.IntVar(&c.bMaxInFlight, "b-max-in-flight", 0, "scenario b: consumer -max-in-flight (0: its default)")
	fs.IntVar(&c.bWarmup, "b-warmup", 0, "scenario b: intents processed before the measured ones, so that connections are dialed and stacks grown (default 600; quick 100)")
	fs.Float64Var(&c.bSignerDuty, "b-signer-duty", 0.25, "scenario b: share of the time the bench's signing thread signs while the consumer works (it sleeps the rest; 1: without pause)")
	fs.IntVar(&c.rsaSigs, "rsa-signatures", 0, "scenario b: RSA signatures timed alone after the run, for reference (default 2000; quick 300)")
	fs.IntVar(&c.cIntents, "c-intents", 0, "scenario c: intents replayed (default 50000; quick 5000)")
	fs.IntVar(&c.cRuns, "c-runs", 3, "scenario c: runs of the raw loop and of the replay, alternated (the best of each counts)")
	fs.IntVar(&c.rawCommitEvery, "raw-commit-every", 500, "scenario c: the raw loop commits every this many messages")
	fs.IntVar(&c.dBacklog, "d-backlog", 0, "scenario d: backlog (default 200000; quick 20000)")
	fs.DurationVar(&c.dLatency, "d-latency", time.Second, "scenario d: simulated API latency")
	fs.DurationVar(&c.dDuration, "d-duration", 0, "scenario d: how long the consumer runs (default 40s; quick 8s)")
	fs.DurationVar(&c.eDuration, "e-duration", 0, "scenario e: how long intents are published (default 20s; quick 5s)")
	fs.Float64Var(&c.eRate, "e-rate", 0, "scenario e: intents per second (default half of scenario a's throughput, or of its bound if a does not run)")
	fs.Float64Var(&c.rateLimit, "rate-limit", 50, "rate scenario: -rate-limit that must hold within 5%")
	fs.IntVar(&c.rateIntents, "rate-intents", 0, "rate scenario: intents at -rate-limit (default 1000; quick 200)")
	fs.Float64Var(&c.rateLimit429, "rate-limit-429", 100, "rate scenario: -rate-limit of the FREQUENCY_LIMITED part")
	fs.Float64Var(&c.rate429Share, "rate-429-share", 0.1, "rate scenario: share of calls answered 429 FREQUENCY_LIMITED")
	fs.DurationVar(&c.ratePhase, "rate-phase", 0, "rate scenario: length of each phase (before, during, after the 429s) (default 6s; quick 3s)")
	fs.IntVar(&c.profileIntents, "profile-intents", 0, "profile: intents processed while profiling (default 5000; quick 800)")
	fs.IntVar(&c.profileReplay, "profile-replay", 0, "profile: intents in the profiled replay (default 20000; quick 3000)")
	fs.DurationVar(&c.replayFetchMaxWait, "profile-replay-fetch-max-wait", 0, "profile: consumer.Options.FetchMaxWait of the profiled replay (0: the consumer's default), for experiments")
	compare := fs.String("profile-replay-compare", "250ms,20ms,250ms,20ms", "profile: FetchMaxWait values to replay with again, unprofiled, in this order (empty: none)")
	fs.DurationVar(&c.profileLatency, "profile-latency", 0, "profile: simulated API latency while the consumer is profiled")
	fs.IntVar(&c.profileMaxInFlight, "profile-max-in-flight", 0, "profile: consumer -max-in-flight while profiled (0: its default)")
	fs.DurationVar(&c.profileFor, "profile-duration", 0, "profile: CPU profile length (default 12s; quick 3s)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.bSignerDuty <= 0 || c.bSignerDuty > 1 {
		return c, fmt.Errorf("-b-signer-duty %v: want more than 0 and at most 1", c.bSignerDuty)
	}
	for _, s := range strings.Split(*sc, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(allScenarios, s) {
			return c, fmt.Errorf("-scenarios: unknown scenario %q (want %s)", s, strings.Join(allScenarios, ","))
		}
		c.scenarios = append(c.scenarios, s)
	}
	for _, v := range strings.Split(*compare, ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return c, fmt.Errorf("-profile-replay-compare: %w", err)
		}
		c.replayCompare = append(c.replayCompare, d)
	}
	setInt := func(p *int, full, quick int) {
		if *p == 0 {
			*p = full
			if c.quick {
				*p = quick
			}
		}
	}
	setDur := func(p *time.Duration, full, quick time.Duration) {
		if *p == 0 {
			*p = full
			if c.quick {
				*p = quick
			}
		}
	}
	setInt(&c.warmupIntents, 12000, 500)
	setInt(&c.aIntents, 5000, 800)
	setInt(&c.baselineIntents, 150, 25)
	setInt(&c.bIntents, 2000, 500)
	setInt(&c.bWarmup, 600, 100)
	setInt(&c.bRounds, 5, 1)
	setInt(&c.rsaSigs, 2000, 300)
	if c.bRounds < 1 {
		return c, fmt.Errorf("-b-rounds %d: want at least 1", c.bRounds)
	}
	setInt(&c.cIntents, 50000, 5000)
	setInt(&c.dBacklog, 200000, 20000)
	setDur(&c.dDuration, 40*time.Second, 8*time.Second)
	setDur(&c.eDuration, 20*time.Second, 5*time.Second)
	setInt(&c.rateIntents, 1000, 200)
	setDur(&c.ratePhase, 6*time.Second, 3*time.Second)
	setInt(&c.profileIntents, 5000, 800)
	setInt(&c.profileReplay, 20000, 3000)
	setDur(&c.profileFor, 12*time.Second, 3*time.Second)
	if c.out == "" {
		c.out = "docs/benchmarks.md"
		if c.quick {
			c.out = filepath.Join(c.workDir, "quick.md")
		}
	}
	c.log = os.Stderr
	return c, nil
}

func run(ctx context.Context, args []string) (int, error) {
	cfg, err := parseFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, nil
		}
		return 2, err
	}
	e, err := setup(ctx, cfg)
	if err != nil {
		return 2, err
	}
	defer e.rdb.Close()
	rep := &report{
		command: "go run ./bench " + strings.Join(args, " "), started: time.Now(), loadStart: loadAvg(), quick: cfg.quick,
		machine: machineInfo(ctx, e, cfg.kafkaVersion),
	}
	rep.scenarioSettings = []string{
		fmt.Sprintf("%d partitions per request topic", cfg.partitions),
		fmt.Sprintf("a, e, rate: API latency %s, `-max-in-flight %d`, the simulator signs with RSA-%d (`-sim-platform-key-bits`; a also once with RSA-2048 for reference); b, c, d: RSA-2048; the consumer signs with RSA-2048 always", cfg.latency, cfg.maxInFlight, cfg.simKeyBits),
		fmt.Sprintf("a: %d intents, baseline %d", cfg.aIntents, cfg.baselineIntents),
		fmt.Sprintf("b: %s of %d intents after %d of warm-up, %d signatures alone", rounds(cfg.bRounds), cfg.bIntents, cfg.bWarmup, cfg.rsaSigs),
		fmt.Sprintf("c: %d intents", cfg.cIntents),
		fmt.Sprintf("d: %d backlog, API latency %s, %s", cfg.dBacklog, cfg.dLatency, cfg.dDuration),
		fmt.Sprintf("e: %s of intents", cfg.eDuration),
		fmt.Sprintf("rate: `-rate-limit %g` over %d intents; `-rate-limit %g` with %.0f%% 429s, %s phases", cfg.rateLimit, cfg.rateIntents, cfg.rateLimit429, 100*cfg.rate429Share, cfg.ratePhase),
	}
	if cfg.warmupIntents > 0 {
		rep.scenarioSettings = append(rep.scenarioSettings, fmt.Sprintf("before the first scenario, %d intents through a consumer in scenario a's set-up, not measured (`-warmup-intents`)", cfg.warmupIntents))
	}
	b := &bench{cfg: cfg, e: e, rep: rep}
	if cfg.warmupIntents > 0 && len(cfg.scenarios) > 0 {
		start := time.Now()
		b.logf("warm-up: %d intents through a consumer in scenario a's set-up, not measured", cfg.warmupIntents)
		if err := b.warmUp(ctx); err != nil {
			return 1, fmt.Errorf("warm-up: %w", err)
		}
		b.logf("warm-up done in %s", time.Since(start).Round(100*time.Millisecond))
	}
	steps := map[string]func(context.Context) error{
		"a": b.scenarioA, "b": b.scenarioB, "c": b.scenarioC, "d": b.scenarioD, "e": b.scenarioE,
		"rate": b.scenarioRate, "profile": b.scenarioProfile,
	}
	for _, name := range allScenarios { // fixed order: e uses a's result
		if !slices.Contains(cfg.scenarios, name) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		b.logf("scenario %s", name)
		start, cpu0, load0 := time.Now(), readCPU(), loadAvg()
		nRows, nDetails := len(rep.rows), len(rep.details)
		err := steps[name](ctx)
		cpu1 := readCPU()
		steal := stealShare(cpu0, cpu1)
		rep.steal = append(rep.steal, fmt.Sprintf("%s %.1f%%", name, 100*steal))
		if len(rep.details) > nDetails {
			d := rep.details[len(rep.details)-1]
			d.elapsed = time.Since(start)
			d.addf("machine during the scenario: %.2f of %d CPUs busy on average (every process, other users' included), CPU steal %.1f%% of the machine's time; load average at its start %s",
				busyCores(cpu0, cpu1), runtime.NumCPU(), 100*steal, load0)
		}
		if err != nil {
			b.logf("scenario %s failed: %v", name, err)
			if len(rep.rows) == nRows {
				rep.add(row{scenario: name, what: "scenario did not complete", target: "—", err: err})
			} else {
				for i := nRows; i < len(rep.rows); i++ {
					rep.rows[i].err = err
				}
			}
		}
		b.logf("scenario %s done in %s", name, time.Since(start).Round(100*time.Millisecond))
	}
	rep.elapsed = time.Since(rep.started)
	rep.loadEnd = loadAvg()

	for _, d := range rep.details {
		fmt.Printf("\n%s: %s\n", d.scenario, d.title)
		for _, l := range d.lines {
			fmt.Printf("  - %s\n", l)
		}
	}
	fmt.Println()
	fmt.Print(rep.text())
	for _, pi := range rep.profiles {
		fmt.Printf("\n%s\n", pi.title)
		for _, s := range pi.shares {
			fmt.Printf("%5.1f%%  %s\n", s.pct, s.name)
		}
	}
	if cfg.out != "-" {
		if err := os.MkdirAll(filepath.Dir(cfg.out), 0o755); err != nil {
			return 2, err
		}
		if err := os.WriteFile(cfg.out, []byte(rep.markdown()), 0o644); err != nil {
			return 2, err
		}
		fmt.Printf("\nwrote %s\n", cfg.out)
	}
	for _, r := range rep.rows {
		if r.err != nil || !r.pass {
			return 1, nil
		}
	}
	return 0, ctx.Err()
}

// setup connects to Redis, makes sure the shared keys exist and names the run.
func setup(ctx context.Context, cfg config) (*env, error) {
	for _, b := range []string{"consumer", "wxsim", "consumer-pprof"} {
		if _, err := os.Stat(filepath.Join(cfg.binDir, b)); err != nil {
			return nil, fmt.Errorf("binary %s missing in %s (scripts/bench.sh builds them): %w", b, cfg.binDir, err)
		}
	}
	if err := os.MkdirAll(cfg.workDir, 0o755); err != nil {
		return nil, err
	}
	keysDir, err := filepath.Abs(cfg.keysDir)
	if err != nil {
		return nil, err
	}
	keys, err := wxsim.ReadKeys(keysDir)
	if err != nil {
		if keys, err = wxsim.NewKeys(); err != nil {
			return nil, err
		}
		if err := keys.WriteFiles(keysDir); err != nil {
			return nil, err
		}
	}
	lightDir := keysDir + fmt.Sprintf("-platform-%d", cfg.simKeyBits)
	lk, err := wxsim.ReadKeys(lightDir)
	if err != nil || lk.MerchantKey.N.Cmp(keys.MerchantKey.N) != 0 || lk.PlatformKey.N.BitLen() != cfg.simKeyBits {
		if lk, err = keys.WithPlatformKeyBits(cfg.simKeyBits); err != nil {
			return nil, err
		}
		if err := lk.WriteFiles(lightDir); err != nil {
			return nil, err
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: cfg.redis, ContextTimeoutEnabled: true, PoolSize: 64})
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis %s: %w", cfg.redis, err)
	}
	runID := fmt.Sprintf("%x", time.Now().Unix()&0xffffff)
	prefix := "wxbench:" + runID + ":"
	store := dedupe.New(rdb, dedupe.Options{Prefix: prefix})
	if err := store.Load(pctx); err != nil {
		rdb.Close()
		return nil, err
	}
	binDir, _ := filepath.Abs(cfg.binDir)
	workDir, _ := filepath.Abs(cfg.workDir)
	return &env{
		brokers: strings.Split(cfg.kafka, ","), redisAddr: cfg.redis, binDir: binDir, keysDir: keysDir, workDir: workDir,
		lightKeys: lk, lightKeysDir: lightDir,
		runID: runID, prefix: prefix, keys: keys, rdb: rdb, store: store,
	}, nil
}
