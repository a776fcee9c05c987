// Command producer publishes contract-termination intents to the request
// topic, keyed by out_contract_code and partitioned as Java clients would, so
// that every intent for one contract lands on one partition and stays in order.
//
// One intent comes from flags; many come from a JSON-lines or CSV file
// (-file), every record validated against schemas/intent.v1.json before the
// first is sent:
//
//	producer -api papay_partner -out-contract-code wxwtdk20200910100000 \
//	    -plan-id 12535 -sub-mchid 1900000109 -remark 用户解约
//	producer -file cmd/producer/testdata/intents.csv -brokers kafka-1:9092,kafka-2:9092
//
// File records must carry a request_id, so re-running an interrupted import
// is harmless: the consumer answers an intent it has already seen from its
// dedupe record instead of calling WeChat Pay again.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/segmentio/kafka-go"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := runMain(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	cli.Exit("producer", err)
}

// config is every setting; each is a flag, and WXTERM_<FLAG_NAME> fills it
// from the environment.
type config struct {
	brokers, topic string
	timeout        time.Duration
	batchSize      int
	file, format   string
	skipInvalid    bool
	dryRun, quiet  bool
	api            string
	in             event.Intent // the intent flags; the rest is filled in by sendOne
}

// intentFlags describe one intent; they make no sense with -file, whose
// records describe themselves (-source excepted: it is their default).
var intentFlags = []string{"api", "out-contract-code", "request-id", "plan-id", "contract-id", "sub-mchid", "appid", "sp-appid", "sub-appid", "mchid", "remark"}

const usage = `Usage:
  producer [settings] -api API -out-contract-code CODE [-plan-id ID] [-sub-mchid ID] ... -remark TEXT
  producer [settings] -file PATH|- [-format jsonl|csv] [-skip-invalid] [-dry-run]

Publishes contract-termination intents (schemas/intent.v1.json) to the request
topic, keyed by out_contract_code. A file is JSON lines (one intent per line) or
CSV (a header row of the intent's JSON field names); every record is validated
before anything is sent. Every flag can also be set as WXTERM_<FLAG>, e.g.
WXTERM_BROKERS or WXTERM_OUT_CONTRACT_CODE.

`

func parse(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("producer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	c := &config{}
	fs.StringVar(&c.brokers, "brokers", "127.0.0.1:9092", "Kafka bootstrap brokers, comma-separated")
	fs.StringVar(&c.topic, "topic", event.TopicRequests, "request topic the intents are published to")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "how long one batch write may take, retries included")
	fs.IntVar(&c.batchSize, "batch-size", 500, "intents per write when sending a file")
	fs.StringVar(&c.file, "file", "", "publish the intents of this JSON-lines or CSV file (- for stdin)")
	fs.StringVar(&c.format, "format", "", "format of -file: jsonl or csv (default: from the extension: .jsonl, .ndjson, .json or .csv)")
	fs.BoolVar(&c.skipInvalid, "skip-invalid", false, "send a file's valid records and report the others (default: send nothing if one is invalid)")
	fs.BoolVar(&c.dryRun, "dry-run", false, "validate only: print what would be sent, send nothing")
	fs.BoolVar(&c.quiet, "quiet", false, "no progress on stderr while a file is validated and sent")
	fs.StringVar(&c.api, "api", "", "terminate API: credit_repayment, papay_partner, papay_direct or global_papay")
	fs.StringVar(&c.in.OutContractCode, "out-contract-code", "", "the merchant's contract code (digits and letters); the message key")
	fs.StringVar(&c.in.RequestID, "request-id", "", "unique id of this intent (default: a generated one, printed)")
	fs.StringVar(&c.in.PlanID, "plan-id", "", "template id (papay_partner, papay_direct)")
	fs.StringVar(&c.in.ContractID, "contract-id", "", "WeChat Pay contract id (global_papay)")
	fs.StringVar(&c.in.SubMchID, "sub-mchid", "", "sub-merchant id (papay_partner; global_papay institutional mode)")
	fs.StringVar(&c.in.AppID, "appid", "", "appid (global_papay direct mode)")
	fs.StringVar(&c.in.SpAppID, "sp-appid", "", "institution appid (global_papay institutional mode)")
	fs.StringVar(&c.in.SubAppID, "sub-appid", "", "sub-merchant appid (global_papay institutional mode, optional)")
	fs.StringVar(&c.in.MchID, "mchid", "", "merchant that acts, one the consumer holds keys for (default: the consumer's default merchant)")
	fs.StringVar(&c.in.Remark, "remark", "", "why the contract is terminated (at most 128 characters, 256 for global_papay)")
	fs.StringVar(&c.in.Source, "source", "producer", "publishing service recorded in the intent; the default for file records without one")
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix("WXTERM")); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q (a file is given with -file)", fs.Args())
	}
	c.in.API = event.API(c.api)
	if c.batchSize < 1 {
		return nil, fmt.Errorf("-batch-size %d: want at least 1", c.batchSize)
	}
	if c.timeout <= 0 {
		return nil, fmt.Errorf("-timeout %v: want a positive duration", c.timeout)
	}
	if c.file != "" {
		var set []string
		fs.Visit(func(f *flag.Flag) {
			if slices.Contains(intentFlags, f.Name) {
				set = append(set, "-"+f.Name)
			}
		})
		if len(set) > 0 {
			return nil, fmt.Errorf("%s cannot be combined with -file, whose records name their own (check WXTERM_* in the environment too)", strings.Join(set, ", "))
		}
	}
	return c, nil
}

func runMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	c, err := parse(args, stderr)
	if err != nil {
		return err
	}
	if c.file != "" {
		return sendFile(ctx, c, stdin, stdout, stderr)
	}
	return sendOne(ctx, c, stdout)
}

// sendOne publishes the intent the flags describe.
func sendOne(ctx context.Context, c *config, stdout io.Writer) error {
	in := c.in
	if in.API == "" && in.OutContractCode == "" {
		return errors.New("nothing to send: give -file, or -api, -out-contract-code, -remark and what that API needs (see -h)")
	}
	in.SchemaVersion = event.SchemaVersion
	in.RequestedAt = time.Now().UTC()
	if in.RequestID == "" {
		in.RequestID = rand.Text() // base32: fits the schema's request_id pattern
	}
	if err := event.ValidateIntent(in); err != nil {
		return err
	}
	msg, err := message(in)
	if err != nil {
		return err
	}
	if c.dryRun {
		fmt.Fprintf(stdout, "valid intent request_id=%s out_contract_code=%s (dry run: nothing sent)\n", in.RequestID, in.OutContractCode)
		return nil
	}
	w := newWriter(c)
	wctx, cancel := context.WithTimeout(ctx, c.timeout)
	err = w.WriteMessages(wctx, msg)
	cancel()
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// The id lets the operator retry the same intent rather than a new one.
		return fmt.Errorf("send request_id=%s to %s: %w (retry with -request-id %s)", in.RequestID, c.topic, err, in.RequestID)
	}
	fmt.Fprintf(stdout, "sent request_id=%s out_contract_code=%s to %s\n", in.RequestID, in.OutContractCode, c.topic)
	return nil
}

// newWriter returns a synchronous writer to the request topic; the caller
// closes it.
func newWriter(c *config) *kafka.Writer {
	var brokers []string
	for b := range strings.SplitSeq(c.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	return &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        c.topic,
		Balancer:     kafka.Murmur2Balancer{}, // a key's partition is the one Java clients pick
		RequiredAcks: kafka.RequireAll,        // the default, RequireNone, reports lost intents as sent
		BatchTimeout: 5 * time.Millisecond,    // the default, 1 s, would delay every write
		BatchSize:    c.batchSize,             // one produce request per partition per write
	}
}

// message encodes an intent as the request topic carries it.
func message(in event.Intent) (kafka.Message, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("encode request_id=%s: %w", in.RequestID, err)
	}
	return kafka.Message{Key: []byte(in.OutContractCode), Value: b}, nil
}
