#!/usr/bin/env bash
# `make faults`: the fault suite (faults/) against a real Kafka broker, a real Redis server and the
# WeChat Pay simulator, all on instances of its own (run dir and ports apart from `make test`'s).
#
#   scripts/faults.sh                         the whole suite (about 6 to 12 minutes on 2 cores)
#   scripts/faults.sh -run 'kill|systemic'    some scenarios; any argument goes to the suite (-h lists them)
#
# Env: FAULTS_RUN_DIR (.cache/run-faults), FAULTS_KAFKA_PORT (18092), FAULTS_KAFKA_CONTROLLER_PORT (18093),
# FAULTS_REDIS_PORT (16479), FAULTS_TIMEOUT (16m: hard bound of the suite process). Keep the ports below
# the kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range, 32768-60999 by default): the suite
# opens thousands of connections, and a port of that range can be taken as a source port when the broker
# or Redis has to bind it again (start, restart, resume), which then fails with "Address already in use".
# Services this script starts are stopped on exit, also on failure; ones already up in its run dir are reused.
# The table and details of the last run are written to .cache/faults/last-run.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The ctl scripts act on the instances of WXTERM_RUN_DIR: the suite's own, not the default ones.
export WXTERM_RUN_DIR=${FAULTS_RUN_DIR:-$PWD/.cache/run-faults}
export KAFKA_PORT=${FAULTS_KAFKA_PORT:-18092}
export KAFKA_CONTROLLER_PORT=${FAULTS_KAFKA_CONTROLLER_PORT:-18093}
export REDIS_PORT=${FAULTS_REDIS_PORT:-16479}

stops=()
# shellcheck disable=SC2317 # called from the trap
cleanup() { local s; for s in "${stops[@]}"; do "$s" stop || true; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/redis.sh status >/dev/null 2>&1 || stops+=(scripts/redis.sh)
redis=$(scripts/redis.sh start)
scripts/kafka.sh status >/dev/null 2>&1 || stops+=(scripts/kafka.sh)
kafka=$(scripts/kafka.sh start)
echo "faults: Kafka $(scripts/kafka.sh version) at $kafka, $(redis-server --version | cut -d' ' -f1-3) at $redis (run dir $WXTERM_RUN_DIR)"

bin=$PWD/.cache/bin
mkdir -p "$bin"
echo "faults: building cmd/consumer, cmd/wxsim and faults into $bin"
go build -o "$bin/consumer" ./cmd/consumer
go build -o "$bin/wxsim" ./cmd/wxsim
go build -o "$bin/faults" ./faults

# Not exec: the trap must stop the services afterwards. The suite bounds itself (-timeout); timeout(1)
# is the backstop, and the suite's children die with it.
status=0
timeout --signal=TERM --kill-after=30s "${FAULTS_TIMEOUT:-16m}" \
  "$bin/faults" -kafka "$kafka" -redis "$redis" \
  -kafka-ctl "$PWD/scripts/kafka.sh" -redis-ctl "$PWD/scripts/redis.sh" \
  -bin "$bin" -work "$PWD/.cache/faults" "$@" || status=$?
exit "$status"
