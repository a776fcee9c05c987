#!/usr/bin/env bash
# A private Redis server on 127.0.0.1 for tests (not the system service), no persistence.
#
#   scripts/redis.sh start     install redis-server if missing, start, print 127.0.0.1:<port>
#   scripts/redis.sh stop      shut it down and delete its directory
#   scripts/redis.sh restart   shut down and start again on the same port (empty: nothing is saved)
#   scripts/redis.sh halt      shut down only (port kept); `resume` starts it again
#   scripts/redis.sh status    print the address and exit 0 if running, else exit 1
#
# Env: REDIS_PORT (16379; when not set and taken, a free port is chosen), REDIS_START_TIMEOUT (s).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN=${WXTERM_RUN_DIR:-$ROOT/.cache/run} # one server per run dir
STATE=$RUN/redis.env
START_TIMEOUT=${REDIS_START_TIMEOUT:-20}

die() { echo "redis.sh: $*" >&2; exit 1; }
log() { echo "redis.sh: $*" >&2; }

case ${1:-} in
  start | stop | halt | resume | restart)
    # One state change at a time (parallel test packages, two shells); the daemon does not keep fd 9.
    mkdir -p "$RUN" && exec 9>"$RUN/redis.lock"
    flock -w 600 9 || die "timed out waiting for $RUN/redis.lock" ;;
esac

DIR='' PORT=''
# shellcheck source=/dev/null
[[ -f $STATE ]] && source "$STATE"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port() {
  local p
  if [[ -n ${REDIS_PORT:-} ]]; then
    port_free "$REDIS_PORT" || die "REDIS_PORT=$REDIS_PORT is already in use on 127.0.0.1"
    echo "$REDIS_PORT"; return
  fi
  for p in 16379 $(shuf -i 20000-32000 -n 100); do # below the kernel's ephemeral ports (32768-)
    port_free "$p" && { echo "$p"; return; }
  done
  die "no free port found"
}

install() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return
  log "installing redis-server with apt-get"
  local sudo='' alog; alog=$(mktemp)
  [[ $(id -u) == 0 ]] || sudo=sudo
  # RUNLEVEL=1: the package's init script must not start the system service.
  if ! { $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
      apt-get install -y -qq redis-server; } >"$alog" 2>&1; then
    tail -n 20 "$alog" >&2
    die "apt-get install redis-server failed (log: $alog)"
  fi
  rm -f "$alog"
}

cli() { timeout 5 redis-cli -h 127.0.0.1 -p "$PORT" "$@"; }

pid_is_redis() { grep -qa redis-server "/proc/$1/cmdline" 2>/dev/null; }
alive() {
  local p; p=$(cat "$DIR/redis.pid" 2>/dev/null) || return 1
  pid_is_redis "$p"
}

launch() {
  local deadline=$((SECONDS + START_TIMEOUT))
  port_free "$PORT" || die "port $PORT is taken by another process"
  redis-server --bind 127.0.0.1 --port "$PORT" --save "" --appendonly no --daemonize yes \
    --pidfile "$DIR/redis.pid" --dir "$DIR" --logfile "$DIR/redis.log" >/dev/null 9>&- ||
    die "redis-server failed to start (log: $DIR/redis.log)"
  until [[ $(cli ping 2>/dev/null) == PONG ]]; do
    if ((SECONDS >= deadline)); then
      tail -n 20 "$DIR/redis.log" >&2 || true
      die "redis not answering PING after ${START_TIMEOUT}s"
    fi
    sleep 0.1
  done
}

halt() {
  local p deadline=$((SECONDS + 10))
  alive || return 0
  p=$(cat "$DIR/redis.pid")
  cli shutdown nosave >/dev/null 2>&1 || true
  # Redis removes its pid file before it exits: wait on the pid itself.
  while pid_is_redis "$p" && ((SECONDS < deadline)); do sleep 0.1; done
  if pid_is_redis "$p"; then kill -KILL "$p" 2>/dev/null || true; fi
  while pid_is_redis "$p"; do sleep 0.1; done
  # The process can look gone a moment before the kernel closes its socket.
  deadline=$((SECONDS + 10))
  until port_free "$PORT" || ((SECONDS >= deadline)); do sleep 0.1; done
}

start() {
  if [[ -n $DIR ]] && alive; then echo "127.0.0.1:$PORT"; return; fi
  [[ -n $DIR ]] && rm -rf "$DIR" "$STATE"
  install
  PORT=$(pick_port)
  DIR=$(mktemp -d "${TMPDIR:-/tmp}/wxterm-redis.XXXXXX")
  mkdir -p "$RUN"
  printf 'DIR=%q\nPORT=%q\n' "$DIR" "$PORT" >"$STATE"
  launch
  echo "127.0.0.1:$PORT"
}

stop() {
  [[ -n $DIR ]] || { log "not running"; return 0; }
  halt
  rm -rf "$DIR" "$STATE"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  halt) [[ -n $DIR ]] || die "no redis started"; halt ;;
  resume) [[ -n $DIR ]] || die "no redis started"; alive || launch; echo "127.0.0.1:$PORT" ;;
  restart) [[ -n $DIR ]] || die "no redis started"; halt; launch; echo "127.0.0.1:$PORT" ;;
  status)
    if [[ -n $DIR ]] && alive; then echo "127.0.0.1:$PORT"; else log "not running"; exit 1; fi ;;
  *) die "usage: redis.sh start|stop|restart|halt|resume|status" ;;
esac
