// Command notify is the endpoint WeChat Pay calls with contract
// notifications (terminations and signings). It verifies each one with the
// addressed merchant's WeChat Pay keys, decrypts it with the merchant's
// APIv3 key, and answers 200 only once it is written to the notifications
// topic with acks=all; the consumer turns each termination into a result.
//
// It is a command of its own, not a listener of the consumer: it faces the
// internet and needs no key that can call WeChat Pay, so it is exposed,
// scaled and secured apart from the consumer (docs/notify.md).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wxterm/wxterm/internal/cli"
	"github.com/wxterm/wxterm/internal/notify"
)

func main() {
	cli.Exit("notify", runMain(context.Background(), os.Args[1:], os.Stderr, nil))
}

// listening receives the endpoint's and the operations' addresses once
// both listen (tests use it with port 0).
type listening func(notifyAddr, httpAddr string)

func runMain(ctx context.Context, args []string, stderr io.Writer, started listening) error {
	c, err := parse(args, stderr)
	if err != nil {
		return err
	}
	log, err := cli.NewLogger(c.logLevel, c.logFormat, stderr)
	if err != nil {
		return err
	}
	ms, err := loadMerchants(c)
	if err != nil {
		return err
	}
	_, transport, err := c.kafka.Security()
	if err != nil {
		return err
	}
	pub := notify.NewKafkaPublisher(strings.Split(c.brokers, ","), c.topic, transport)
	defer pub.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h, err := notify.New(notify.Options{
		Merchants: ms, Publisher: pub, Metrics: notify.NewMetrics(reg), Logger: log,
		MaxBodyBytes: c.maxBody, MaxSkew: c.maxSkew, PublishTimeout: c.publishWait,
	})
	if err != nil {
		return err
	}

	var g run.Group
	nln, err := net.Listen("tcp", c.listenAddr)
	if err != nil {
		return fmt.Errorf("-listen-addr: %w", err)
	}
	hln, err := net.Listen("tcp", c.httpAddr)
	if err != nil {
		nln.Close()
		return fmt.Errorf("-http-addr: %w", err)
	}
	// WeChat Pay waits 5 s for an answer; bound every phase of a request so
	// a slow client cannot hold a connection much longer.
	serve(&g, nln, &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: c.publishWait + 5*time.Second, IdleTimeout: time.Minute})
	serve(&g, hln, &http.Server{Handler: opsHandler(pub, reg), ReadHeaderTimeout: 5 * time.Second})
	g.Add(run.SignalHandler(ctx, syscall.SIGINT, syscall.SIGTERM))

	log.Info("notify started", "brokers", c.brokers, "topic", c.topic, "merchants", len(ms),
		"listen", nln.Addr().String(), "http", hln.Addr().String())
	if started != nil {
		started(nln.Addr().String(), hln.Addr().String())
	}
	err = g.Run()
	var sig *run.SignalError
	switch {
	case errors.As(err, &sig):
		log.Info("stopped", "signal", sig.Signal.String())
		return nil
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return nil // stopped by the caller
	}
	return err
}

// serve runs srv on ln in g; stopping drains requests in flight, so a
// notification being written is still answered.
func serve(g *run.Group, ln net.Listener, srv *http.Server) {
	g.Add(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, func(error) {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
}

func opsHandler(pub *notify.KafkaPublisher, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	// Ready while Kafka serves the topic: a replica that cannot store
	// notifications is taken out of the Service, and WeChat Pay's request
	// goes to one that can (or is refused at the Ingress and retried).
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := pub.Ready(ctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}
