package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/cli"
	"github.com/wxterm/wxterm/internal/connflags"
	"github.com/wxterm/wxterm/internal/offsetrange"
)

// envPrefix is the consumer's: every flag -some-name is also read from
// WXTERM_SOME_NAME, so the consumer's ConfigMap configures both.
const envPrefix = "WXTERM"

// config is every setting of the command, each a flag.
type config struct {
	brokers, requests, dlq string
	notifications          string
	kafka                  connflags.Kafka

	offsets, from, to      string
	errContains, errRegexp string
	execute                bool
	by                     string
	skew                   time.Duration
	noCheck                bool
}

func newFlagSet(c *config, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("redrive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	connflags.RegisterBrokers(fs, &c.brokers)
	fs.StringVar(&c.requests, "request-topic", event.TopicRequests, "request topic: its dead letters go back there")
	fs.StringVar(&c.notifications, "notification-topic", "", "the consumer's notification topic ("+event.TopicNotifications+"): its dead letters go back there; empty: they are not redriven")
	fs.StringVar(&c.dlq, "dlq-topic", event.TopicDLQ, "dead-letter topic to read (never written)")
	c.kafka.Register(fs)

	fs.StringVar(&c.offsets, "offsets", "", "dead-letter partition offset ranges, e.g. 0:100-200,3:0-50 (end exclusive); empty: every partition, whole")
	fs.StringVar(&c.from, "from", "", "first dead-letter timestamp (RFC 3339), inclusive; not with -offsets")
	fs.StringVar(&c.to, "to", "", "last dead-letter timestamp (RFC 3339), exclusive (empty: now)")
	fs.StringVar(&c.errContains, "error-contains", "", "keep only dead letters whose dlq_error header contains this text")
	fs.StringVar(&c.errRegexp, "error-regexp", "", "keep only dead letters whose dlq_error header matches this RE2 regexp")
	fs.BoolVar(&c.execute, "execute", false, "republish; without it the command only lists what it would republish (dry run)")
	fs.StringVar(&c.by, "by", defaultBy(), "who redrives, written to the redrive_by header")
	fs.DurationVar(&c.skew, "skew", 15*time.Minute, "clock skew allowed when looking for earlier redrives of the selection in the request topic")
	fs.BoolVar(&c.noCheck, "no-check", false, "do not look for earlier redrives (the consumer's dedupe still answers a duplicate once)")
	return fs
}

// defaultBy is user@host, the best guess at who runs the command.
func defaultBy() string {
	user := os.Getenv("USER")
	if user == "" {
		user = "unknown"
	}
	host, err := os.Hostname()
	if err != nil {
		return user
	}
	return user + "@" + host
}

func parse(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := newFlagSet(c, stderr)
	if err := cli.Parse(fs, args, envPrefix); err != nil {
		return nil, err
	}
	if n := c.notifications; n != "" && (n == c.requests || n == c.dlq) {
		return nil, fmt.Errorf("-notification-topic %s: must differ from -request-topic and -dlq-topic", n)
	}
	return c, nil
}

// selection is which dead letters to consider.
type selection struct {
	offsets  map[int][2]int64 // partition → [start, end); nil: by time
	from, to time.Time        // zero from: from each partition's start; zero to: its end
	contains string
	re       *regexp.Regexp
}

// within reports whether a dead letter stamped t is inside -from/-to. The
// offsets of a time range come from Kafka's offset-for-time lookup, but
// timestamps are the writing consumer's clock, not monotonic within a
// partition: each record is checked by its own.
func (s selection) within(t time.Time) bool {
	if s.offsets != nil {
		return true
	}
	return !t.Before(s.from) && (s.to.IsZero() || t.Before(s.to))
}

// matches reports whether a dead letter's error passes the filters.
func (s selection) matches(dlqError string) bool {
	if s.contains != "" && !strings.Contains(dlqError, s.contains) {
		return false
	}
	return s.re == nil || s.re.MatchString(dlqError)
}

func (c *config) selection() (selection, error) {
	var s selection
	var err error
	s.contains = c.errContains
	if c.errRegexp != "" {
		if s.re, err = regexp.Compile(c.errRegexp); err != nil {
			return s, fmt.Errorf("-error-regexp: %w", err)
		}
	}
	if c.offsets != "" {
		if c.from != "" || c.to != "" {
			return s, errors.New("-offsets excludes -from and -to")
		}
		if s.offsets, err = offsetrange.Parse(c.offsets); err != nil {
			return s, fmt.Errorf("-offsets: %w", err)
		}
		return s, nil
	}
	s.from, s.to, err = offsetrange.Window(c.from, c.to, "-from", "-to")
	return s, err
}
