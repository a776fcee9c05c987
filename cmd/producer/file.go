package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
)

// maxReported bounds the invalid records listed one by one.
const maxReported = 20

// sendFile publishes the intents of c.file in two passes over it: the first
// validates every record, so that by default a bad file sends nothing; the
// second re-reads, validates again and sends in batches. Memory holds a batch
// and a few chunks of records per CPU, whatever the file's size.
func sendFile(ctx context.Context, c *config, stdin io.Reader, stdout, stderr io.Writer) error {
	format, err := formatOf(c.file, c.format)
	if err != nil {
		return err
	}
	name, path := c.file, c.file
	if c.file == "-" {
		name = "stdin"
		// stdin cannot be read twice: spool it to disk, not memory.
		if path, err = spool(stdin); err != nil {
			return err
		}
		defer os.Remove(path)
	}
	d := defaults{source: c.in.Source, now: time.Now().UTC()}
	prog := newProgress(stderr, c.quiet)

	var valid, invalid int
	var report []string
	err = decodeFile(ctx, path, format, d, func(r record) error {
		if r.err == nil {
			valid++
		} else {
			invalid++
			if invalid <= maxReported {
				report = append(report, fmt.Sprintf("line %d: %s", r.line, detail(r.err)))
			}
		}
		if now := time.Now(); prog.due(now) {
			prog.show(fmt.Sprintf("validated %d records, %d invalid", valid+invalid, invalid))
		}
		return nil
	})
	prog.end()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	for _, r := range report {
		fmt.Fprintln(stderr, r)
	}
	if invalid > maxReported {
		fmt.Fprintf(stderr, "… and %d more invalid records\n", invalid-maxReported)
	}
	switch {
	case invalid > 0 && !c.skipInvalid:
		return fmt.Errorf("%s: %d of %d records invalid; nothing sent (-skip-invalid sends the %d valid ones)", name, invalid, valid+invalid, valid)
	case valid == 0:
		return fmt.Errorf("%s: no valid intents; nothing sent", name)
	case c.dryRun:
		fmt.Fprintf(stdout, "%d valid intents in %s, %d invalid (dry run: nothing sent)\n", valid, name, invalid)
		return nil
	}

	start := time.Now()
	prog.start(start)
	w := newWriter(c)
	batch := make([]kafka.Message, 0, c.batchSize)
	var sent, first, last int // first and last: lines of the batch
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		wctx, cancel := context.WithTimeout(ctx, c.timeout)
		err := w.WriteMessages(wctx, batch...)
		cancel()
		if err != nil {
			var we kafka.WriteErrors
			if errors.As(err, &we) {
				sent += len(batch) - we.Count()
			}
			return fmt.Errorf("write lines %d-%d: %w", first, last, err)
		}
		sent += len(batch)
		batch = batch[:0] // the writer has copied the messages
		if now := time.Now(); prog.due(now) {
			s := now.Sub(start).Seconds()
			prog.show(fmt.Sprintf("sent %d/%d (%d%%) %.0f/s", sent, valid, sent*100/valid, float64(sent)/s))
		}
		return nil
	}
	// Validated again as it is sent, for the file may have changed since.
	err = decodeFile(ctx, path, format, d, func(r record) error {
		if r.err != nil {
			if c.skipInvalid {
				return nil
			}
			return fmt.Errorf("line %d changed since it was validated: %w", r.line, r.err)
		}
		if len(batch) == 0 {
			first = r.line
		}
		// The value is the very bytes validated; the writer does not modify them.
		batch, last = append(batch, kafka.Message{Key: []byte(r.in.OutContractCode), Value: r.raw}), r.line
		if len(batch) < c.batchSize {
			return nil
		}
		return flush()
	})
	if err == nil {
		err = flush()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	prog.end()
	if err != nil {
		return fmt.Errorf("%s: sent %d of %d intents to %s, then: %w; re-running is safe, the consumer dedupes on request_id", name, sent, valid, c.topic, err)
	}
	if sent != valid {
		return fmt.Errorf("%s: validated %d intents but sent %d: the file changed while it was sent", name, valid, sent)
	}
	fmt.Fprintf(stdout, "sent %d intents to %s in %.1fs", sent, c.topic, time.Since(start).Seconds())
	if invalid > 0 {
		fmt.Fprintf(stdout, "; %d invalid skipped", invalid)
	}
	fmt.Fprintln(stdout)
	return nil
}

// detail is what the report says of an invalid record.
func detail(err error) string {
	var ie *event.InvalidError
	if errors.As(err, &ie) {
		return ie.Detail
	}
	return err.Error()
}

func decodeFile(ctx context.Context, path, format string, d defaults, fn func(record) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return decode(ctx, f, format, d, fn)
}

// spool copies r to a temporary file and returns its name; the caller
// removes it.
func spool(r io.Reader) (string, error) {
	f, err := os.CreateTemp("", "wxterm-producer-*")
	if err != nil {
		return "", fmt.Errorf("buffer stdin: %w", err)
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("buffer stdin: %w", err)
	}
	return f.Name(), nil
}

// progressEvery is how often progress is shown at most.
const progressEvery = 500 * time.Millisecond

// progress shows how a long run is going: one line rewritten in place on a
// terminal, plain lines otherwise (logs and CI keep every one).
type progress struct {
	w    io.Writer // nil: quiet
	tty  bool
	last time.Time // when a line was last shown, or the run started
	open bool      // a rewritten line awaits its newline
}

func newProgress(w io.Writer, quiet bool) *progress {
	if quiet {
		return &progress{last: time.Now()}
	}
	return &progress{w: w, tty: isTerminal(w), last: time.Now()}
}

// start restarts the clock, so the first line comes progressEvery after now.
func (p *progress) start(now time.Time) { p.last = now }

// due reports whether a line may be shown at now, and if so counts it as shown.
func (p *progress) due(now time.Time) bool {
	if p.w == nil || now.Sub(p.last) < progressEvery {
		return false
	}
	p.last = now
	return true
}

func (p *progress) show(s string) {
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K", s) // \x1b[K: clear what a longer line left
		p.open = true
		return
	}
	fmt.Fprintln(p.w, s)
}

// end finishes a rewritten line, so what follows starts on its own.
func (p *progress) end() {
	if p.open {
		fmt.Fprintln(p.w)
		p.open = false
	}
}

// isTerminal reports whether w is a character device, which is what a
// terminal is (and /dev/null, where \r does no harm).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
