// Command status answers "what happened to contract X?": for each
// out_contract_code, or out_contract_code/request_id, it shows the dedupe
// record (state, owner and lease, each request's outcome and whether it was
// published, takeover and unknown marks, attempts, time to live) as a table,
// or as JSON with -json. With -query it also asks WeChat Pay for the
// contract's live state (a read-only query with the merchant's keys) and
// says whether the two agree.
//
// It takes the consumer's Redis and merchant flags, and their WXTERM_*
// environment variables, so it runs in the consumer's pod or a Job beside
// it. Exit status: 0 every target found, 1 some not found, 2 an error.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3"

	"github.com/wxterm/wxterm/internal/connflags"
	"github.com/wxterm/wxterm/internal/dedupe"
	"github.com/wxterm/wxterm/internal/merchants"
)

// envPrefix: every flag -some-name is also read from WXTERM_SOME_NAME, as
// the consumer's are.
const envPrefix = "WXTERM"

// Exit statuses.
const (
	exitFound    = 0
	exitNotFound = 1
	exitError    = 2
)

func main() {
	os.Exit(runMain(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// config is every setting.
type config struct {
	redis        connflags.Redis
	dedupePrefix string
	merchants    merchants.Flags
	file         string
	json, query  bool
	timeout      time.Duration
	targets      []target
}

func parse(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: status [flags] CODE|CODE/REQUEST_ID ...   (or -file FILE, one per line; - reads stdin)")
		fs.PrintDefaults()
	}
	c.redis.Register(fs)
	fs.StringVar(&c.dedupePrefix, "dedupe-prefix", dedupe.DefaultOptions().Prefix, "key prefix of the dedupe records (the consumer's -dedupe-prefix)")
	c.merchants.Register(fs)
	fs.StringVar(&c.file, "file", "", "read targets from this file, one per line (# comments; - is stdin)")
	fs.BoolVar(&c.json, "json", false, "print JSON (one array of reports) instead of the table")
	fs.BoolVar(&c.query, "query", false, "also ask WeChat Pay for each contract's live state (read-only) and compare")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "timeout of each Redis read and WeChat Pay query")
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix(envPrefix)); err != nil {
		return nil, err
	}
	lines := fs.Args()
	if c.file != "" {
		more, err := readLines(c.file)
		if err != nil {
			return nil, err
		}
		lines = append(lines, more...)
	}
	if len(lines) == 0 {
		return nil, errors.New("no contract given: name out_contract_codes (or code/request_id) as arguments or in -file")
	}
	for _, l := range lines {
		t, err := parseTarget(l)
		if err != nil {
			return nil, err
		}
		c.targets = append(c.targets, t)
	}
	return c, nil
}

// readLines reads the non-blank lines of path (or stdin for -) that are
// not # comments.
func readLines(path string) ([]string, error) {
	r := io.Reader(os.Stdin)
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("-file: %w", err)
		}
		defer f.Close()
		r = f
	}
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("-file %s: %w", path, err)
	}
	return out, nil
}

// runMain runs the command and returns its exit status.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitFound
	}
	if err != nil {
		fmt.Fprintln(stderr, "status:", err)
		return exitError
	}
	reports, err := run(ctx, c)
	if err != nil {
		fmt.Fprintln(stderr, "status:", err)
		return exitError
	}
	if c.json {
		err = writeJSON(stdout, reports)
	} else {
		err = writeTable(stdout, reports)
	}
	if err != nil {
		fmt.Fprintln(stderr, "status:", err)
		return exitError
	}
	return exitStatus(reports)
}

// exitStatus is 2 if any report holds an error, else 1 if any target was
// not found, else 0.
func exitStatus(reports []report) int {
	code := exitFound
	for _, r := range reports {
		if r.Error != "" || (r.WeChat != nil && r.WeChat.Error != "") {
			return exitError
		}
		if !r.Found {
			code = exitNotFound
		}
	}
	return code
}
