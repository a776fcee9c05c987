#!/usr/bin/env bash
# `make test`: start a real Redis and Kafka, then vet, gofmt check and the race-enabled test suite.
# Services this script starts are stopped on exit, also on failure; ones already up are reused.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

stops=()
cleanup() { local s; for s in "${stops[@]}"; do "$s" stop || true; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# helm builds from the Go module proxy (minutes, once): let it run while the services start.
helm_log=$(mktemp)
scripts/helm.sh >"$helm_log" 2>&1 &
helm_pid=$!

scripts/redis.sh status >/dev/null 2>&1 || stops+=(scripts/redis.sh)
WXTERM_TEST_REDIS=$(scripts/redis.sh start)
stops+=(scripts/redis-cluster.sh)
WXTERM_TEST_REDIS_CLUSTER=$(scripts/redis-cluster.sh start)
scripts/kafka.sh status >/dev/null 2>&1 || stops+=(scripts/kafka.sh)
WXTERM_TEST_KAFKA=$(scripts/kafka.sh start)
# The TLS/SASL broker and the TLS/ACL Redis (scripts/kafka.sh fetched the jars they share).
scripts/kafka-secure.sh status >/dev/null 2>&1 || stops+=(scripts/kafka-secure.sh)
kafka_secure=$(scripts/kafka-secure.sh start)
scripts/redis-secure.sh status >/dev/null 2>&1 || stops+=(scripts/redis-secure.sh)
redis_secure=$(scripts/redis-secure.sh start)
# WXTERM_TEST_KAFKA_SECURE_* / WXTERM_TEST_REDIS_SECURE_*: endpoints, CA and client files, test-only passwords.
eval "export $kafka_secure $redis_secure"
# WXTERM_TEST_KAFKA_CTL / WXTERM_TEST_REDIS_CTL: fault tests run "$CTL restart" (or halt/resume).
export WXTERM_TEST_KAFKA WXTERM_TEST_REDIS WXTERM_TEST_REDIS_CLUSTER
export WXTERM_TEST_KAFKA_CTL=$PWD/scripts/kafka.sh WXTERM_TEST_REDIS_CTL=$PWD/scripts/redis.sh
echo "Kafka $(scripts/kafka.sh version) at $WXTERM_TEST_KAFKA (TLS/SASL at $WXTERM_TEST_KAFKA_SECURE_ADDR)," \
  "$(redis-server --version | cut -d' ' -f1-3) at $WXTERM_TEST_REDIS (TLS/ACL at $WXTERM_TEST_REDIS_SECURE_ADDR), Redis Cluster at $WXTERM_TEST_REDIS_CLUSTER"

echo "helm lint and template (scripts/helm.sh)"
if ! wait "$helm_pid"; then
  cat "$helm_log" >&2
  echo "scripts/helm.sh failed" >&2
  exit 1
fi
cat "$helm_log"
export WXTERM_TEST_HELM_DIR=$PWD/.cache/helm

echo "go vet ./..."
go vet ./...
echo "gofmt check"
unformatted=$(find . -path ./.cache -prune -o -name '*.go' -exec gofmt -l {} +)
if [[ -n $unformatted ]]; then
  echo "gofmt -l reports unformatted files:" >&2
  echo "$unformatted" >&2
  exit 1
fi
echo "go test -race -count=1 -timeout 12m ./..."
go test -race -count=1 -timeout 12m ./...
