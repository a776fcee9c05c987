package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/schemas"
)

const (
	topic      = "contract-termination.requested"
	partitions = 4
)

// cluster starts an in-process Kafka with the request topic and returns its
// address.
func cluster(t *testing.T) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

type result struct {
	stdout, stderr string
	err            error
}

func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	err := runMain(ctx, args, strings.NewReader(stdin), &out, &errb)
	return result{out.String(), errb.String(), err}
}

// published reads back every message of the request topic, checks that it
// is keyed and partitioned by its out_contract_code, and returns the intents.
func published(t *testing.T, broker string) []event.Intent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for p := range partitions {
		req.Topics[topic] = append(req.Topics[topic], kafka.LastOffsetOf(p))
	}
	resp, err := (&kafka.Client{Addr: kafka.TCP(broker)}).ListOffsets(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var got []event.Intent
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			t.Fatalf("partition %d: %v", po.Partition, po.Error)
		}
		if po.LastOffset <= 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: topic, Partition: po.Partition, MaxWait: 100 * time.Millisecond})
		for range po.LastOffset {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("partition %d: %v", po.Partition, err)
			}
			in, err := event.DecodeIntent(m.Value)
			if err != nil {
				t.Errorf("published %s: %v", m.Value, err)
			}
			if string(m.Key) != in.OutContractCode {
				t.Errorf("got key %q; want out_contract_code %q", m.Key, in.OutContractCode)
			}
			if want := (kafka.Murmur2Balancer{}).Balance(m, 0, 1, 2, 3); m.Partition != want {
				t.Errorf("key %q: got partition %d; want %d, as Java clients pick", m.Key, m.Partition, want)
			}
			got = append(got, in)
		}
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	}
	return got
}

func requestIDs(ins []event.Intent) []string {
	var ids []string
	for _, in := range ins {
		ids = append(ids, in.RequestID)
	}
	slices.Sort(ids)
	return ids
}

func TestFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string // substring; "" for success
		want    event.Intent
	}{
		{
			name: "papay_partner",
			args: []string{"-api", "papay_partner", "-out-contract-code", "wxwtdk20200910100000", "-plan-id", "12535", "-sub-mchid", "1900000109", "-remark", "用户解约", "-request-id", "req-1", "-source", "ops"},
			want: event.Intent{API: event.PapayPartner, RequestID: "req-1", Source: "ops", OutContractCode: "wxwtdk20200910100000", PlanID: "12535", SubMchID: "1900000109", Remark: "用户解约"},
		},
		{
			name: "credit_repayment with a generated request_id",
			args: []string{"-api", "credit_repayment", "-out-contract-code", "Wx1", "-remark", "bye", "-mchid", "1230000109"},
			want: event.Intent{API: event.CreditRepayment, Source: "producer", OutContractCode: "Wx1", MchID: "1230000109", Remark: "bye"},
		},
		{
			name: "global_papay direct",
			args: []string{"-api", "global_papay", "-out-contract-code", "gp1", "-contract-id", "100005698", "-appid", "wxcbda96de0b165486", "-remark", "bye", "-request-id", "req-3"},
			want: event.Intent{API: event.GlobalPapay, RequestID: "req-3", Source: "producer", OutContractCode: "gp1", ContractID: "100005698", AppID: "wxcbda96de0b165486", Remark: "bye"},
		},
		{
			name: "global_papay institutional",
			args: []string{"-api", "global_papay", "-out-contract-code", "gp2", "-contract-id", "100005699", "-sp-appid", "wxsp", "-sub-mchid", "10000097", "-sub-appid", "wxsub", "-remark", "bye", "-request-id", "req-4"},
			want: event.Intent{API: event.GlobalPapay, RequestID: "req-4", Source: "producer", OutContractCode: "gp2", ContractID: "100005699", SpAppID: "wxsp", SubMchID: "10000097", SubAppID: "wxsub", Remark: "bye"},
		},
		{name: "missing plan_id", args: []string{"-api", "papay_direct", "-out-contract-code", "abc", "-remark", "x"}, wantErr: "plan_id"},
		{name: "code with a dash", args: []string{"-api", "credit_repayment", "-out-contract-code", "a-b", "-remark", "x"}, wantErr: "/out_contract_code"},
		{name: "remark too long", args: []string{"-api", "credit_repayment", "-out-contract-code", "ab", "-remark", strings.Repeat("x", 129)}, wantErr: "/remark"},
		{name: "unknown api", args: []string{"-api", "papay_magic", "-out-contract-code", "ab", "-remark", "x"}, wantErr: "/api"},
		{name: "nothing", args: nil, wantErr: "nothing to send"},
		{name: "stray argument", args: []string{"intents.csv"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			broker := cluster(t)
			before := time.Now()
			r := run(t, "", append([]string{"-brokers", broker}, tt.args...)...)
			got := published(t, broker)
			if tt.wantErr != "" {
				if r.err == nil || !strings.Contains(r.err.Error(), tt.wantErr) {
					t.Fatalf("got error %v; want one mentioning %q", r.err, tt.wantErr)
				}
				if len(got) != 0 {
					t.Errorf("got %d intents published; want none", len(got))
				}
				return
			}
			if r.err != nil {
				t.Fatalf("got error %v; want none (stderr %s)", r.err, r.stderr)
			}
			if len(got) != 1 {
				t.Fatalf("got %d intents published; want 1", len(got))
			}
			in := got[0]
			if tt.want.RequestID == "" {
				// Generated: it must be the one printed, so it can be looked up.
				if in.RequestID == "" || !strings.Contains(r.stdout, "request_id="+in.RequestID) {
					t.Errorf("got request_id %q, stdout %q; want a generated id, printed", in.RequestID, r.stdout)
				}
				tt.want.RequestID = in.RequestID
			}
			if in.RequestedAt.Before(before.Add(-time.Second)) || in.RequestedAt.After(time.Now()) {
				t.Errorf("got requested_at %v; want now", in.RequestedAt)
			}
			tt.want.SchemaVersion, tt.want.RequestedAt = 1, in.RequestedAt
			if in != tt.want {
				t.Errorf("got %+v; want %+v", in, tt.want)
			}
		})
	}
}

// examplesJSONL writes the schema's example intents as a JSON-lines file.
func examplesJSONL(t *testing.T) (path string, ids []string) {
	t.Helper()
	names, err := fs.Glob(schemas.FS, "examples/intent-*.json")
	if err != nil || len(names) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	var buf bytes.Buffer
	for _, name := range names {
		b, err := fs.ReadFile(schemas.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		in, err := event.DecodeIntent(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ids = append(ids, in.RequestID)
		buf.Write(bytes.TrimSpace(b))
		buf.WriteByte('\n')
	}
	path = filepath.Join(t.TempDir(), "examples.ndjson")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	return path, ids
}

// generated writes n valid CSV records, and bad invalid ones after every
// tenth, into a temporary file.
func generated(t *testing.T, n, bad int) string {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString("request_id,api,out_contract_code,plan_id,remark\n")
	for i := range n {
		fmt.Fprintf(&buf, "gen-%d,papay_direct,gen%d,12535,bulk\n", i, i)
		if i%10 == 0 && bad > 0 {
			fmt.Fprintf(&buf, "gen-bad-%d,papay_direct,gen-bad-%d,12535,bulk\n", i, i)
			bad--
		}
	}
	path := filepath.Join(t.TempDir(), "generated.csv")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func ids(prefix string, n int) []string {
	var s []string
	for i := range n {
		s = append(s, fmt.Sprintf("%s%d", prefix, i))
	}
	slices.Sort(s)
	return s
}

func TestFile(t *testing.T) {
	examples, exampleIDs := examplesJSONL(t)
	jsonl, err := os.ReadFile("testdata/intents.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	jsonlIDs := []string{"file-jsonl-cr-0001", "file-jsonl-gp-0001", "file-jsonl-gp-0002", "file-jsonl-pd-0001", "file-jsonl-pp-0001"}
	csvIDs := []string{"file-csv-cr-0001", "file-csv-gp-0001", "file-csv-gp-0002", "file-csv-pd-0001", "file-csv-pp-0001"}
	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantIDs    []string // request ids published, sorted
		wantErr    string   // substring; "" for success
		wantStdout []string // substrings
		wantStderr []string // substrings
	}{
		{name: "schema examples", args: []string{"-file", examples}, wantIDs: exampleIDs, wantStdout: []string{"sent 5 intents to " + topic}},
		{name: "jsonl fixture", args: []string{"-file", "testdata/intents.jsonl"}, wantIDs: jsonlIDs},
		{name: "csv fixture", args: []string{"-file", "testdata/intents.csv"}, wantIDs: csvIDs},
		{name: "stdin", args: []string{"-file", "-", "-format", "jsonl"}, stdin: string(jsonl), wantIDs: jsonlIDs},
		{name: "stdin csv", args: []string{"-file", "-", "-format", "csv"}, stdin: "request_id,api,out_contract_code,remark\ns-1,credit_repayment,abc,bye\n", wantIDs: []string{"s-1"}},
		{
			name: "invalid jsonl refuses the whole file", args: []string{"-file", "testdata/invalid.jsonl"},
			wantErr:    "3 of 5 records invalid; nothing sent",
			wantStderr: []string{"line 2: /: missing property 'plan_id'", "line 4: /: additional properties 'amount' not allowed", "line 5: not JSON"},
		},
		{
			name: "skip-invalid jsonl", args: []string{"-file", "testdata/invalid.jsonl", "-skip-invalid"},
			wantIDs: []string{"bad-0001", "bad-0004"}, wantStdout: []string{"sent 2 intents", "; 3 invalid skipped"}, wantStderr: []string{"line 5: not JSON"},
		},
		{
			name: "invalid csv refuses the whole file", args: []string{"-file", "testdata/invalid.csv"},
			wantErr:    "3 of 5 records invalid; nothing sent",
			wantStderr: []string{"line 3: /: missing property 'plan_id'", "line 4: 4 fields; want 5", "line 5: /: missing property 'request_id'"},
		},
		{name: "skip-invalid csv", args: []string{"-file", "testdata/invalid.csv", "-skip-invalid"}, wantIDs: []string{"bad-csv-0001", "bad-csv-0005"}},
		{
			name: "many batches", args: []string{"-file", generated(t, 1234, 0), "-batch-size", "100"},
			wantIDs: ids("gen-", 1234), wantStdout: []string{"sent 1234 intents"},
		},
		{
			name: "report capped at 20", args: []string{"-file", generated(t, 300, 25), "-quiet"},
			wantErr: "25 of 325 records invalid", wantStderr: []string{"line 3: /out_contract_code", "… and 5 more invalid records"},
		},
		{name: "dry run", args: []string{"-file", "testdata/intents.csv", "-dry-run"}, wantStdout: []string{"5 valid intents in testdata/intents.csv, 0 invalid (dry run: nothing sent)"}},
		{name: "dry run flags", args: []string{"-api", "credit_repayment", "-out-contract-code", "abc", "-remark", "x", "-dry-run"}, wantStdout: []string{"dry run: nothing sent"}},
		{name: "unknown column", args: []string{"-file", "testdata/unknown-column.csv"}, wantErr: `line 1: unknown column "amount"`},
		{name: "no request_id column", args: []string{"-file", "-", "-format", "csv"}, stdin: "api,out_contract_code,remark\ncredit_repayment,abc,x\n", wantErr: "line 1: no request_id column"},
		{name: "bad quoting", args: []string{"-file", "-", "-format", "csv"}, stdin: "request_id,api,out_contract_code,remark\nr1,credit_repayment,abc,x\"y\n", wantErr: "line 2"},
		{name: "unknown format", args: []string{"-file", "testdata/intents.csv", "-format", "xml"}, wantErr: `-format "xml"`},
		{name: "unknown extension", args: []string{"-file", "main.go"}, wantErr: "cannot tell the format"},
		{name: "stdin without format", args: []string{"-file", "-"}, wantErr: "-format"},
		{name: "unreadable file", args: []string{"-file", "testdata/missing.jsonl"}, wantErr: "testdata/missing.jsonl"},
		{name: "empty file", args: []string{"-file", "-", "-format", "jsonl"}, stdin: "\n\n", wantErr: "no valid intents"},
		{name: "intent flags with -file", args: []string{"-file", "testdata/intents.csv", "-api", "papay_direct"}, wantErr: "-api cannot be combined with -file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			broker := cluster(t)
			r := run(t, tt.stdin, append([]string{"-brokers", broker}, tt.args...)...)
			if tt.wantErr == "" && r.err != nil {
				t.Fatalf("got error %v; want none (stderr %s)", r.err, r.stderr)
			}
			if tt.wantErr != "" && (r.err == nil || !strings.Contains(r.err.Error(), tt.wantErr)) {
				t.Fatalf("got error %v; want one mentioning %q", r.err, tt.wantErr)
			}
			for _, s := range tt.wantStdout {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("got stdout %q; want it to mention %q", r.stdout, s)
				}
			}
			for _, s := range tt.wantStderr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("got stderr %q; want it to mention %q", r.stderr, s)
				}
			}
			if got := requestIDs(published(t, broker)); !slices.Equal(got, tt.wantIDs) {
				t.Errorf("got %d published %.200v; want %d %.200v", len(got), got, len(tt.wantIDs), tt.wantIDs)
			}
		})
	}
}

func TestCSVDefaults(t *testing.T) {
	broker := cluster(t)
	before := time.Now().Add(-time.Second)
	in := "request_id,api,out_contract_code,remark,source\nr1,credit_repayment,abc,x,\nr2,credit_repayment,abd,y,crm\n"
	if r := run(t, in, "-brokers", broker, "-file", "-", "-format", "csv", "-source", "ops-import"); r.err != nil {
		t.Fatal(r.err)
	}
	got := published(t, broker)
	slices.SortFunc(got, func(a, b event.Intent) int { return strings.Compare(a.RequestID, b.RequestID) })
	if len(got) != 2 {
		t.Fatalf("got %d intents; want 2", len(got))
	}
	for i, want := range []string{"ops-import", "crm"} {
		if got[i].Source != want || got[i].SchemaVersion != 1 || got[i].RequestedAt.Before(before) {
			t.Errorf("got %+v; want source %q, schema_version 1, requested_at now", got[i], want)
		}
	}
}

func TestUnreachableBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	r := run(t, "", "-brokers", addr, "-timeout", "2s", "-api", "credit_repayment", "-out-contract-code", "abc", "-remark", "x", "-request-id", "r-9")
	if r.err == nil || !strings.Contains(r.err.Error(), "retry with -request-id r-9") {
		t.Errorf("got error %v; want a failed send naming the request id", r.err)
	}
}

func TestHelpListsEveryFlag(t *testing.T) {
	r := run(t, "", "-h")
	for _, f := range append([]string{"brokers", "topic", "timeout", "batch-size", "file", "format", "skip-invalid", "dry-run", "quiet", "source"}, intentFlags...) {
		if !strings.Contains(r.stderr, "  -"+f+" ") && !strings.Contains(r.stderr, "  -"+f+"\n") {
			t.Errorf("-h does not list -%s", f)
		}
	}
}

func TestProgress(t *testing.T) {
	t0 := time.Now()
	tests := []struct {
		tty  bool
		want string
	}{
		{false, "at 500ms\nat 1.1s\n"},
		{true, "\rat 500ms\x1b[K\rat 1.1s\x1b[K\n"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		p := &progress{w: &buf, tty: tt.tty}
		p.start(t0)
		for _, d := range []time.Duration{100 * time.Millisecond, 499 * time.Millisecond, 500 * time.Millisecond, 900 * time.Millisecond, 1100 * time.Millisecond} {
			if p.due(t0.Add(d)) {
				p.show("at " + d.String())
			}
		}
		p.end()
		if buf.String() != tt.want {
			t.Errorf("tty %v: got %q; want %q", tt.tty, buf.String(), tt.want)
		}
	}
	quiet := newProgress(&bytes.Buffer{}, true)
	if quiet.due(time.Now().Add(time.Hour)) {
		t.Error("got a progress line with -quiet; want none")
	}
}

func TestReadLineBounded(t *testing.T) {
	long := strings.Repeat("x", 3*maxLine)
	br := bufio.NewReaderSize(strings.NewReader(long+"\nshort\n"), 16) // small: lines span many reads
	tests := []struct {
		want string
		long bool
	}{{"", true}, {"short\n", false}}
	for _, tt := range tests {
		line, isLong, err := readLine(br, nil, maxLine)
		if err != nil || string(line) != tt.want || isLong != tt.long {
			t.Errorf("got %q, %v, %v; want %q, %v, nil", line, isLong, err, tt.want, tt.long)
		}
	}
}

func TestDecodeKeepsFileOrder(t *testing.T) {
	var buf strings.Builder
	for i := range 3000 {
		code := fmt.Sprintf("c%d", i)
		if i%7 == 0 {
			code = "bad-code" // invalid: a dash
		}
		fmt.Fprintf(&buf, `{"schema_version":1,"request_id":"r%d","requested_at":"2026-11-22T10:00:00Z","source":"t","api":"credit_repayment","out_contract_code":%q,"remark":"x"}`+"\n", i, code)
	}
	tests := []struct {
		name     string
		stopAt   int // fn fails at this line; 0: never
		wantSeen int
	}{
		{"all", 0, 3000},
		{"stop early", 1000, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := 0
			err := decode(context.Background(), strings.NewReader(buf.String()), formatJSONL, defaults{}, func(r record) error {
				seen++
				if r.line != seen {
					t.Fatalf("got line %d; want %d", r.line, seen)
				}
				if wantBad := (r.line-1)%7 == 0; (r.err != nil) != wantBad || (!wantBad && r.in.RequestID != fmt.Sprintf("r%d", r.line-1)) {
					t.Fatalf("line %d: got %+v, %v; want invalid %v", r.line, r.in, r.err, wantBad)
				}
				if r.line == tt.stopAt {
					return errStop
				}
				return nil
			})
			if seen != tt.wantSeen || (tt.stopAt > 0) != errors.Is(err, errStop) || (tt.stopAt == 0 && err != nil) {
				t.Errorf("got %d records, error %v; want %d, stopped %v", seen, err, tt.wantSeen, tt.stopAt > 0)
			}
		})
	}
}

var errStop = errors.New("stop")
