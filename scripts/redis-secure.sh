#!/usr/bin/env bash
# A private Redis server on 127.0.0.1 that only speaks TLS and requires a password, for the
# secure-connection tests: the default user has a `requirepass` password and an ACL user has its own.
#
#   scripts/redis-secure.sh start    install redis-server if missing, start, print the exports
#   scripts/redis-secure.sh stop     shut it down and delete its directory (certificates included)
#   scripts/redis-secure.sh status   print the exports and exit 0 if running, else exit 1
#
# start and status print one line of shell-quoted KEY=VALUE pairs, for
#   vars=$(scripts/redis-secure.sh start) && eval "export $vars"
#   WXTERM_TEST_REDIS_SECURE_ADDR        the TLS port (no plain-text port is open)
#   WXTERM_TEST_REDIS_SECURE_CA_FILE     PEM CA that signed the server and client certificates
#   WXTERM_TEST_REDIS_SECURE_CERT_FILE, WXTERM_TEST_REDIS_SECURE_KEY_FILE   a client certificate, key
#                                        (optional: --tls-auth-clients optional)
#   WXTERM_TEST_REDIS_SECURE_USER, WXTERM_TEST_REDIS_SECURE_PASSWORD   the ACL user and its password
#   WXTERM_TEST_REDIS_SECURE_DEFAULT_PASSWORD                           the default user's requirepass
#
# Env: REDIS_SECURE_PORT (16380; when not set and taken, a free port is chosen), REDIS_START_TIMEOUT (s).
# Everything lives in ${WXTERM_RUN_DIR:-.cache/run}/redis-secure.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/service.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/service.sh"

SVC=redis-secure.sh PIDFILE=redis.pid DAEMON=redis-server
DIR=$RUN/redis-secure
STATE=$DIR/state.env
START_TIMEOUT=${REDIS_START_TIMEOUT:-20}

case ${1:-} in
  start | stop) lock redis-secure ;;
esac

PORT='' RUSER='' USER_PW='' DEFAULT_PW=''
load_state "$STATE"

exports() {
  print_exports WXTERM_TEST_REDIS_SECURE \
    ADDR "127.0.0.1:$PORT" CA_FILE "$DIR/tls/ca.pem" CERT_FILE "$DIR/tls/client.pem" KEY_FILE "$DIR/tls/client.key" \
    USER "$RUSER" PASSWORD "$USER_PW" DEFAULT_PASSWORD "$DEFAULT_PW"
}

cli() {
  # REDISCLI_AUTH keeps the password off the command line.
  REDISCLI_AUTH=$USER_PW timeout 5 redis-cli --no-auth-warning --tls --cacert "$DIR/tls/ca.pem" \
    -h 127.0.0.1 -p "$PORT" --user "$RUSER" "$@"
}

launch() {
  local deadline=$((SECONDS + START_TIMEOUT))
  port_free "$PORT" || die "port $PORT is taken by another process"
  (
    umask 077
    cat >"$DIR/redis.conf" <<EOF
bind 127.0.0.1
port 0
tls-port $PORT
tls-cert-file $DIR/tls/server.pem
tls-key-file $DIR/tls/server.key
tls-ca-cert-file $DIR/tls/ca.pem
tls-auth-clients optional
requirepass $DEFAULT_PW
user $RUSER on >$USER_PW ~* &* +@all
save ""
appendonly no
daemonize yes
pidfile $DIR/redis.pid
dir $DIR
logfile $DIR/redis.log
EOF
  )
  redis-server "$DIR/redis.conf" >"$DIR/stdout.log" 2>&1 9>&- || {
    cat "$DIR/stdout.log" >&2; tail -n 20 "$DIR/redis.log" >&2 2>/dev/null || true
    die "redis-server failed to start (is it built with TLS?)"
  }
  redis_await "$deadline" "PING over TLS"
}

halt() { redis_halt TERM; }

start() {
  if [[ -n $PORT ]] && alive; then exports; return; fi
  if [[ -e $DIR ]]; then log "removing stale state ($DIR)"; halt; rm -rf "$DIR"; fi
  redis_install
  command -v openssl >/dev/null || die "openssl not found"
  PORT=$(pick_port REDIS_SECURE_PORT 16380)
  RUSER=wxterm USER_PW=$(secret) DEFAULT_PW=$(secret)
  mkdir -p "$DIR" && chmod 700 "$DIR"
  (umask 077 && save_state "$STATE" PORT RUSER USER_PW DEFAULT_PW)
  tls_certs "wxterm test Redis CA" server wxterm-redis
  launch
  exports
}

case ${1:-} in
  start) start ;;
  stop) stop_dir ;;
  status)
    if [[ -n $PORT ]] && alive; then exports; else log "not running"; exit 1; fi ;;
  *) die "usage: redis-secure.sh start|stop|status" ;;
esac
