package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
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
