#!/usr/bin/env bash
# A second single-node Apache Kafka broker (KRaft) on 127.0.0.1 that only speaks secured
# protocols, for the TLS/SASL tests. Certificates, users and passwords are made at start.
#
#   scripts/kafka-secure.sh start    fetch jars if needed, start a fresh broker, print the exports
#   scripts/kafka-secure.sh stop     stop it and delete its directory (certificates included)
#   scripts/kafka-secure.sh status   print the exports and exit 0 if running, else exit 1
#
# start and status print one line of shell-quoted KEY=VALUE pairs, for
#   vars=$(scripts/kafka-secure.sh start) && eval "export $vars"
#   WXTERM_TEST_KAFKA_SECURE_ADDR          SASL_SSL listener (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)
#   WXTERM_TEST_KAFKA_SECURE_SASL_PLAINTEXT_ADDR   SASL_PLAINTEXT listener (same mechanisms, no TLS)
#   WXTERM_TEST_KAFKA_SECURE_MTLS_ADDR     SSL listener that requires a client certificate
#   WXTERM_TEST_KAFKA_SECURE_CA_FILE       PEM CA that signed the broker and client certificates
#   WXTERM_TEST_KAFKA_SECURE_CERT_FILE, WXTERM_TEST_KAFKA_SECURE_KEY_FILE   client certificate, key
#   WXTERM_TEST_KAFKA_SECURE_USER          the SASL user (PLAIN and both SCRAMs)
#   WXTERM_TEST_KAFKA_SECURE_PLAIN_PASSWORD, …_SCRAM_SHA_256_PASSWORD, …_SCRAM_SHA_512_PASSWORD
# The passwords differ per mechanism, so a client using the wrong mechanism is refused.
#
# Env: KAFKA_VERSION (3.9.1), KAFKA_SECURE_PORT (19094), KAFKA_SECURE_CONTROLLER_PORT (19095),
# KAFKA_SECURE_SASL_PLAINTEXT_PORT (19096), KAFKA_SECURE_MTLS_PORT (19097), KAFKA_SECURE_INTERNAL_PORT
# (19098; inter-broker, SASL PLAIN with a broker-only user): a port not set whose default is taken
# is replaced by a free one. KAFKA_HEAP_OPTS, KAFKA_START_TIMEOUT (s), KAFKA_STOP_TIMEOUT (s).
# Everything lives in ${WXTERM_RUN_DIR:-.cache/run}/kafka-secure; jars are shared with kafka.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN=${WXTERM_RUN_DIR:-$ROOT/.cache/run}
DIR=$RUN/kafka-secure
STATE=$DIR/state.env
START_TIMEOUT=${KAFKA_START_TIMEOUT:-120}
STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}

die() { echo "kafka-secure.sh: $*" >&2; exit 1; }
log() { echo "kafka-secure.sh: $*" >&2; }

case ${1:-} in
  start | stop)
    mkdir -p "$RUN" && exec 9>"$RUN/kafka-secure.lock"
    flock -w 600 9 || die "timed out waiting for $RUN/kafka-secure.lock" ;;
esac

VERSION='' PORT='' CTRL='' SPLAIN='' MTLS='' INTERNAL='' KUSER='' PLAIN_PW='' S256_PW='' S512_PW='' ADMIN_PW=''
# shellcheck source=/dev/null
[[ -f $STATE ]] && source "$STATE"
VERSION=${VERSION:-${KAFKA_VERSION:-3.9.1}}
LIB=$ROOT/.cache/kafka-$VERSION/lib

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

log_opts() {
  echo "-Dkafka.logs.dir=$DIR -Dkafka.log.name=$1 -Dkafka.log.level=$2" \
    "-Dlog4j.configuration=file:$ROOT/scripts/kafka/log4j.properties" \
    "-Dlog4j2.configurationFile=$ROOT/scripts/kafka/log4j2.xml"
}

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

exports() {
  local k=WXTERM_TEST_KAFKA_SECURE out=() i
  local kv=(
    ADDR "127.0.0.1:$PORT" SASL_PLAINTEXT_ADDR "127.0.0.1:$SPLAIN" MTLS_ADDR "127.0.0.1:$MTLS"
    CA_FILE "$DIR/tls/ca.pem" CERT_FILE "$DIR/tls/client.pem" KEY_FILE "$DIR/tls/client.key"
    USER "$KUSER" PLAIN_PASSWORD "$PLAIN_PW" SCRAM_SHA_256_PASSWORD "$S256_PW" SCRAM_SHA_512_PASSWORD "$S512_PW"
  )
  for ((i = 0; i < ${#kv[@]}; i += 2)); do out+=("${k}_${kv[i]}=$(printf %q "${kv[i + 1]}")"); done
  echo "${out[*]}"
}

# certs: a CA, a broker certificate for 127.0.0.1/localhost and a client certificate (EC P-256).
certs() {
  local t=$DIR/tls name
  mkdir -p "$t" && chmod 700 "$t"
  (
    set -e
    cd "$t"
    exec 2>>"$t/openssl.log" >&2
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 -days 2 \
      -subj "/CN=wxterm test CA $(date +%s)" -keyout ca.key -out ca.pem \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    for name in broker client; do
      # PKCS#8, unencrypted: what Kafka's PEM key store and Go's tls.LoadX509KeyPair both read.
      openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$name.key"
      openssl req -new -key "$name.key" -subj "/CN=wxterm-$name" -out "$name.csr"
    done
    printf '%s\n' basicConstraints=CA:FALSE keyUsage=critical,digitalSignature extendedKeyUsage=serverAuth \
      subjectAltName=DNS:localhost,IP:127.0.0.1 >broker.ext
    printf '%s\n' basicConstraints=CA:FALSE keyUsage=critical,digitalSignature extendedKeyUsage=clientAuth >client.ext
    for name in broker client; do
      openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 -days 2 \
        -extfile "$name.ext" -out "$name.pem"
    done
    cat broker.key broker.pem >broker-keystore.pem
    rm -f ./*.csr ./*.ext ca.srl
    chmod 600 ./*.key broker-keystore.pem
  ) || { cat "$t/openssl.log" >&2; die "openssl could not make the certificates"; }
}

secret() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

write_config() {
  local jaas_plain="org.apache.kafka.common.security.plain.PlainLoginModule required"
  jaas_plain+=" username=\"broker\" password=\"$ADMIN_PW\" user_broker=\"$ADMIN_PW\" user_$KUSER=\"$PLAIN_PW\";"
  local jaas_scram="org.apache.kafka.common.security.scram.ScramLoginModule required;" l
  {
    cat <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CTRL
listeners=SASL_SSL://127.0.0.1:$PORT,SASL_PLAINTEXT://127.0.0.1:$SPLAIN,SSL://127.0.0.1:$MTLS,INTERNAL://127.0.0.1:$INTERNAL,CONTROLLER://127.0.0.1:$CTRL
advertised.listeners=SASL_SSL://127.0.0.1:$PORT,SASL_PLAINTEXT://127.0.0.1:$SPLAIN,SSL://127.0.0.1:$MTLS,INTERNAL://127.0.0.1:$INTERNAL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL
controller.listener.names=CONTROLLER
inter.broker.listener.name=INTERNAL
sasl.mechanism.inter.broker.protocol=PLAIN
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.internal.sasl.enabled.mechanisms=PLAIN
listener.name.internal.plain.sasl.jaas.config=$jaas_plain
ssl.keystore.type=PEM
ssl.keystore.location=$DIR/tls/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$DIR/tls/ca.pem
ssl.client.auth=none
listener.name.sasl_ssl.ssl.client.auth=requested
listener.name.ssl.ssl.client.auth=required
EOF
    for l in sasl_ssl sasl_plaintext; do
      echo "listener.name.$l.plain.sasl.jaas.config=$jaas_plain"
      echo "listener.name.$l.scram-sha-256.sasl.jaas.config=$jaas_scram"
      echo "listener.name.$l.scram-sha-512.sasl.jaas.config=$jaas_scram"
    done
    cat <<EOF
log.dirs=$DIR/data
auto.create.topics.enable=false
num.partitions=4
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=4000
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
background.threads=2
log.segment.bytes=8388608
log.index.size.max.bytes=1048576
log.retention.hours=24
log.retention.bytes=67108864
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=8388608
EOF
  } >"$DIR/server.properties"
  # The tools' client settings: SCRAM-SHA-512 over TLS, the path the end-to-end test takes.
  cat >"$DIR/client.properties" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$KUSER" password="$S512_PW";
ssl.truststore.type=PEM
ssl.truststore.location=$DIR/tls/ca.pem
EOF
}

launch() {
  local deadline=$((SECONDS + START_TIMEOUT)) p
  # shellcheck disable=SC2046,SC2086
  setsid java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true $(log_opts server.log INFO) \
    -cp "$LIB/*" kafka.Kafka "$DIR/server.properties" >>"$DIR/stdout.log" 2>&1 </dev/null 9>&- &
  p=$!
  echo "$p" >"$DIR/kafka.pid"
  # Ready when a SCRAM-SHA-512 client over TLS can list topics.
  until ! port_free "$PORT" && tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$PORT" \
      --command-config "$DIR/client.properties" --list >/dev/null 2>>"$DIR/ready.log"; do
    if [[ ! -e /proc/$p ]] || [[ $(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null) == Z ]]; then
      tail -n 20 "$DIR/stdout.log" "$DIR/server.log" >&2 2>/dev/null || true
      die "broker exited during start-up (logs in $DIR)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 20 "$DIR/server.log" "$DIR/ready.log" >&2 2>/dev/null || true
      halt
      die "broker not ready after ${START_TIMEOUT}s (logs in $DIR)"
    fi
    sleep 0.5
  done
}

halt() {
  local p deadline=$((SECONDS + STOP_TIMEOUT))
  alive || { rm -f "$DIR/kafka.pid"; return 0; }
  p=$(pid)
  kill -TERM "$p" 2>/dev/null || true
  while alive && ((SECONDS < deadline)); do sleep 0.2; done
  if alive; then
    log "broker did not stop within ${STOP_TIMEOUT}s, killing it"
    kill -KILL "$p" 2>/dev/null || true
    while alive; do sleep 0.1; done
  fi
  rm -f "$DIR/kafka.pid"
  deadline=$((SECONDS + 10))
  until { port_free "$PORT" && port_free "$CTRL"; } || ((SECONDS >= deadline)); do sleep 0.1; done
}

start() {
  if [[ -n $PORT ]] && alive; then exports; return; fi
  if [[ -e $DIR ]]; then log "removing stale state ($DIR)"; halt; rm -rf "$DIR"; fi
  VERSION=${KAFKA_VERSION:-3.9.1}
  LIB=$(KAFKA_VERSION=$VERSION "$ROOT/scripts/kafka.sh" jars) # the test broker's Maven-fetched jars
  command -v openssl >/dev/null || die "openssl not found"
  PORT=$(pick_port KAFKA_SECURE_PORT 19094)
  CTRL=$(pick_port KAFKA_SECURE_CONTROLLER_PORT 19095 "$PORT")
  SPLAIN=$(pick_port KAFKA_SECURE_SASL_PLAINTEXT_PORT 19096 "$PORT" "$CTRL")
  MTLS=$(pick_port KAFKA_SECURE_MTLS_PORT 19097 "$PORT" "$CTRL" "$SPLAIN")
  INTERNAL=$(pick_port KAFKA_SECURE_INTERNAL_PORT 19098 "$PORT" "$CTRL" "$SPLAIN" "$MTLS")
  KUSER=wxterm PLAIN_PW=$(secret) S256_PW=$(secret) S512_PW=$(secret) ADMIN_PW=$(secret)
  mkdir -p "$DIR" && chmod 700 "$DIR"
  (umask 077 && printf '%s=%q\n' VERSION "$VERSION" PORT "$PORT" CTRL "$CTRL" SPLAIN "$SPLAIN" MTLS "$MTLS" \
    INTERNAL "$INTERNAL" KUSER "$KUSER" PLAIN_PW "$PLAIN_PW" S256_PW "$S256_PW" S512_PW "$S512_PW" \
    ADMIN_PW "$ADMIN_PW" >"$STATE")
  certs
  write_config
  local id
  id=$(tool kafka.tools.StorageTool random-uuid) || die "StorageTool random-uuid failed"
  # SCRAM credentials live in the KRaft metadata: bootstrap them with the storage.
  tool kafka.tools.StorageTool format -t "$id" -c "$DIR/server.properties" \
    --add-scram "SCRAM-SHA-256=[name=$KUSER,password=$S256_PW]" \
    --add-scram "SCRAM-SHA-512=[name=$KUSER,password=$S512_PW]" >"$DIR/format.log" 2>&1 ||
    { cat "$DIR/format.log" >&2; die "StorageTool format failed"; }
  launch
  # Creates __consumer_offsets now; else a client's first group join waits for it.
  tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "127.0.0.1:$PORT" \
    --command-config "$DIR/client.properties" --describe --group wxterm-warmup >/dev/null 2>&1 || true
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
    if [[ -n $PORT ]] && alive; then
      exports; log "Kafka $VERSION, pid $(pid), dir $DIR"
    else
      log "not running"; exit 1
    fi ;;
  *) die "usage: kafka-secure.sh start|stop|status" ;;
esac
