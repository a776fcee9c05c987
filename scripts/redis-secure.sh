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

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN=${WXTERM_RUN_DIR:-$ROOT/.cache/run}
DIR=$RUN/redis-secure
STATE=$DIR/state.env
START_TIMEOUT=${REDIS_START_TIMEOUT:-20}

die() { echo "redis-secure.sh: $*" >&2; exit 1; }
log() { echo "redis-secure.sh: $*" >&2; }

case ${1:-} in
  start | stop)
    mkdir -p "$RUN" && exec 9>"$RUN/redis-secure.lock"
    flock -w 600 9 || die "timed out waiting for $RUN/redis-secure.lock" ;;
esac

PORT='' RUSER='' USER_PW='' DEFAULT_PW=''
# shellcheck source=/dev/null
[[ -f $STATE ]] && source "$STATE"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port() {
  local p
  if [[ -n ${REDIS_SECURE_PORT:-} ]]; then
    port_free "$REDIS_SECURE_PORT" || die "REDIS_SECURE_PORT=$REDIS_SECURE_PORT is already in use on 127.0.0.1"
    echo "$REDIS_SECURE_PORT"; return
  fi
  for p in 16380 $(shuf -i 20000-32000 -n 100); do # below the kernel's ephemeral ports (32768-)
    port_free "$p" && { echo "$p"; return; }
  done
  die "no free port found"
}

install() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return
  log "installing redis-server with apt-get"
  local sudo='' alog; alog=$(mktemp)
  [[ $(id -u) == 0 ]] || sudo=sudo
  if ! { $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
      apt-get install -y -qq redis-server; } >"$alog" 2>&1; then
    tail -n 20 "$alog" >&2
    die "apt-get install redis-server failed (log: $alog)"
  fi
  rm -f "$alog"
}

exports() {
  local k=WXTERM_TEST_REDIS_SECURE out=() i
  local kv=(
    ADDR "127.0.0.1:$PORT" CA_FILE "$DIR/tls/ca.pem" CERT_FILE "$DIR/tls/client.pem" KEY_FILE "$DIR/tls/client.key"
    USER "$RUSER" PASSWORD "$USER_PW" DEFAULT_PASSWORD "$DEFAULT_PW"
  )
  for ((i = 0; i < ${#kv[@]}; i += 2)); do out+=("${k}_${kv[i]}=$(printf %q "${kv[i + 1]}")"); done
  echo "${out[*]}"
}

# certs: a CA, a server certificate for 127.0.0.1/localhost and a client certificate (EC P-256).
certs() {
  local t=$DIR/tls name
  mkdir -p "$t" && chmod 700 "$t"
  (
    set -e
    cd "$t"
    exec 2>>"$t/openssl.log" >&2
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 -days 2 \
      -subj "/CN=wxterm test Redis CA $(date +%s)" -keyout ca.key -out ca.pem \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    for name in server client; do
      openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$name.key"
      openssl req -new -key "$name.key" -subj "/CN=wxterm-redis-$name" -out "$name.csr"
    done
    printf '%s\n' basicConstraints=CA:FALSE keyUsage=critical,digitalSignature extendedKeyUsage=serverAuth \
      subjectAltName=DNS:localhost,IP:127.0.0.1 >server.ext
    printf '%s\n' basicConstraints=CA:FALSE keyUsage=critical,digitalSignature extendedKeyUsage=clientAuth >client.ext
    for name in server client; do
      openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 -days 2 \
        -extfile "$name.ext" -out "$name.pem"
    done
    rm -f ./*.csr ./*.ext ca.srl
    chmod 600 ./*.key
  ) || { cat "$t/openssl.log" >&2; die "openssl could not make the certificates"; }
}

secret() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

cli() {
  # REDISCLI_AUTH keeps the password off the command line.
  REDISCLI_AUTH=$USER_PW timeout 5 redis-cli --no-auth-warning --tls --cacert "$DIR/tls/ca.pem" \
    -h 127.0.0.1 -p "$PORT" --user "$RUSER" "$@"
}

pid_is_redis() { grep -qa redis-server "/proc/$1/cmdline" 2>/dev/null; }
alive() {
  local p; p=$(cat "$DIR/redis.pid" 2>/dev/null) || return 1
  pid_is_redis "$p"
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
  until [[ $(cli ping 2>/dev/null) == PONG ]]; do
    if ((SECONDS >= deadline)); then
      tail -n 20 "$DIR/redis.log" >&2 || true
      die "redis not answering PING over TLS after ${START_TIMEOUT}s"
    fi
    sleep 0.1
  done
}

halt() {
  local p deadline=$((SECONDS + 10))
  alive || return 0
  p=$(cat "$DIR/redis.pid")
  kill -TERM "$p" 2>/dev/null || true
  while pid_is_redis "$p" && ((SECONDS < deadline)); do sleep 0.1; done
  if pid_is_redis "$p"; then kill -KILL "$p" 2>/dev/null || true; fi
  while pid_is_redis "$p"; do sleep 0.1; done
  deadline=$((SECONDS + 10))
  until port_free "$PORT" || ((SECONDS >= deadline)); do sleep 0.1; done
}

start() {
  if [[ -n $PORT ]] && alive; then exports; return; fi
  if [[ -e $DIR ]]; then log "removing stale state ($DIR)"; halt; rm -rf "$DIR"; fi
  install
  command -v openssl >/dev/null || die "openssl not found"
  PORT=$(pick_port)
  RUSER=wxterm USER_PW=$(secret) DEFAULT_PW=$(secret)
  mkdir -p "$DIR" && chmod 700 "$DIR"
  (umask 077 && printf '%s=%q\n' PORT "$PORT" RUSER "$RUSER" USER_PW "$USER_PW" DEFAULT_PW "$DEFAULT_PW" >"$STATE")
  certs
  launch
  exports
}

stop() {
  [[ -e $DIR ]] || { log "not running"; return 0; }
  halt
  rm -rf "$DIR"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status)
    if [[ -n $PORT ]] && alive; then exports; else log "not running"; exit 1; fi ;;
  *) die "usage: redis-secure.sh start|stop|status" ;;
esac
