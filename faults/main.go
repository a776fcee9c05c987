// Command faults is the fault suite: it runs the consumer as real processes
// against a real Kafka broker, a real Redis server and the WeChat Pay
// simulator process, injects one kind of fault per scenario (kill -9,
// Redis stopped, Kafka restarted, failing WeChat calls, group churn, a worker
// dying between its terminate call and recording it, systemic faults), and
// checks after every scenario that each intent has exactly one recorded
// outcome, that no contract was terminated twice, and that every request's
// result events share one event_id and none is missing.
//
// scripts/faults.sh starts the services, builds the binaries and runs it:
//
//	faults -kafka 127.0.0.1:18092 -redis 127.0.0.1:16479 \
//	  -kafka-ctl scripts/kafka.sh -redis-ctl scripts/redis.sh -bin .cache/bin
//
// It prints a table of what it tried and what it found, writes it with the
// details to -work/last-run.md, and exits 1 if any check failed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// config is the command line.
type config struct {
	kafka, redis       string
	kafkaCtl, redisCtl string
	binDir, workDir    string
	intents, kills     int
	small              int // intents of the sigterm and systemic scenarios
	only               string
	scenarioTimeout    time.Duration
	suiteTimeout       time.Duration
	seed               uint64
	partitions         int
	consumerArgs       string // extra consumer flags, for debugging
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	var c config
	fs := flag.NewFlagSet("faults", flag.ContinueOnError)
	fs.StringVar(&c.kafka, "kafka", "127.0.0.1:18092", "Kafka bootstrap broker")
	fs.StringVar(&c.redis, "redis", "127.0.0.1:16479", "Redis address")
	fs.StringVar(&c.kafkaCtl, "kafka-ctl", "scripts/kafka.sh", "script that restarts the broker (verbs: restart, halt, resume)")
	fs.StringVar(&c.redisCtl, "redis-ctl", "scripts/redis.sh", "script that stops and starts Redis (verbs: halt, resume)")
	fs.StringVar(&c.binDir, "bin", ".cache/bin", "directory holding the consumer and wxsim binaries")
	fs.StringVar(&c.workDir, "work", ".cache/faults", "directory for keys, logs and the report (emptied first)")
	fs.IntVar(&c.intents, "intents", 2000, "distinct intents per scenario")
	fs.IntVar(&c.kills, "kills", 5, "kill -9 of the consumer in the kill scenario")
	fs.IntVar(&c.small, "systemic-intents", 1000, "distinct intents in the sigterm and systemic scenarios (replay: half)")
	fs.StringVar(&c.only, "run", "", "regular expression: run only the scenarios whose name matches")
	fs.DurationVar(&c.scenarioTimeout, "scenario-timeout", 3*time.Minute, "bound of one scenario")
	fs.DurationVar(&c.suiteTimeout, "timeout", 14*time.Minute, "bound of the whole suite")
	fs.Uint64Var(&c.seed, "seed", 0, "random seed (0: from the clock); printed, so a run can be repeated")
	fs.IntVar(&c.partitions, "partitions", 8, "partitions of each topic")
	fs.StringVar(&c.consumerArgs, "consumer-args", "", "extra consumer flags, space-separated (e.g. \"-log-level info\")")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if c.seed == 0 {
		c.seed = uint64(time.Now().UnixNano())
	}
	var only *regexp.Regexp
	if c.only != "" {
		var err error
		if only, err = regexp.Compile(c.only); err != nil {
			fmt.Fprintln(os.Stderr, "faults: -run:", err)
			return 2
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.suiteTimeout)
	defer cancel()

	start := time.Now()
	s, err := newSuite(ctx, c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		if s != nil {
			s.close()
		}
		return 1
	}
	defer s.close()
	fmt.Printf("fault suite: run %s, seed %d, %d intents per scenario, Kafka %s, Redis %s, simulator %s, %d CPUs\n",
		s.runID, c.seed, c.intents, c.kafka, c.redis, s.sim.url, runtime.NumCPU())

	var results []*outcome
	for i, sc := range scenarios() {
		if only != nil && !only.MatchString(sc.name) {
			continue
		}
		if ctx.Err() != nil {
			results = append(results, &outcome{name: sc.name, problems: []string{"not run: suite timed out or interrupted"}})
			continue
		}
		fmt.Printf("\n=== %s: %s\n", sc.name, sc.tried)
		o := s.runScenario(ctx, i, sc)
		results = append(results, o)
		if o.ok() {
			fmt.Printf("--- %s: PASS in %s\n", sc.name, o.dur.Round(100*time.Millisecond))
		} else {
			fmt.Printf("--- %s: FAIL in %s\n", sc.name, o.dur.Round(100*time.Millisecond))
			for _, p := range o.problems {
				fmt.Printf("      %s\n", p)
			}
		}
	}

	table := renderTable(results)
	fmt.Println()
	fmt.Print(table)
	total := time.Since(start).Round(time.Second)
	failed := 0
	for _, o := range results {
		if !o.ok() {
			failed++
		}
	}
	summary := fmt.Sprintf("%d scenarios, %d failed, %s in all (seed %d)", len(results), failed, total, c.seed)
	fmt.Println(summary)
	report := filepath.Join(c.workDir, "last-run.md")
	if err := os.WriteFile(report, []byte(renderReport(s, results, table, summary)), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "faults: report:", err)
	} else {
		fmt.Println("report:", report, "; logs:", s.logDir)
	}
	if failed > 0 || len(results) == 0 {
		return 1
	}
	return 0
}

// scenario is one fault experiment.
type scenario struct {
	name  string
	tried string // what it does, for the table's legend
	// run drives the scenario: start consumers, publish, inject the fault,
	// wait for every intent to be answered. Verification follows it.
	run func(ctx context.Context, r *runCtx) error
}

// outcome is what one scenario found.
type outcome struct {
	name     string
	tried    string
	fig      figures
	dur      time.Duration
	problems []string
	notes    []string
	figs     []string // the scenario's own figures
}

func (o *outcome) ok() bool { return len(o.problems) == 0 }

// errTimeout marks a scenario that ran out of time.
var errTimeout = errors.New("timed out")

// renderTable renders the results as a fixed-width table.
func renderTable(results []*outcome) string {
	var b strings.Builder
	header := []string{"scenario", "intents", "msgs", "events", "dup ev", "failed", "DLQ", "max term", "2nd term", "late", "term calls", "max calls", ">1 call", "queries", "time", "result", "figures"}
	rows := [][]string{header}
	for _, o := range results {
		res := "PASS"
		if !o.ok() {
			res = "FAIL"
		}
		f := o.fig
		rows = append(rows, []string{o.name, itoa(f.intents), itoa(f.msgs), itoa(f.events), itoa(f.dupEvents), itoa(f.failedEvents),
			itoa(f.dlq), itoa(f.maxTerminations), itoa(f.refused), itoa(f.lateApplied), itoa(f.termCalls), itoa(f.maxCalls), itoa(f.multiCall), itoa(f.queries),
			o.dur.Round(time.Second).String(), res, strings.Join(o.figs, ", ")})
	}
	width := make([]int, len(header))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len(c))
		}
	}
	line := func(r []string) {
		var l strings.Builder
		for i, c := range r {
			if i > 0 {
				l.WriteString(" | ")
			}
			l.WriteString(c + strings.Repeat(" ", width[i]-len(c)))
		}
		b.WriteString(strings.TrimRight(l.String(), " ") + "\n")
	}
	line(rows[0])
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = strings.Repeat("-", width[i])
	}
	line(sep)
	for _, r := range rows[1:] {
		line(r)
	}
	return b.String()
}

func itoa(n int) string { return fmt.Sprint(n) }

// renderReport is the Markdown report of a run.
func renderReport(s *suite, results []*outcome, table, summary string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Fault suite: last run\n\n%s, run %s, %d CPUs, %s/%s.\n\n", time.Now().UTC().Format(time.RFC3339), s.runID, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	b.WriteString("```\n" + table + summary + "\n```\n\n")
	b.WriteString("Columns: intents = distinct request_ids published (valid and invalid); msgs = messages published, with exact duplicates and undecodable ones; " +
		"events = result events read back; dup ev = events repeating an event_id already read (at-least-once); failed = terminate-failed events; " +
		"DLQ = dead letters; max term = most effective terminations of one contract in the simulator; " +
		"2nd term = terminate calls sent to a contract already known to be terminated, or without a query after an unanswered call (WeChat Pay refused them; must be 0); " +
		"late = terminate calls refused because an earlier call of the same contract timed out, was applied by WeChat Pay after the caller gave up, and a query in between still found the contract effective (a race the caller resolves with a query; the contract is terminated once); term calls = terminate requests the simulator received; " +
		"max calls / >1 call = most terminate requests for one contract and how many contracts got more than one (a request that failed before taking effect, e.g. an injected 5xx, is retried); " +
		"queries = query requests; figures = what a scenario measures of its own.\n\n")
	for _, o := range results {
		res := "PASS"
		if !o.ok() {
			res = "FAIL"
		}
		fmt.Fprintf(&b, "## %s: %s\n\n%s\n\n", o.name, res, o.tried)
		for _, n := range o.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		for _, p := range o.problems {
			fmt.Fprintf(&b, "- **problem:** %s\n", p)
		}
		b.WriteString("\n")
	}
	return b.String()
}
