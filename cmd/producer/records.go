package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wxterm/wxterm/event"
)

// Input formats of -file.
const (
	formatJSONL = "jsonl"
	formatCSV   = "csv"
)

// formatOf returns the format of the file at path: flag if set, else the
// one its extension names.
func formatOf(path, flag string) (string, error) {
	switch flag {
	case formatJSONL, formatCSV:
		return flag, nil
	case "":
	default:
		return "", fmt.Errorf("-format %q: want jsonl or csv", flag)
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jsonl", ".ndjson", ".json":
		return formatJSONL, nil
	case ".csv":
		return formatCSV, nil
	}
	if path == "-" {
		return "", errors.New("-file -: give -format jsonl or -format csv for stdin")
	}
	return "", fmt.Errorf("%s: cannot tell the format from the extension: give -format jsonl or -format csv", path)
}

// defaults fill what a CSV record leaves out.
type defaults struct {
	source string
	now    time.Time
}

// visit is called with each record of a file: its line number and its
// JSON, valid only during the call, or why there is none. An error it
// returns ends the scan.
type visit func(line int, raw []byte, err error) error

// scan reads every record of r, one at a time, so that memory stays bounded
// whatever the file's size. It returns visit's error or what makes the rest
// of the file unreadable (an I/O error, a bad CSV header or quoting), naming
// the line.
func scan(r io.Reader, format string, d defaults, fn visit) error {
	if format == formatCSV {
		return scanCSV(r, d, fn)
	}
	return scanJSONL(r, fn)
}

// maxLine bounds the bytes kept of one line: an intent's limit plus "\r\n".
const maxLine = event.MaxIntentBytes + 2

func scanJSONL(r io.Reader, fn visit) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	for line := 1; ; line++ {
		b, long, rerr := readLine(br, buf[:0], maxLine)
		if rerr != nil && rerr != io.EOF {
			return fmt.Errorf("line %d: %w", line, rerr)
		}
		buf = b
		if line == 1 {
			b = bytes.TrimPrefix(b, []byte("\ufeff")) // some editors start UTF-8 files with a byte-order mark
		}
		var err error
		switch b = bytes.TrimSpace(b); {
		case long:
			err = fn(line, nil, fmt.Errorf("longer than the %d-byte limit of an intent", event.MaxIntentBytes))
		case len(b) > 0: // blank lines are no records
			err = fn(line, b, nil)
		}
		if err != nil {
			return err
		}
		if rerr == io.EOF {
			return nil
		}
	}
}

// readLine appends the next line of br, newline included, to buf. A line
// longer than limit is read to its end but not kept (long), so that a file
// without newlines cannot exhaust memory.
func readLine(br *bufio.Reader, buf []byte, limit int) (line []byte, long bool, err error) {
	for {
		chunk, err := br.ReadSlice('\n')
		if !long && len(buf)+len(chunk) <= limit {
			buf = append(buf, chunk...)
		} else {
			long, buf = true, buf[:0]
		}
		if err != bufio.ErrBufferFull {
			return buf, long, err
		}
	}
}

// columns are the JSON field names of an intent, the only CSV columns.
var columns = func() []string {
	var names []string
	for f := range reflect.TypeFor[event.Intent]().Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		names = append(names, name)
	}
	return names
}()

func scanCSV(r io.Reader, d defaults, fn visit) error {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return err // a *csv.ParseError names its line
	}
	header = slices.Clone(header)
	header[0] = strings.TrimPrefix(header[0], "\ufeff") // spreadsheets start UTF-8 CSV with a byte-order mark
	for i, h := range header {
		h = strings.TrimSpace(h)
		if !slices.Contains(columns, h) {
			return fmt.Errorf("line 1: unknown column %q: want intent fields (%s)", h, strings.Join(columns, ", "))
		}
		if slices.Contains(header[:i], h) {
			return fmt.Errorf("line 1: column %q appears twice", h)
		}
		header[i] = h
	}
	if !slices.Contains(header, "request_id") {
		return errors.New("line 1: no request_id column: file records need one, so that a re-run publishes no new intents")
	}
	fields := make(map[string]any, len(columns))
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		var line int
		var raw []byte
		if errors.Is(err, csv.ErrFieldCount) {
			// One bad row spoils only itself: csv.Reader goes on after it.
			var pe *csv.ParseError
			errors.As(err, &pe)
			line, err = pe.StartLine, fmt.Errorf("%d fields; want %d, as in the header", len(rec), len(header))
		} else if err != nil {
			return err
		} else {
			line, _ = cr.FieldPos(0)
			raw, err = csvJSON(header, rec, d, fields)
		}
		if err := fn(line, raw, err); err != nil {
			return err
		}
	}
}

// csvJSON encodes one CSV row as an intent's JSON, with d's defaults, to be
// validated as a message is, so both formats fail alike. m is scratch space.
func csvJSON(header, rec []string, d defaults, m map[string]any) ([]byte, error) {
	clear(m)
	m["schema_version"] = event.SchemaVersion
	m["requested_at"] = d.now.Format(time.RFC3339Nano)
	m["source"] = d.source
	for i, v := range rec {
		v = strings.TrimSpace(v)
		if v == "" {
			continue // an empty cell is an absent field, so one file can mix APIs
		}
		m[header[i]] = v
		if n, err := strconv.Atoi(v); err == nil && header[i] == "schema_version" {
			m[header[i]] = n // else the schema reports the string
		}
	}
	return json.Marshal(m)
}

// record is one record of a file: where it is, its JSON, and the intent it
// holds or why it holds none.
type record struct {
	line int
	raw  []byte
	in   event.Intent
	err  error
}

// chunkSize is how many records go to a worker at once: enough to make the
// hand-off cheap, few enough to keep memory small.
const chunkSize = 256

type chunk struct {
	recs []record
	done chan struct{} // closed once recs are decoded
}

// decode reads the records of r, decodes and validates them on every CPU
// (the schema check is most of the cost of a large file: ~70 µs a record),
// and calls fn with each, in file order. It returns fn's first error, a scan
// error, or ctx's, having stopped its goroutines. Records in flight are
// bounded by a few chunks per CPU.
func decode(ctx context.Context, r io.Reader, format string, d defaults, fn func(record) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := runtime.GOMAXPROCS(0)
	work := make(chan *chunk)
	order := make(chan *chunk, 2*workers) // chunks handed out, in file order
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for c := range work {
				for i := range c.recs {
					if rec := &c.recs[i]; rec.err == nil {
						rec.in, rec.err = event.DecodeIntent(rec.raw) // the record's own bytes: unknown fields are refused
					}
				}
				close(c.done)
			}
		})
	}
	scanned := make(chan error, 1)
	go func() {
		defer close(order)
		defer close(work)
		c := &chunk{done: make(chan struct{})}
		hand := func() error {
			select {
			case work <- c:
			case <-ctx.Done():
				return ctx.Err()
			}
			order <- c // never blocks for good: the loop below drains order to the end
			c = &chunk{done: make(chan struct{})}
			return nil
		}
		err := scan(r, format, d, func(line int, raw []byte, err error) error {
			c.recs = append(c.recs, record{line: line, raw: bytes.Clone(raw), err: err})
			if len(c.recs) < chunkSize {
				return nil
			}
			return hand()
		})
		if err == nil && len(c.recs) > 0 {
			err = hand()
		}
		scanned <- err
	}()
	var err error
	for c := range order {
		<-c.done
		for _, rec := range c.recs {
			if err == nil {
				err = fn(rec)
			}
		}
		if err != nil {
			cancel() // stop the scan; keep draining so every goroutine ends
		}
	}
	wg.Wait()
	if err != nil {
		return err
	}
	return <-scanned
}
