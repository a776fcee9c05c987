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
# shellcheck source-path=SCRIPTDIR source=lib/service.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/service.sh"

SVC=redis.sh PIDFILE=redis.pid DAEMON=redis-server
STATE=$RUN/redis.env
START_TIMEOUT=${REDIS_START_TIMEOUT:-20}

case ${1:-} in
  start | stop | halt | resume | restart) lock redis ;;
esac

DIR='' PORT=''
load_state "$STATE"

cli() { timeout 5 redis-cli -h 127.0.0.1 -p "$PORT" "$@"; }

launch() {
  local deadline=$((SECONDS + START_TIMEOUT))
  port_free "$PORT" || die "port $PORT is taken by another process"
  redis-server --bind 127.0.0.1 --port "$PORT" --save "" --appendonly no --daemonize yes \
    --pidfile "$DIR/redis.pid" --dir "$DIR" --logfile "$DIR/redis.log" >/dev/null 9>&- ||
    die "redis-server failed to start (log: $DIR/redis.log)"
  redis_await "$deadline" PING
}

halt() { redis_halt shutdown; }

start() {
  if [[ -n $DIR ]] && alive; then echo "127.0.0.1:$PORT"; return; fi
  [[ -n $DIR ]] && rm -rf "$DIR" "$STATE"
  redis_install
  PORT=$(pick_port REDIS_PORT 16379)
  DIR=$(mktemp -d "${TMPDIR:-/tmp}/wxterm-redis.XXXXXX")
  mkdir -p "$RUN"
  save_state "$STATE" DIR PORT
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
