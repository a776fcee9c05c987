# The consumer image: static binaries on distroless, running as nonroot (65532).
# It writes nothing, so it runs with a read-only root filesystem.
#   docker build -t wxterm/consumer .
#   docker buildx build --platform linux/amd64,linux/arm64 -t wxterm/consumer .
# Without a Docker engine, scripts/image.sh (cmd/imagebuild) builds the same image.

# The build stage runs on the builder's own platform and cross-compiles, so
# multi-platform builds need no emulation.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
# Modules first: source edits then reuse the download layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS TARGETARCH
# CGO_ENABLED=0: the final stage has no libc. -trimpath, -buildvcs=false:
# no host paths or VCS state in the binary, so rebuilds are identical.
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false -ldflags='-s -w' -o /out/ ./cmd/consumer ./cmd/producer ./cmd/notify ./cmd/redrive ./cmd/status

# distroless static: CA certificates, tzdata, /etc/passwd with nonroot, /tmp; no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/consumer /out/producer /out/notify /out/redrive /out/status /
USER 65532:65532
# -http-addr: /healthz, /readyz, /metrics
EXPOSE 8080
ENTRYPOINT ["/consumer"]
