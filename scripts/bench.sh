#!/usr/bin/env bash
# make bench: run the benchmark scenarios (bench/) against a real Kafka, a real Redis and the
# WeChat Pay simulator, print the table and write docs/benchmarks.md.
#
#   scripts/bench.sh                      every scenario, full sizes (about 5 minutes on 2 CPUs)
#   scripts/bench.sh -quick               small sizes, a smoke run (about 2 minutes; report in .cache/bench/quick.md)
#   scripts/bench.sh -scenarios a,e ...   any flags of `go run ./bench -h`
#
# Kafka and Redis are private to the bench (run dir .cache/run-bench, ports 29092/29093 and 26379 unless
# BENCH_KAFKA_PORT, BENCH_KAFKA_CONTROLLER_PORT, BENCH_REDIS_PORT say otherwise) and stopped at the end.
# BENCH_KEEP_SERVICES=1 leaves them running.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

export WXTERM_RUN_DIR=${BENCH_RUN_DIR:-$ROOT/.cache/run-bench}
export KAFKA_PORT=${BENCH_KAFKA_PORT:-29092}
export KAFKA_CONTROLLER_PORT=${BENCH_KAFKA_CONTROLLER_PORT:-29093}
export REDIS_PORT=${BENCH_REDIS_PORT:-26379}

log() { echo "bench.sh: $*" >&2; }

stop_services() {
  [[ ${BENCH_KEEP_SERVICES:-} == 1 ]] && return
  scripts/kafka.sh stop || true
  scripts/redis.sh stop || true
}

# Reuse our own instances if a previous run left them up; else start them (start prints the address).
kafka=$(scripts/kafka.sh status 2>/dev/null || true)
redis=$(scripts/redis.sh status 2>/dev/null || true)
trap stop_services EXIT
[[ -n $kafka ]] || { log "starting Kafka"; kafka=$(scripts/kafka.sh start); }
[[ -n $redis ]] || { log "starting Redis"; redis=$(scripts/redis.sh start); }
log "Kafka $kafka, Redis $redis"

BIN=$ROOT/.cache/bin
mkdir -p "$BIN" "$ROOT/.cache/bench"
log "building consumer, wxsim and the profiling copy of the consumer into $BIN"
go build -o "$BIN/consumer" ./cmd/consumer
go build -o "$BIN/wxsim" ./cmd/wxsim
overlay=$ROOT/.cache/bench/overlay.json
printf '{"Replace":{"%s":"%s"}}\n' "$ROOT/cmd/consumer/zz_bench_pprof.go" "$ROOT/bench/pprofoverlay/pprof.go" >"$overlay"
go build -tags wxterm_bench_pprof -overlay "$overlay" -o "$BIN/consumer-pprof" ./cmd/consumer

go run ./bench -kafka "$kafka" -redis "$redis" -bin "$BIN" -kafka-version "$(scripts/kafka.sh version)" "$@"
