#!/usr/bin/env bash
# A private 3-master Redis Cluster on 127.0.0.1 for tests: Debian's redis-server in cluster mode.
#
#   scripts/redis-cluster.sh start    start three nodes, join them, print their addresses (comma-separated)
#   scripts/redis-cluster.sh stop     shut them down and delete their directory
#
# Env: REDIS_CLUSTER_PORT (17001: nodes use it and the next two ports), WXTERM_RUN_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN=${WXTERM_RUN_DIR:-$ROOT/.cache/run}
DIR=$RUN/redis-cluster
BASE=${REDIS_CLUSTER_PORT:-17001}
PORTS=("$BASE" $((BASE + 1)) $((BASE + 2)))

die() { echo "redis-cluster.sh: $*" >&2; exit 1; }

start() {
  command -v redis-server >/dev/null || die "redis-server not installed (scripts/redis.sh start installs it)"
  stop >/dev/null 2>&1 || true
  mkdir -p "$DIR"
  local p addrs=()
  for p in "${PORTS[@]}"; do
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && die "port $p is in use (set REDIS_CLUSTER_PORT)"
    mkdir -p "$DIR/$p"
    redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file "$DIR/$p/nodes.conf" \
      --cluster-node-timeout 2000 --save '' --appendonly no --dir "$DIR/$p" --daemonize yes \
      --pidfile "$DIR/$p/redis.pid" --logfile "$DIR/$p/redis.log" >/dev/null
    addrs+=("127.0.0.1:$p")
  done
  for p in "${PORTS[@]}"; do
    for _ in $(seq 100); do timeout 2 redis-cli -p "$p" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
  done
  timeout 60 redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$DIR/create.log" 2>&1 ||
    { cat "$DIR/create.log" >&2; die "cluster create failed"; }
  for _ in $(seq 200); do
    timeout 2 redis-cli -p "$BASE" cluster info 2>/dev/null | grep -q 'cluster_state:ok' && { (IFS=,; echo "${addrs[*]}"); return; }
    sleep 0.1
  done
  die "cluster did not reach state ok"
}

stop() {
  local p
  for p in "${PORTS[@]}"; do
    timeout 5 redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true
  done
  rm -rf "$DIR"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  *) die "usage: $0 start|stop" ;;
esac
