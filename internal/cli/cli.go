// Package cli is what the commands share: parsing their flags (and the
// WXTERM_* environment) and ending their main functions the same way.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/peterbourgon/ff/v3"
)

// Exit ends a command with what its run returned: status 0 when err is nil
// or a request for help (-h, whose usage the flag set already printed),
// else err after the command's name on stderr and status 1.
func Exit(name string, err error) {
	os.Exit(report(os.Stderr, name, err))
}

// report prints err for Exit and returns the exit status.
func report(stderr io.Writer, name string, err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	return 1
}

// NewLogger builds a command's logger from its -log-level (debug, info,
// warn, error) and -log-format (json or text) flags.
func NewLogger(level, format string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	ho := &slog.HandlerOptions{Level: l}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	}
	return nil, fmt.Errorf("-log-format %q: want json or text", format)
}

// Parse parses a command's flags from args and then from the environment:
// every flag -some-name unset in args is read from PREFIX_SOME_NAME. Any
// argument left after the flags is an error.
func Parse(fs *flag.FlagSet, args []string, envPrefix string) error {
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix(envPrefix)); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return nil
}

// SplitList splits a comma-separated flag value into its items, trimmed of
// spaces; blank items are dropped.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
