#!/usr/bin/env bash
# A real single-node Apache Kafka broker (KRaft, broker+controller) on 127.0.0.1 for tests.
#
#   scripts/kafka.sh start     fetch jars if needed, start a fresh broker, print 127.0.0.1:<port>
#   scripts/kafka.sh stop      stop it and delete its data
#   scripts/kafka.sh restart   stop the broker process and start it again: same data, same ports
#   scripts/kafka.sh halt      stop the process only (data and ports kept); `resume` starts it again
#   scripts/kafka.sh status    print the address and exit 0 if running, else exit 1
#   scripts/kafka.sh version   print the Kafka version in use
#   scripts/kafka.sh jars      fetch the jars of $KAFKA_VERSION if needed, print their directory
#   scripts/kafka.sh topics …  TopicCommand against the running broker (e.g. --create --topic t)
#   scripts/kafka.sh groups …  ConsumerGroupCommand against the running broker (e.g. --list)
#
# Env: KAFKA_VERSION (3.9.1), KAFKA_PORT (19092), KAFKA_CONTROLLER_PORT (19093): when a port is
# not set and its default is taken, a free one is chosen. KAFKA_HEAP_OPTS, KAFKA_START_TIMEOUT (s),
# KAFKA_STOP_TIMEOUT (s), KAFKA_STOP_SIGNAL (TERM; KILL for a crash in halt/restart).
# Jars are cached in .cache/kafka-<version>/lib; one broker per checkout (.cache/run/kafka.env).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN=${WXTERM_RUN_DIR:-$ROOT/.cache/run} # one broker per run dir: set it to run several side by side
STATE=$RUN/kafka.env
START_TIMEOUT=${KAFKA_START_TIMEOUT:-120}
STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}

die() { echo "kafka.sh: $*" >&2; exit 1; }
log() { echo "kafka.sh: $*" >&2; }

case ${1:-} in
  start | stop | halt | resume | restart | jars)
    # One state change at a time (parallel test packages, two shells); the daemon does not keep fd 9.
    mkdir -p "$RUN" && exec 9>"$RUN/kafka.lock"
    flock -w 600 9 || die "timed out waiting for $RUN/kafka.lock" ;;
esac

VERSION=${KAFKA_VERSION:-3.9.1}
DIR='' PORT='' CTRL=''
# The state of a running broker overrides the env: stop/restart act on what was started.
# shellcheck source=/dev/null
[[ -f $STATE ]] && source "$STATE"
LIB=$ROOT/.cache/kafka-$VERSION/lib

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port VAR DEFAULT [AVOID]: the port from $VAR (must be free), else DEFAULT, else a free one.
pick_port() {
  local want=${!1:-} p
  if [[ -n $want ]]; then
    port_free "$want" || die "$1=$want is already in use on 127.0.0.1"
    echo "$want"; return
  fi
  for p in "$2" $(shuf -i 20000-32000 -n 100); do # below the kernel's ephemeral ports (32768-)
    [[ $p != "${3:-}" ]] && port_free "$p" && { echo "$p"; return; }
  done
  die "no free port found"
}

fetch() {
  [[ -f $LIB/.complete ]] && return
  command -v java >/dev/null || die "java not found (Java 17 needed)"
  command -v mvn >/dev/null || die "mvn not found (Maven 3 needed to fetch the Kafka jars)"
  local profile=kafka4 mlog=$ROOT/.cache/kafka-$VERSION/mvn.log
  [[ $VERSION == 3.* ]] && profile=kafka3
  rm -rf "$LIB" && mkdir -p "$LIB"
  log "fetching Kafka $VERSION jars with Maven (once)"
  if ! (cd "$ROOT/scripts/kafka" && timeout 900 mvn -B -q -Dstyle.color=never -P "$profile" \
      -Dkafka.version="$VERSION" -DoutputDirectory="$LIB" dependency:copy-dependencies) >"$mlog" 2>&1; then
    tail -n 30 "$mlog" >&2
    die "Maven could not fetch Kafka $VERSION (log: $mlog)"
  fi
  touch "$LIB/.complete"
}

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

pid() { cat "$DIR/kafka.pid" 2>/dev/null; }

alive() {
  local p; p=$(pid) || return 1
  [[ -n $p ]] && grep -qa kafka.Kafka "/proc/$p/cmdline" 2>/dev/null
}

launch() {
  local deadline=$((SECONDS + START_TIMEOUT))
  port_free "$PORT" || die "port $PORT is taken by another process"
  port_free "$CTRL" || die "controller port $CTRL is taken by another process"
  # setsid + redirects: the broker outlives this script and holds none of the caller's pipes.
  # shellcheck disable=SC2046,SC2086
  setsid java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true $(log_opts server.log INFO) \
    -cp "$LIB/*" kafka.Kafka "$DIR/server.properties" >>"$DIR/stdout.log" 2>&1 </dev/null 9>&- &
  local p=$!
  echo "$p" >"$DIR/kafka.pid"
  until ! port_free "$PORT" && tool org.apache.kafka.tools.TopicCommand \
      --bootstrap-server "127.0.0.1:$PORT" --list >/dev/null 2>&1; do
    # Not alive(): until exec, the child's cmdline is still this script's.
    if [[ ! -e /proc/$p ]] || [[ $(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null) == Z ]]; then
      tail -n 20 "$DIR/stdout.log" "$DIR/server.log" >&2 2>/dev/null || true
      die "broker exited during start-up (logs in $DIR)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 20 "$DIR/server.log" >&2 2>/dev/null || true
      halt
      die "broker not ready after ${START_TIMEOUT}s (logs in $DIR)"
    fi
    sleep 0.5
  done
}

# halt: stop the broker process, keep data dir and state.
halt() {
  local p deadline=$((SECONDS + STOP_TIMEOUT))
  alive || { rm -f "$DIR/kafka.pid"; return 0; }
  p=$(pid)
  kill -"${KAFKA_STOP_SIGNAL:-TERM}" "$p" 2>/dev/null || true
  while alive && ((SECONDS < deadline)); do sleep 0.2; done
  if alive; then
    log "broker did not stop within ${STOP_TIMEOUT}s, killing it"
    kill -KILL "$p" 2>/dev/null || true
    while alive; do sleep 0.1; done
  fi
  rm -f "$DIR/kafka.pid"
  # The process can look gone a moment before the kernel closes its sockets.
  deadline=$((SECONDS + 10))
  until port_free "$PORT" && port_free "$CTRL" || ((SECONDS >= deadline)); do sleep 0.1; done
}

start() {
  if [[ -n $DIR ]] && alive; then echo "127.0.0.1:$PORT"; return; fi
  [[ -n $DIR ]] && { log "removing stale broker state ($DIR)"; rm -rf "$DIR" "$STATE"; }
  VERSION=${KAFKA_VERSION:-3.9.1}
  LIB=$ROOT/.cache/kafka-$VERSION/lib
  fetch
  PORT=$(pick_port KAFKA_PORT 19092)
  CTRL=$(pick_port KAFKA_CONTROLLER_PORT 19093 "$PORT")
  DIR=$(mktemp -d "${TMPDIR:-/tmp}/wxterm-kafka.XXXXXX")
  mkdir -p "$RUN"
  printf 'VERSION=%q\nDIR=%q\nPORT=%q\nCTRL=%q\n' "$VERSION" "$DIR" "$PORT" "$CTRL" >"$STATE"
  cat >"$DIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CTRL
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CTRL
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DIR/data
auto.create.topics.enable=false
num.partitions=8
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
# after a crash (halt/restart with KAFKA_STOP_SIGNAL=KILL) the broker waits out its old session
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=4000
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
background.threads=2
log.segment.bytes=8388608
log.index.size.max.bytes=1048576
log.retention.hours=24
log.retention.bytes=67108864
log.retention.check.interval.ms=60000
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=8388608
EOF
  local id
  id=$(tool kafka.tools.StorageTool random-uuid) || die "StorageTool random-uuid failed"
  tool kafka.tools.StorageTool format -t "$id" -c "$DIR/server.properties" >"$DIR/format.log" 2>&1 ||
    { cat "$DIR/format.log" >&2; die "StorageTool format failed"; }
  launch
  # Creates __consumer_offsets now; else a client's first group join waits ~5 s for it.
  tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "127.0.0.1:$PORT" \
    --describe --group wxterm-warmup >/dev/null 2>&1 || true
  echo "127.0.0.1:$PORT"
}

stop() {
  [[ -n $DIR ]] || { log "not running"; return 0; }
  halt
  rm -rf "$DIR" "$STATE"
}

need_running() { if [[ -z $DIR ]] || ! alive; then die "no broker running (scripts/kafka.sh start)"; fi; }

case ${1:-} in
  start) start ;;
  stop) stop ;;
  halt) [[ -n $DIR ]] || die "no broker started"; halt ;;
  resume) [[ -n $DIR ]] || die "no broker started"; alive || launch; echo "127.0.0.1:$PORT" ;;
  restart) [[ -n $DIR ]] || die "no broker started"; halt; launch; echo "127.0.0.1:$PORT" ;;
  status)
    if [[ -n $DIR ]] && alive; then
      echo "127.0.0.1:$PORT"; log "Kafka $VERSION, pid $(pid), controller 127.0.0.1:$CTRL, dir $DIR"
    else
      log "not running"; exit 1
    fi ;;
  version) echo "$VERSION" ;;
  jars) VERSION=${KAFKA_VERSION:-3.9.1}; LIB=$ROOT/.cache/kafka-$VERSION/lib; fetch; echo "$LIB" ;;
  topics) need_running; shift; tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$PORT" "$@" ;;
  groups) need_running; shift
    tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "127.0.0.1:$PORT" "$@" ;;
  *) die "usage: kafka.sh start|stop|restart|halt|resume|status|version|jars|topics ARGS|groups ARGS" ;;
esac
