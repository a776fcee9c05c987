// Command imagebuild builds the consumer's container image without a Docker
// engine and without pulling a base image: it cross-compiles static
// binaries of cmd/consumer, cmd/producer, cmd/notify, cmd/redrive and cmd/status with `go build`, lays them on a
// tiny hand-made root filesystem (nonroot user, CA certificates, /tmp) and
// writes the image as an OCI image layout directory and/or a tarball that
// `docker load` and `podman load` accept.
//
// The image mirrors the Dockerfile's final stage (uid 65532, ENTRYPOINT
// /consumer, port 8080). Builds are reproducible: file times and the image's
// creation time come from SOURCE_DATE_EPOCH (default 0), so the same source,
// Go toolchain and CA bundle give the same digest.
//
//	go run ./cmd/imagebuild -oci-layout .cache/image/oci -tarball .cache/image/consumer.tar
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// gzipLevel: best compression saves under 1% of the image for twice the time.
var gzipLevel = gzip.DefaultCompression

const (
	uid, gid = 65532, 65532 // distroless's "nonroot", so the image and the Dockerfile agree
	caFile   = "/etc/ssl/certs/ca-certificates.crt"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "imagebuild:", err)
		}
		os.Exit(1)
	}
}

type options struct {
	src, arch, ociLayout, tarball, tag, version, source, caCerts string
	epoch                                                        int64
}

// run builds the image, writes the requested outputs and prints the image
// digest on stdout (progress goes to stderr, so scripts can capture it).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("imagebuild", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.src, "src", ".", "module root holding cmd/consumer, cmd/producer, cmd/notify, cmd/redrive and cmd/status")
	fs.StringVar(&o.arch, "arch", "amd64", "GOARCH of the image (GOOS is linux)")
	fs.StringVar(&o.ociLayout, "oci-layout", "", "write an OCI image layout to this directory (replaced if it holds one)")
	fs.StringVar(&o.tarball, "tarball", "", "write a `docker load`-able tarball to this file")
	fs.StringVar(&o.tag, "tag", "", "image reference for the tarball and the layout's ref.name (default wxterm/consumer:VERSION)")
	fs.StringVar(&o.version, "version", "dev", "org.opencontainers.image.version label")
	fs.StringVar(&o.source, "source", "https://github.com/wxterm/wxterm", "org.opencontainers.image.source label")
	fs.StringVar(&o.caCerts, "ca-certs", caFile, "CA bundle to copy into the image (skipped with a warning if absent)")
	fs.Int64Var(&o.epoch, "source-date-epoch", envInt("SOURCE_DATE_EPOCH"), "Unix time stamped on files and the image, for reproducible builds")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if o.ociLayout == "" && o.tarball == "" {
		return errors.New("nothing to write: give -oci-layout and/or -tarball")
	}
	if o.tag == "" {
		o.tag = "wxterm/consumer:" + o.version
	}
	tag, err := name.NewTag(o.tag)
	if err != nil {
		return fmt.Errorf("-tag: %w", err)
	}

	img, err := build(ctx, o, stderr)
	if err != nil {
		return err
	}
	if o.ociLayout != "" {
		if err := writeLayout(o.ociLayout, tag, img); err != nil {
			return fmt.Errorf("-oci-layout: %w", err)
		}
		fmt.Fprintln(stderr, "wrote OCI layout", o.ociLayout)
	}
	if o.tarball != "" {
		if err := tarball.WriteToFile(o.tarball, tag, img); err != nil {
			return fmt.Errorf("-tarball: %w", err)
		}
		fmt.Fprintln(stderr, "wrote tarball", o.tarball, "as", tag.String())
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	if size, err := imageSize(img); err == nil {
		fmt.Fprintf(stderr, "linux/%s image, %.1f MiB compressed\n", o.arch, float64(size)/(1<<20))
	}
	fmt.Fprintln(stdout, digest)
	return nil
}

func envInt(key string) int64 {
	n, _ := strconv.ParseInt(os.Getenv(key), 10, 64)
	return n
}

// build compiles the binaries and assembles the image in memory.
func build(ctx context.Context, o options, stderr io.Writer) (v1.Image, error) {
	mtime := time.Unix(o.epoch, 0).UTC()
	bins, err := compile(ctx, o.src, o.arch, stderr)
	if err != nil {
		return nil, err
	}

	base := []entry{
		dir("etc/", 0o755, 0),
		file("etc/passwd", 0o644, 0, []byte("root:x:0:0:root:/root:/sbin/nologin\n"+
			"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"+
			"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")),
		file("etc/group", 0o644, 0, []byte("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")),
		dir("home/", 0o755, 0),
		dir("home/nonroot/", 0o700, uid),
		// The producer spools input through os.CreateTemp; the consumer writes nothing.
		dir("tmp/", 0o1777, 0),
	}
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	switch ca, err := os.ReadFile(o.caCerts); {
	case err == nil:
		base = append(base, dir("etc/ssl/", 0o755, 0), dir("etc/ssl/certs/", 0o755, 0),
			file(caFile[1:], 0o644, 0, ca))
		env = append(env, "SSL_CERT_FILE="+caFile)
	case errors.Is(err, os.ErrNotExist):
		// Only TLS to Kafka/Redis and WeChat Pay's HTTPS need it; a local image still works.
		fmt.Fprintf(stderr, "warning: %s not found: the image has no CA certificates\n", o.caCerts)
	default:
		return nil, err
	}
	app := []entry{
		file("consumer", 0o755, uid, bins["consumer"]),
		file("producer", 0o755, uid, bins["producer"]),
		file("notify", 0o755, uid, bins["notify"]),
		file("redrive", 0o755, uid, bins["redrive"]),
		file("status", 0o755, uid, bins["status"]),
	}

	// Base files first: they rarely change, so registries and nodes keep that layer across releases.
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	hist := func(what string) v1.History {
		return v1.History{Created: v1.Time{Time: mtime}, CreatedBy: "imagebuild: " + what}
	}
	var adds []mutate.Addendum
	for _, l := range []struct {
		what    string
		entries []entry
	}{{"nonroot user, CA certificates, /tmp", base}, {"/consumer /producer", app}} {
		layer, err := newLayer(l.entries, mtime)
		if err != nil {
			return nil, err
		}
		adds = append(adds, mutate.Addendum{Layer: layer, History: hist(l.what), MediaType: types.OCILayer})
	}
	if img, err = mutate.Append(img, adds...); err != nil {
		return nil, err
	}

	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: mtime}
	cf.OS, cf.Architecture = "linux", o.arch
	cf.Config = v1.Config{
		User:         fmt.Sprintf("%d:%d", uid, gid),
		Entrypoint:   []string{"/consumer"},
		ExposedPorts: map[string]struct{}{"8080/tcp": {}}, // -http-addr: /healthz, /readyz, /metrics
		Env:          env,
		WorkingDir:   "/",
		Labels: map[string]string{
			"org.opencontainers.image.source":  o.source,
			"org.opencontainers.image.title":   "wxterm-consumer",
			"org.opencontainers.image.version": o.version,
		},
	}
	return mutate.ConfigFile(img, cf)
}

// compile cross-compiles both commands into a temporary directory and returns their contents.
func compile(ctx context.Context, src, arch string, stderr io.Writer) (map[string][]byte, error) {
	out, err := os.MkdirTemp("", "imagebuild-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(out)
	// -trimpath and -buildvcs=false keep host paths and working-tree state out of
	// the binaries, so the digest depends on the source only; CGO_ENABLED=0 makes
	// them static, as the image has no libc.
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w",
		"-o", out+string(filepath.Separator), "./cmd/consumer", "./cmd/producer", "./cmd/notify", "./cmd/redrive", "./cmd/status")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build (GOARCH=%s): %w", arch, err)
	}
	bins := map[string][]byte{}
	for _, n := range []string{"consumer", "producer", "notify", "redrive", "status"} {
		if bins[n], err = os.ReadFile(filepath.Join(out, n)); err != nil {
			return nil, err
		}
	}
	return bins, nil
}

type entry struct {
	hdr  tar.Header
	body []byte
}

func dir(path string, mode int64, owner int) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: path, Mode: mode, Uid: owner, Gid: owner}}
}

func file(path string, mode int64, owner int, body []byte) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: path, Mode: mode, Uid: owner, Gid: owner, Size: int64(len(body))}, body: body}
}

// newLayer writes the entries, in order, as a tar layer. The gzip is
// computed once and cached: every digest and write reads the same bytes.
func newLayer(entries []entry, mtime time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		h.ModTime = mtime // whole seconds, so the writer picks plain USTAR headers
		if err := tw.WriteHeader(&h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzipLevel), tarball.WithCompressedCaching)
}

// writeLayout writes a fresh OCI layout at path. A previous layout there is
// removed first so stale blobs do not pile up; any other non-empty directory
// is refused rather than deleted.
func writeLayout(path string, tag name.Tag, img v1.Image) error {
	if ents, err := os.ReadDir(path); err == nil && len(ents) > 0 {
		if _, err := os.Stat(filepath.Join(path, "oci-layout")); err != nil {
			return fmt.Errorf("%s is neither empty nor an OCI layout", path)
		}
		if err := os.RemoveAll(path); err != nil {
			return err
		}
	}
	// ref.name holds just the tag, which is what skopeo's and podman's oci:DIR:TAG expect.
	_, err := layout.Write(path, mutate.AppendManifests(empty.Index, mutate.IndexAddendum{
		Add:        img,
		Descriptor: v1.Descriptor{Annotations: map[string]string{"org.opencontainers.image.ref.name": tag.TagStr()}},
	}))
	return err
}

// imageSize is what a pull transfers: the manifest, the config and the compressed layers.
func imageSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	size, err := img.Size()
	size += m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	return size, err
}
