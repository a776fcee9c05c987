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
# Env: KAFKA_VERSION (4.4.0), KAFKA_PORT (19092), KAFKA_CONTROLLER_PORT (19093): when a port is
# not set and its default is taken, a free one is chosen. KAFKA_HEAP_OPTS, KAFKA_START_TIMEOUT (s),
# KAFKA_STOP_TIMEOUT (s), KAFKA_STOP_SIGNAL (TERM; KILL for a crash in halt/restart).
# Jars are cached in .cache/kafka-<version>/lib; one broker per checkout (.cache/run/kafka.env).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/service.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/service.sh"

SVC=kafka.sh PIDFILE=kafka.pid DAEMON=kafka.Kafka
STATE=$RUN/kafka.env
START_TIMEOUT=${KAFKA_START_TIMEOUT:-120}
STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}

case ${1:-} in
  start | stop | halt | resume | restart | jars) lock kafka ;;
esac

VERSION=${KAFKA_VERSION:-4.4.0}
DIR='' PORT='' CTRL=''
load_state "$STATE"
LIB=$ROOT/.cache/kafka-$VERSION/lib

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

launch() {
  port_free "$PORT" || die "port $PORT is taken by another process"
  port_free "$CTRL" || die "controller port $CTRL is taken by another process"
  kafka_launch ''
}

# halt: stop the broker process, keep data dir and state.
halt() { kafka_halt "${KAFKA_STOP_SIGNAL:-TERM}"; }

# shellcheck disable=SC2119 # kafka_format and kafka_warmup take no extra arguments here
start() {
  if [[ -n $DIR ]] && alive; then echo "127.0.0.1:$PORT"; return; fi
  [[ -n $DIR ]] && { log "removing stale broker state ($DIR)"; rm -rf "$DIR" "$STATE"; }
  VERSION=${KAFKA_VERSION:-4.4.0}
  LIB=$ROOT/.cache/kafka-$VERSION/lib
  fetch
  PORT=$(pick_port KAFKA_PORT 19092)
  CTRL=$(pick_port KAFKA_CONTROLLER_PORT 19093 "$PORT")
  DIR=$(mktemp -d "${TMPDIR:-/tmp}/wxterm-kafka.XXXXXX")
  mkdir -p "$RUN"
  save_state "$STATE" VERSION DIR PORT CTRL
  {
    cat <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CTRL
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CTRL
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
EOF
    kafka_props 8 4 log.retention.check.interval.ms=60000
  } >"$DIR/server.properties"
  kafka_format
  launch
  kafka_warmup
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
  jars) VERSION=${KAFKA_VERSION:-4.4.0}; LIB=$ROOT/.cache/kafka-$VERSION/lib; fetch; echo "$LIB" ;;
  topics) need_running; shift; tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$PORT" "$@" ;;
  groups) need_running; shift
    tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "127.0.0.1:$PORT" "$@" ;;
  *) die "usage: kafka.sh start|stop|restart|halt|resume|status|version|jars|topics ARGS|groups ARGS" ;;
esac
