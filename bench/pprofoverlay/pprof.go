//go:build wxterm_bench_pprof

// This file is not a package of its own: scripts/bench.sh adds it to
// cmd/consumer with `go build -tags wxterm_bench_pprof -overlay …` to build
// .cache/bin/consumer-pprof, a copy of the consumer that serves
// net/http/pprof on $WXBENCH_PPROF_ADDR. The consumer's own sources are not
// changed, and the measured scenarios run the unmodified binary.
package main

import (
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"os"
)

func init() {
	addr := os.Getenv("WXBENCH_PPROF_ADDR")
	if addr == "" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		panic("pprof listener: " + err.Error())
	}
	go func() { _ = http.Serve(ln, nil) }()
}
