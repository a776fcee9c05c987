#!/usr/bin/env bash
# Build the consumer container image without a Docker engine (cmd/imagebuild).
#
#   scripts/image.sh [out-dir]    writes out-dir/oci (OCI image layout) and out-dir/consumer.tar
#                                 (for `docker load` / `podman load`); default out-dir .cache/image.
#                                 Prints the image digest on stdout.
#
# Env: IMAGE_ARCH (amd64), IMAGE_VERSION (git describe, else dev), IMAGE_TAG (wxterm/consumer:$IMAGE_VERSION),
# SOURCE_DATE_EPOCH (time of the last commit, so a given commit always gives the same digest).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$ROOT/.cache/image}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd) # absolute, as the build runs from the module root
cd "$ROOT"

VERSION=${IMAGE_VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}

go run ./cmd/imagebuild -arch "${IMAGE_ARCH:-amd64}" -version "$VERSION" \
  -tag "${IMAGE_TAG:-wxterm/consumer:$VERSION}" \
  -oci-layout "$OUT/oci" -tarball "$OUT/consumer.tar"
