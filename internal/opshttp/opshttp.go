// Package opshttp serves a consumer's operational endpoints, /healthz,
// /readyz and /metrics, for the service (cmd/consumer) and the local run
// (cmd/demo) alike.
package opshttp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wxterm/wxterm/internal/consumer"
)

// NewRegistry returns a registry holding the Go runtime and process
// collectors; the consumer's metrics go into it through consumer.NewMetrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// RegisterReady adds wxterm_ready, 1 while /readyz answers ready.
func RegisterReady(reg prometheus.Registerer, cons *consumer.Consumer) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wxterm_ready", Help: "1 when /readyz answers ready."},
		func() float64 {
			if cons.Ready() == nil {
				return 1
			}
			return 0
		}))
}

// Handler serves /healthz (alive), /readyz (cons.Ready, and the merchants a
// systemic fault holds while the rest work) and /metrics from reg.
func Handler(cons *consumer.Consumer, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := cons.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
		for _, h := range cons.Holds() { // ready beside merchants a systemic fault holds
			fmt.Fprintln(w, "held:", h)
		}
	})
	return mux
}

// Actor is an oklog/run actor serving h on ln until interrupted, then
// shutting the server down within two seconds.
func Actor(ln net.Listener, h http.Handler) (execute func() error, interrupt func(error)) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	return func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		}, func(error) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
		}
}
