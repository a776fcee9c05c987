# shellcheck shell=bash
# What the test-service scripts (kafka.sh, kafka-secure.sh, redis.sh, redis-secure.sh) share.
# Sourced, it only defines functions and ROOT/RUN. The functions read the sourcing script's globals:
#   SVC      name in messages (kafka.sh)       DIR           the service's directory
#   PIDFILE  pid file's name in $DIR            PORT, CTRL    its (Kafka: client, controller) port
#   DAEMON   what the daemon's cmdline holds    START_TIMEOUT, STOP_TIMEOUT (s)
#   LIB      the Kafka jars (Kafka functions)   cli, halt     its functions (redis_*; kafka_launch, stop_dir)

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RUN=${WXTERM_RUN_DIR:-$ROOT/.cache/run} # one instance of each service per run dir

die() { echo "$SVC: $*" >&2; exit 1; }
log() { echo "$SVC: $*" >&2; }

# lock NAME: hold $RUN/NAME.lock until exit: one state change at a time (parallel test packages,
# two shells). Daemons are started with 9>&- so that they do not keep it.
lock() {
  mkdir -p "$RUN" && exec 9>"$RUN/$1.lock"
  flock -w 600 9 || die "timed out waiting for $RUN/$1.lock"
}

# load_state FILE: the state of a running service overrides the env: stop/restart act on what was started.
load_state() {
  # shellcheck source=/dev/null
  [[ ! -f $1 ]] || source "$1"
}

# save_state FILE VAR…: VAR=value lines, shell-quoted, for load_state.
save_state() {
  local v
  for v in "${@:2}"; do printf '%s=%q\n' "$v" "${!v}"; done >"$1"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port VAR DEFAULT AVOID…: $VAR (must be free), else DEFAULT if free, else a free port.
pick_port() {
  local var=$1 want=${!1:-} def=$2 p; shift 2
  if [[ -n $want ]]; then
    port_free "$want" || die "$var=$want is already in use on 127.0.0.1"
    echo "$want"; return
  fi
  for p in "$def" $(shuf -i 20000-32000 -n 100); do # below the kernel's ephemeral ports (32768-)
    [[ " $* " == *" $p "* ]] && continue
    port_free "$p" && { echo "$p"; return; }
  done
  die "no free port found"
}

# wait_ports_free PORT…: the process can look gone a moment before the kernel closes its sockets.
wait_ports_free() {
  local deadline=$((SECONDS + 10)) p
  for p; do until port_free "$p" || ((SECONDS >= deadline)); do sleep 0.1; done; done
}

pid() { cat "$DIR/$PIDFILE" 2>/dev/null; }
# is_daemon PID: PID is our daemon, not a pid since reused by another process.
is_daemon() { [[ -n $1 ]] && grep -qa "$DAEMON" "/proc/$1/cmdline" 2>/dev/null; }
alive() {
  local p; p=$(pid) || return 1
  is_daemon "$p"
}

# wait_exit PID TIMEOUT [WHAT]: wait for PID, asked to exit, to be gone; SIGKILL it after TIMEOUT s
# (saying so if WHAT is given).
wait_exit() {
  local deadline=$((SECONDS + $2))
  while is_daemon "$1" && ((SECONDS < deadline)); do sleep 0.1; done
  if is_daemon "$1"; then
    [[ -z ${3:-} ]] || log "$3 did not stop within $2s, killing it"
    kill -KILL "$1" 2>/dev/null || true
    while is_daemon "$1"; do sleep 0.1; done
  fi
}

# stop_dir: halt (the script's) and delete $DIR, which holds all of the service's files and state.
stop_dir() {
  [[ -e $DIR ]] || { log "not running"; return 0; }
  halt
  rm -rf "$DIR"
}

secret() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

# print_exports PREFIX KEY VALUE…: one line of shell-quoted PREFIX_KEY=VALUE pairs.
print_exports() {
  local prefix=$1 out=(); shift
  while (($#)); do out+=("${prefix}_$1=$(printf %q "$2")"); shift 2; done
  echo "${out[*]}"
}

# tls_certs CA_CN SERVER CN [KEYSTORE]: in $DIR/tls a CA (CN "CA_CN <time>"), a SERVER certificate for
# 127.0.0.1/localhost and a client certificate (CN-SERVER, CN-client; EC P-256); KEYSTORE: a file with
# the server key and certificate together.
tls_certs() {
  local t=$DIR/tls ca=$1 server=$2 cn=$3 keystore=${4:-} name
  mkdir -p "$t" && chmod 700 "$t"
  (
    set -e
    cd "$t"
    exec 2>>"$t/openssl.log" >&2
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 -days 2 \
      -subj "/CN=$ca $(date +%s)" -keyout ca.key -out ca.pem \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    for name in "$server" client; do
      # PKCS#8, unencrypted: what Kafka's PEM key store and Go's tls.LoadX509KeyPair both read.
      openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$name.key"
      openssl req -new -key "$name.key" -subj "/CN=$cn-$name" -out "$name.csr"
    done
    printf '%s\n' basicConstraints=CA:FALSE keyUsage=critical,digitalSignature extendedKeyUsage=serverAuth \
      subjectAltName=DNS:localhost,IP:127.0.0.1 >"$server.ext"
    printf '%s\n' basicConstraints=CA:FALSE keyUsage=critical,digitalSignature extendedKeyUsage=clientAuth >client.ext
    for name in "$server" client; do
      openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 -days 2 \
        -extfile "$name.ext" -out "$name.pem"
    done
    if [[ -n $keystore ]]; then cat "$server.key" "$server.pem" >"$keystore"; fi
    rm -f ./*.csr ./*.ext ca.srl
    chmod 600 ./*.key ${keystore:+"$keystore"}
  ) || { cat "$t/openssl.log" >&2; die "openssl could not make the certificates"; }
}

# --- Redis

redis_install() {
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

# redis_await DEADLINE WHAT: wait until the script's cli answers PING, else die saying WHAT failed.
redis_await() {
  until [[ $(cli ping 2>/dev/null) == PONG ]]; do
    if ((SECONDS >= $1)); then
      tail -n 20 "$DIR/redis.log" >&2 || true
      die "redis not answering $2 after ${START_TIMEOUT}s"
    fi
    sleep 0.1
  done
}

# redis_halt shutdown|SIGNAL: stop the server with `cli shutdown nosave` or a signal.
redis_halt() {
  local p
  alive || return 0
  p=$(pid)
  if [[ $1 == shutdown ]]; then
    cli shutdown nosave >/dev/null 2>&1 || true
  else
    kill -"$1" "$p" 2>/dev/null || true
  fi
  # Redis removes its pid file before it exits: wait on the pid itself.
  wait_exit "$p" 10
  wait_ports_free "$PORT"
}

# --- Kafka

# Logging system properties for both Kafka 3.x (log4j 1) and 4.x (log4j2); the other one is ignored.
log_opts() {
  echo "-Dkafka.logs.dir=$DIR -Dkafka.log.name=$1 -Dkafka.log.level=$2" \
    "-Dlog4j.configuration=file:$ROOT/scripts/kafka/log4j.properties" \
    "-Dlog4j2.configurationFile=$ROOT/scripts/kafka/log4j2.xml"
}

# tool CLASS ARGS…: a short-lived Kafka command-line JVM.
tool() {
  # shellcheck disable=SC2046
  timeout 120 java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC $(log_opts tools.log WARN) \
    -cp "$LIB/*" "$@"
}

# kafka_props PARTITIONS IO_THREADS [LINE…]: the storage, topic and sizing settings of a test broker.
# The short heartbeat and session: after a crash (kafka.sh halt/restart with KAFKA_STOP_SIGNAL=KILL)
# the broker waits out its old session.
kafka_props() {
  cat <<EOF
log.dirs=$DIR/data
auto.create.topics.enable=false
num.partitions=$1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=$1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=4000
num.network.threads=2
num.io.threads=$2
num.recovery.threads.per.data.dir=1
background.threads=2
log.segment.bytes=8388608
log.index.size.max.bytes=1048576
log.retention.hours=24
log.retention.bytes=67108864
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=8388608
EOF
  if (($# > 2)); then printf '%s\n' "${@:3}"; fi
}

# kafka_format [ARGS…]: format $DIR's storage for a new cluster (ARGS: e.g. --add-scram).
kafka_format() {
  local id
  id=$(tool kafka.tools.StorageTool random-uuid) || die "StorageTool random-uuid failed"
  tool kafka.tools.StorageTool format -t "$id" -c "$DIR/server.properties" "$@" >"$DIR/format.log" 2>&1 ||
    { cat "$DIR/format.log" >&2; die "StorageTool format failed"; }
}

# kafka_launch READY_LOG [ARGS…]: start the broker of $DIR detached and wait until TopicCommand (with
# ARGS, e.g. --command-config) lists its topics; the tries' errors go to READY_LOG ('': discarded).
kafka_launch() {
  local ready=${1:-/dev/null} logs=("$DIR/server.log") deadline=$((SECONDS + START_TIMEOUT)) p; shift
  [[ $ready == /dev/null ]] || logs+=("$ready")
  # setsid + redirects: the broker outlives this script and holds none of the caller's pipes.
  # shellcheck disable=SC2046,SC2086
  setsid java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true $(log_opts server.log INFO) \
    -cp "$LIB/*" kafka.Kafka "$DIR/server.properties" >>"$DIR/stdout.log" 2>&1 </dev/null 9>&- &
  p=$!
  echo "$p" >"$DIR/$PIDFILE"
  until ! port_free "$PORT" && tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$PORT" \
      "$@" --list >/dev/null 2>>"$ready"; do
    # Not alive(): until exec, the child's cmdline is still this script's.
    if [[ ! -e /proc/$p ]] || [[ $(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null) == Z ]]; then
      tail -n 20 "$DIR/stdout.log" "$DIR/server.log" >&2 2>/dev/null || true
      die "broker exited during start-up (logs in $DIR)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 20 "${logs[@]}" >&2 2>/dev/null || true
      halt
      die "broker not ready after ${START_TIMEOUT}s (logs in $DIR)"
    fi
    sleep 0.5
  done
}

# kafka_warmup [ARGS…]: creates __consumer_offsets now; else a client's first group join waits ~5 s for it.
kafka_warmup() {
  tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "127.0.0.1:$PORT" \
    "$@" --describe --group wxterm-warmup >/dev/null 2>&1 || true
}

# kafka_halt SIGNAL: stop the broker process, keep its directory and state.
kafka_halt() {
  local p
  alive || { rm -f "$DIR/$PIDFILE"; return 0; }
  p=$(pid)
  kill -"$1" "$p" 2>/dev/null || true
  wait_exit "$p" "$STOP_TIMEOUT" broker
  rm -f "$DIR/$PIDFILE"
  wait_ports_free "$PORT" "$CTRL"
}
