// Command wxsim serves the WeChat Pay simulator as its own process, for
// benchmarks and fault tests that run the consumer as a separate process. It
// shares keys with consumers through -keys-dir and takes fault profiles and
// reports call counts on /sim/.
//
//	GET /sim/counts   call counters (JSON)
//	PUT /sim/faults   replace the fault profile, e.g.
//	                  {"rate":0.3,"kinds":["http500","timeout"],"after_apply":true,"hang_for":"5s","latency":"100ms"}
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/peterbourgon/ff/v3"

	"github.com/wxterm/wxterm/internal/cli"
	"github.com/wxterm/wxterm/internal/wxsim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	cli.Exit("wxsim", err)
}

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wxsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8787", "listen address")
	keysDir := fs.String("keys-dir", "", "directory of the shared keys; generated there if absent (required)")
	latency := fs.Duration("latency", 0, "latency added to every call")
	autoCreate := fs.Bool("auto-create", true, "treat unknown contracts as effective ones")
	pendingFor := fs.Duration("pending-for", 0, "leave papay contracts TERMINATE_PENDING this long after a terminate (0: terminate at once)")
	notifyURL := fs.String("notify-url", "", "the notification endpoint (cmd/notify's http://host:port/v1/notify/<mchid>): enables POST "+wxsim.PathUserTerminate+"?key=K, which terminates K as its user and notifies there on WeChat Pay's schedule (empty: off)")
	notifyScale := fs.Float64("notify-time-scale", 1, "multiplies WeChat Pay's notification retry schedule (15s, 15s, 30s, 3m, …); 0.01 compresses it a hundredfold")
	signing := fs.String("signing", "public_key", "sign answers with the WeChat Pay public key (public_key) or the platform certificate (certificate)")
	if err := ff.Parse(fs, args, ff.WithEnvVarPrefix("WXSIM")); err != nil {
		return err
	}
	if *keysDir == "" {
		return errors.New("-keys-dir is required")
	}
	keys, err := wxsim.ReadKeys(*keysDir)
	if err != nil {
		if _, statErr := os.Stat(filepath.Join(*keysDir, wxsim.FileIdentity)); statErr == nil {
			return err // present but unreadable: do not overwrite
		}
		if keys, err = wxsim.NewKeys(); err != nil {
			return err
		}
		if err := keys.WriteFiles(*keysDir); err != nil {
			return err
		}
	}
	opts := keys.SimOptions()
	opts.AutoCreate, opts.Latency = *autoCreate, *latency
	opts.PendingFor = *pendingFor
	switch *signing {
	case "public_key":
	case "certificate":
		if keys.Certificate == nil {
			return fmt.Errorf("-signing certificate: %s has no %s (keys written before certificates existed)", *keysDir, wxsim.FileCertificate)
		}
		opts.Signing = wxsim.SignCertificate
	default:
		return fmt.Errorf("-signing %q: want public_key or certificate", *signing)
	}
	sim := wxsim.New(opts)
	if *notifyURL != "" {
		n, err := wxsim.NewNotifier(wxsim.NotifierOptions{PublicKeyID: keys.PublicKeyID, PlatformKey: keys.PlatformKey,
			APIv3Key: keys.APIv3Key, TimeScale: *notifyScale})
		if err != nil {
			return fmt.Errorf("-notify-url: %w", err)
		}
		sim.ServeUserTerminations(n, *notifyURL)
	}

	mux := http.NewServeMux()
	mux.Handle("/", sim)
	mux.HandleFunc("GET /sim/counts", sim.ServeCounts)
	mux.HandleFunc("PUT /sim/faults", func(w http.ResponseWriter, r *http.Request) {
		f, err := decodeFaults(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		sim.SetFaults(f)
		w.WriteHeader(http.StatusNoContent)
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(stdout, "wxsim listening on http://%s (mchid %s, keys in %s)\n", ln.Addr(), keys.MchID, *keysDir)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

var kinds = map[string]wxsim.FaultKind{}

func init() {
	for k := wxsim.FaultHTTP500; k <= wxsim.FaultSignError; k++ {
		kinds[k.String()] = k
	}
}

// decodeFaults reads a fault profile; durations are Go duration strings.
func decodeFaults(r io.Reader) (wxsim.Faults, error) {
	var in struct {
		Latency    string         `json:"latency"`
		Rate       float64        `json:"rate"`
		Kinds      []string       `json:"kinds"`
		AfterApply bool           `json:"after_apply"`
		FailFirst  map[string]int `json:"fail_first"`
		HangFor    string         `json:"hang_for"`
	}
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return wxsim.Faults{}, fmt.Errorf("faults: %w", err)
	}
	f := wxsim.Faults{Rate: in.Rate, AfterApply: in.AfterApply, FailFirst: in.FailFirst}
	var err error
	if f.Latency, err = optDuration(in.Latency); err != nil {
		return f, fmt.Errorf("faults: latency: %w", err)
	}
	if f.HangFor, err = optDuration(in.HangFor); err != nil {
		return f, fmt.Errorf("faults: hang_for: %w", err)
	}
	for _, name := range in.Kinds {
		k, ok := kinds[name]
		if !ok {
			return f, fmt.Errorf("faults: unknown kind %q", name)
		}
		f.Kinds = append(f.Kinds, k)
	}
	if f.Rate < 0 || f.Rate > 1 {
		return f, fmt.Errorf("faults: rate %v outside 0..1", f.Rate)
	}
	return f, nil
}

func optDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	return time.ParseDuration(s)
}
