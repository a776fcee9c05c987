#!/usr/bin/env bash
# Check the Helm chart: helm lint and helm template with the default values and with
# ci/all-on-values.yaml (every optional part on) and ci/operators-values.yaml (the status and
# redrive Jobs), plus renders that must fail.
#
#   scripts/helm.sh           build helm if needed, lint, render to .cache/helm/{default,all-on}.yaml
#   scripts/helm.sh path      build helm if needed and print its path
#
# helm is built from source with the Go toolchain (`go install …/cmd/helm@HELM_VERSION`, about
# 3 minutes cold, cached after) into .cache/bin. cmd/consumer/helm_test.go reads the renders:
#   WXTERM_TEST_HELM_DIR=$PWD/.cache/helm go test -run Helm ./cmd/consumer/
#
# Env: HELM_VERSION (v3.22.0), HELM_KUBE_VERSION (Kubernetes version for capabilities and
# deprecation checks; default: the one helm was built against — a `go install` build lacks
# the release ldflags and would otherwise assume 1.20).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VERSION=${HELM_VERSION:-v3.22.0}
BIN=$ROOT/.cache/bin
HELM=$BIN/helm
CHART=deploy/helm/wxterm
ALLON=$CHART/ci/all-on-values.yaml
OPS=$CHART/ci/operators-values.yaml
OUT=$ROOT/.cache/helm

die() { echo "helm.sh: $*" >&2; exit 1; }
log() { echo "helm.sh: $*" >&2; }

# built_version prints the helm module version the binary was built from (empty if none).
built_version() {
  [[ -x $HELM ]] || return 0
  go version -m "$HELM" 2>/dev/null | awk '$1 == "mod" && $2 == "helm.sh/helm/v3" { print $3 }'
}

build() {
  mkdir -p "$BIN"
  # One build at a time (parallel `make test`s in one checkout).
  exec 8>"$BIN/helm.lock"
  flock -w 900 8 || die "timed out waiting for $BIN/helm.lock"
  if [[ $(built_version) != "$VERSION" ]]; then
    log "building helm $VERSION into $HELM (about 3 minutes the first time)"
    local start=$SECONDS
    GOBIN=$BIN go install "helm.sh/helm/v3/cmd/helm@$VERSION" || die "go install helm $VERSION failed"
    [[ $(built_version) == "$VERSION" ]] || die "$HELM does not report helm.sh/helm/v3 $VERSION"
    log "built helm $VERSION in $((SECONDS - start))s"
  fi
  exec 8>&-
}

kube_version() {
  if [[ -n ${HELM_KUBE_VERSION:-} ]]; then
    echo "$HELM_KUBE_VERSION"
    return
  fi
  # k8s.io/api v0.N.x is Kubernetes 1.N.x.
  local api
  api=$(go version -m "$HELM" | awk '$1 == "dep" && $2 == "k8s.io/api" { print $3 }')
  if [[ $api =~ ^v0\.([0-9]+)\.([0-9]+)$ ]]; then
    echo "1.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
  else
    echo "1.33.0"
  fi
}

# must_fail NAME WANT ARGS…: helm template with ARGS must fail and print WANT.
must_fail() {
  local name=$1 want=$2 out
  shift 2
  if out=$("$HELM" template wxterm "$CHART" --kube-version "$KUBE" "$@" 2>&1); then
    die "render '$name' succeeded; want a failure mentioning: $want"
  fi
  [[ $out == *"$want"* ]] || die "render '$name' failed without mentioning '$want':"$'\n'"$out"
  log "ok: $name fails ($want)"
}

build
case ${1:-} in
  path) echo "$HELM"; exit 0 ;;
  "") ;;
  *) die "unknown argument ${1}; see the header of $0" ;;
esac

KUBE=$(kube_version)
log "$("$HELM" version --short) (module $VERSION), Kubernetes $KUBE"
start=$SECONDS
mkdir -p "$OUT"
rm -f "$OUT/default.yaml" "$OUT/all-on.yaml" "$OUT/certificates.yaml" "$OUT/operators.yaml" # never leave a stale render for the Go test
# The one merchant verifying with platform certificates: the APIv3 key inline
# (into the chart's Secret), no public key.
CERTS=(--set merchant.verification=certificates --set merchant.apiv3Key.value=0123456789abcdef0123456789abcdef)

"$HELM" lint --strict --kube-version "$KUBE" "$CHART"
"$HELM" lint --strict --kube-version "$KUBE" "$CHART" -f "$ALLON"
"$HELM" lint --strict --kube-version "$KUBE" "$CHART" "${CERTS[@]}"
"$HELM" lint --strict --kube-version "$KUBE" "$CHART" -f "$OPS"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$HELM" template wxterm "$CHART" --namespace wxterm --kube-version "$KUBE" >"$tmp/default.yaml"
"$HELM" template wxterm "$CHART" --namespace wxterm --kube-version "$KUBE" -f "$ALLON" >"$tmp/all-on.yaml"
"$HELM" template wxterm "$CHART" --namespace wxterm --kube-version "$KUBE" "${CERTS[@]}" >"$tmp/certificates.yaml"
"$HELM" template wxterm "$CHART" --namespace wxterm --kube-version "$KUBE" -f "$OPS" >"$tmp/operators.yaml"

# Values the consumer could not run with fail rendering with a clear message.
must_fail "grace period not above the shutdown timeout" "must be greater than config.shutdownTimeout" \
  --set terminationGracePeriodSeconds=20 --set config.shutdownTimeout=20s
must_fail "bad shutdown timeout" "is not a Go duration" --set config.shutdownTimeout=20
must_fail "setting managed by the chart in config" "is managed by the chart" --set config.brokers=x:9092
must_fail "no brokers" "kafka.brokers is required" --set kafka.brokers=
must_fail "merchant without keys" "merchant: set merchant.existingSecret" --set merchant.existingSecret=
must_fail "merchants file without its Secret" "merchants.existingSecret" --set merchants.enabled=true
must_fail "SASL without credentials" "kafka.sasl.mechanism is set" --set kafka.sasl.mechanism=plain
must_fail "replay without a range" "replay.enabled: set replay.from" --set replay.enabled=true
must_fail "status without targets" "list status.targets" --set status.enabled=true
must_fail "redrive with offsets and times" "not both" --set redrive.enabled=true --set redrive.offsets=0:1-2 --set redrive.from=2026-01-01T00:00:00Z
must_fail "unknown verification mode" "merchant.verification \"sometimes\"" --set merchant.verification=sometimes
must_fail "certificates without the APIv3 key" "needs the APIv3 key" --set merchant.verification=both

mv "$tmp/default.yaml" "$tmp/all-on.yaml" "$tmp/certificates.yaml" "$tmp/operators.yaml" "$OUT/"
log "rendered $OUT/default.yaml, $OUT/all-on.yaml, $OUT/certificates.yaml and $OUT/operators.yaml in $((SECONDS - start))s"
