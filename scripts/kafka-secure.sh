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
# Env: KAFKA_VERSION (4.4.0), KAFKA_SECURE_PORT (19094), KAFKA_SECURE_CONTROLLER_PORT (19095),
# KAFKA_SECURE_SASL_PLAINTEXT_PORT (19096), KAFKA_SECURE_MTLS_PORT (19097), KAFKA_SECURE_INTERNAL_PORT
# (19098; inter-broker, SASL PLAIN with a broker-only user): a port not set whose default is taken
# is replaced by a free one. KAFKA_HEAP_OPTS, KAFKA_START_TIMEOUT (s), KAFKA_STOP_TIMEOUT (s).
# Everything lives in ${WXTERM_RUN_DIR:-.cache/run}/kafka-secure; jars are shared with kafka.sh.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/service.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/service.sh"

SVC=kafka-secure.sh PIDFILE=kafka.pid DAEMON=kafka.Kafka
DIR=$RUN/kafka-secure
STATE=$DIR/state.env
START_TIMEOUT=${KAFKA_START_TIMEOUT:-120}
STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}

case ${1:-} in
  start | stop) lock kafka-secure ;;
esac

VERSION='' PORT='' CTRL='' SPLAIN='' MTLS='' INTERNAL='' KUSER='' PLAIN_PW='' S256_PW='' S512_PW='' ADMIN_PW=''
load_state "$STATE"
VERSION=${VERSION:-${KAFKA_VERSION:-4.4.0}}
LIB=$ROOT/.cache/kafka-$VERSION/lib

exports() {
  print_exports WXTERM_TEST_KAFKA_SECURE \
    ADDR "127.0.0.1:$PORT" SASL_PLAINTEXT_ADDR "127.0.0.1:$SPLAIN" MTLS_ADDR "127.0.0.1:$MTLS" \
    CA_FILE "$DIR/tls/ca.pem" CERT_FILE "$DIR/tls/client.pem" KEY_FILE "$DIR/tls/client.key" \
    USER "$KUSER" PLAIN_PASSWORD "$PLAIN_PW" SCRAM_SHA_256_PASSWORD "$S256_PW" SCRAM_SHA_512_PASSWORD "$S512_PW"
}

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
    kafka_props 4 2
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

# Ready when a SCRAM-SHA-512 client over TLS can list topics.
launch() { kafka_launch "$DIR/ready.log" --command-config "$DIR/client.properties"; }

halt() { kafka_halt TERM; }

start() {
  if [[ -n $PORT ]] && alive; then exports; return; fi
  if [[ -e $DIR ]]; then log "removing stale state ($DIR)"; halt; rm -rf "$DIR"; fi
  VERSION=${KAFKA_VERSION:-4.4.0}
  LIB=$(KAFKA_VERSION=$VERSION "$ROOT/scripts/kafka.sh" jars) # the test broker's Maven-fetched jars
  command -v openssl >/dev/null || die "openssl not found"
  PORT=$(pick_port KAFKA_SECURE_PORT 19094)
  CTRL=$(pick_port KAFKA_SECURE_CONTROLLER_PORT 19095 "$PORT")
  SPLAIN=$(pick_port KAFKA_SECURE_SASL_PLAINTEXT_PORT 19096 "$PORT" "$CTRL")
  MTLS=$(pick_port KAFKA_SECURE_MTLS_PORT 19097 "$PORT" "$CTRL" "$SPLAIN")
  INTERNAL=$(pick_port KAFKA_SECURE_INTERNAL_PORT 19098 "$PORT" "$CTRL" "$SPLAIN" "$MTLS")
  KUSER=wxterm PLAIN_PW=$(secret) S256_PW=$(secret) S512_PW=$(secret) ADMIN_PW=$(secret)
  mkdir -p "$DIR" && chmod 700 "$DIR"
  (umask 077 && save_state "$STATE" VERSION PORT CTRL SPLAIN MTLS INTERNAL KUSER PLAIN_PW S256_PW S512_PW ADMIN_PW)
  tls_certs "wxterm test CA" broker wxterm broker-keystore.pem
  write_config
  # SCRAM credentials live in the KRaft metadata: bootstrap them with the storage.
  kafka_format --add-scram "SCRAM-SHA-256=[name=$KUSER,password=$S256_PW]" \
    --add-scram "SCRAM-SHA-512=[name=$KUSER,password=$S512_PW]"
  launch
  kafka_warmup --command-config "$DIR/client.properties"
  exports
}

case ${1:-} in
  start) start ;;
  stop) stop_dir ;;
  status)
    if [[ -n $PORT ]] && alive; then
      exports; log "Kafka $VERSION, pid $(pid), dir $DIR"
    else
      log "not running"; exit 1
    fi ;;
  *) die "usage: kafka-secure.sh start|stop|status" ;;
esac
