package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
		out    string
	}{
		{nil, 0, ""},
		{flag.ErrHelp, 0, ""},
		{fmt.Errorf("parse: %w", flag.ErrHelp), 0, ""},
		{errors.New("-brokers: empty"), 1, "demo: -brokers: empty\n"},
	} {
		var b bytes.Buffer
		if got := report(&b, "demo", c.err); got != c.status || b.String() != c.out {
			t.Errorf("report(%v): got %d %q; want %d %q", c.err, got, b.String(), c.status, c.out)
		}
	}
}

func TestNewLogger(t *testing.T) {
	var b bytes.Buffer
	log, err := NewLogger("warn", "json", &b)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("dropped")
	log.Warn("kept")
	if got := b.String(); !strings.Contains(got, `"msg":"kept"`) || strings.Contains(got, "dropped") {
		t.Errorf("json logger at warn wrote %q; want only the warning, as JSON", got)
	}
	for _, c := range [][2]string{{"loud", "json"}, {"info", "xml"}} {
		if _, err := NewLogger(c[0], c[1], &b); err == nil {
			t.Errorf("NewLogger(%q, %q): got nil error; want one", c[0], c[1])
		}
	}
}

func TestParse(t *testing.T) {
	t.Setenv("CLITEST_FROM_ENV", "env")
	t.Setenv("CLITEST_FROM_ARGS", "env")
	for _, c := range []struct {
		args          []string
		fromArgs, err string
	}{
		{[]string{"-from-args", "arg"}, "arg", ""},
		{nil, "env", ""},
		{[]string{"-from-args", "arg", "extra"}, "arg", `unexpected arguments: ["extra"]`},
		{[]string{"-unknown"}, "", "flag provided but not defined"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fromEnv := fs.String("from-env", "", "")
		fromArgs := fs.String("from-args", "", "")
		err := Parse(fs, c.args, "CLITEST")
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Parse(%q): got %v; want an error containing %q", c.args, err, c.err)
			}
			continue
		}
		if err != nil || *fromEnv != "env" || *fromArgs != c.fromArgs {
			t.Errorf("Parse(%q): got %q, %q, %v; want %q, %q, nil", c.args, *fromEnv, *fromArgs, err, "env", c.fromArgs)
		}
	}
}

func TestSplitList(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" , ,", nil},
		{"a", []string{"a"}},
		{" a , b,,c ", []string{"a", "b", "c"}},
	} {
		if got := SplitList(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("SplitList(%q): got %q; want %q", c.in, got, c.want)
		}
	}
}
