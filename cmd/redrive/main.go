// Command redrive republishes dead letters to the topic they came from (the
// request topic, or the notification topic when given) once their cause is
// fixed. It reads a range of the dead-letter topic (by offsets or time,
// filtered on the dlq_error header), lists what it would republish and what
// it cannot (another topic's, or a reduced dead letter that no longer holds
// the original message), and with -execute republishes it with provenance
// headers. It never deletes or writes anything in the dead-letter topic; see
// docs/operators.md.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/wxterm/wxterm/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	cli.Exit("redrive", err)
}

// run parses args, selects the dead letters, lists them on stdout and, with
// -execute, republishes them with progress on stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parse(args, stderr)
	if err != nil {
		return err
	}
	sel, err := c.selection()
	if err != nil {
		return err
	}
	_, tr, err := c.kafka.Security()
	if err != nil {
		return err
	}
	r := &redriver{
		brokers: strings.Split(c.brokers, ","), transport: tr,
		dlq: c.dlq, requests: c.requests, notifications: c.notifications, by: c.by, skew: c.skew, check: !c.noCheck,
		now: time.Now, progress: stderr,
	}
	return r.run(ctx, sel, c.execute, stdout)
}
