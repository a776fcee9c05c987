package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const root = "../.."

func buildImage(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), append([]string{"-src", root, "-source-date-epoch", "1700000000"}, args...), &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, &stderr)
	}
	return strings.TrimSpace(stdout.String())
}

// TestImage builds the image twice for real and inspects what a runtime would get.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build")
	}
	// Compression dominates the run time under -race; the level does not change what is tested.
	defer func(l int) { gzipLevel = l }(gzipLevel)
	gzipLevel = gzip.BestSpeed
	dir := t.TempDir()
	oci, tarPath := filepath.Join(dir, "oci"), filepath.Join(dir, "consumer.tar")
	digest := buildImage(t, "-oci-layout", oci, "-tarball", tarPath, "-tag", "example.test/wxterm/consumer:v1", "-version", "v1")

	img, desc := readLayout(t, oci)
	if desc.Digest.String() != digest {
		t.Fatalf("layout holds %s; run printed %s", desc.Digest, digest)
	}
	if got := desc.Annotations["org.opencontainers.image.ref.name"]; got != "v1" {
		t.Errorf("ref.name = %q; want v1", got)
	}

	// The docker-load tarball must hold the same config and layers. (Its
	// manifest is not stored but rebuilt on load, so whole digests differ.)
	timg, err := tarball.ImageFromPath(tarPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := blobs(t, timg), blobs(t, img); !slices.Equal(got, want) {
		t.Errorf("tarball blobs %v; want the layout's %v", got, want)
	}

	t.Run("config", func(t *testing.T) {
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		c := cf.Config
		if c.User != "65532:65532" {
			t.Errorf("User = %q; want non-root 65532:65532", c.User)
		}
		if !slices.Equal(c.Entrypoint, []string{"/consumer"}) {
			t.Errorf("Entrypoint = %q", c.Entrypoint)
		}
		if _, ok := c.ExposedPorts["8080/tcp"]; !ok {
			t.Errorf("ExposedPorts = %v; want 8080/tcp", c.ExposedPorts)
		}
		if cf.OS != "linux" || cf.Architecture != "amd64" {
			t.Errorf("platform %s/%s; want linux/amd64", cf.OS, cf.Architecture)
		}
		if c.Labels["org.opencontainers.image.version"] != "v1" || c.Labels["org.opencontainers.image.source"] == "" {
			t.Errorf("Labels = %v", c.Labels)
		}
		if want := time.Unix(1700000000, 0); !cf.Created.Equal(want) {
			t.Errorf("Created = %v; want SOURCE_DATE_EPOCH %v", cf.Created, want)
		}
	})

	files := extract(t, img)

	t.Run("passwd", func(t *testing.T) {
		if !strings.Contains(string(files["etc/passwd"].body), "\nnonroot:x:65532:65532:") {
			t.Errorf("/etc/passwd lacks nonroot 65532:\n%s", files["etc/passwd"].body)
		}
		if !strings.Contains(string(files["etc/group"].body), "nonroot:x:65532:") {
			t.Errorf("/etc/group lacks nonroot 65532")
		}
		if tmp, ok := files["tmp"]; !ok || tmp.hdr.Typeflag != tar.TypeDir || tmp.hdr.Mode != 0o1777 {
			t.Errorf("/tmp = %+v; want a 1777 directory", tmp.hdr)
		}
	})

	t.Run("commands", func(t *testing.T) {
		// The notification endpoint, the redrive and the status command run
		// from the same image (the Helm chart's notify Deployment runs
		// /notify, its Jobs /redrive and /status).
		for _, n := range []string{"consumer", "producer", "notify", "redrive", "status"} {
			if f, ok := files[n]; !ok || f.hdr.Mode != 0o755 {
				t.Errorf("/%s in the image: %v; want an executable", n, ok)
			}
		}
	})

	consumer := filepath.Join(t.TempDir(), "consumer")
	t.Run("binary", func(t *testing.T) {
		f, ok := files["consumer"]
		if !ok {
			t.Fatal("no /consumer in the image")
		}
		if f.hdr.Mode != 0o755 || f.hdr.Uid != 65532 || f.hdr.Gid != 65532 {
			t.Errorf("/consumer mode %o owner %d:%d; want 755 65532:65532", f.hdr.Mode, f.hdr.Uid, f.hdr.Gid)
		}
		ef, err := elf.NewFile(bytes.NewReader(f.body))
		if err != nil {
			t.Fatalf("/consumer is not ELF: %v", err)
		}
		if ef.Machine != elf.EM_X86_64 {
			t.Errorf("/consumer machine %v; want x86-64", ef.Machine)
		}
		for _, p := range ef.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("/consumer has PT_INTERP: dynamically linked, would not start on distroless/scratch")
			}
		}
		if err := os.WriteFile(consumer, f.body, 0o755); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("runs", func(t *testing.T) {
		if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
			t.Skipf("cannot run a linux/amd64 binary on %s/%s", runtime.GOOS, runtime.GOARCH)
		}
		if _, err := os.Stat(consumer); err != nil {
			t.Skip("binary not extracted")
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		// -h exits non-zero after printing usage, like any flag.ErrHelp; the output is what counts.
		out, _ := exec.CommandContext(ctx, consumer, "-h").CombinedOutput()
		if !strings.Contains(string(out), "-brokers") {
			t.Errorf("/consumer -h does not list -brokers:\n%s", out)
		}
	})

	t.Run("reproducible", func(t *testing.T) {
		first := blobs(t, img)
		// Into the same directory: a rebuild replaces the layout rather than adding to it.
		again := buildImage(t, "-oci-layout", oci, "-tag", "example.test/wxterm/consumer:v1", "-version", "v1")
		img2, _ := readLayout(t, oci)
		if again != digest {
			// Show which blob differs: only the binaries layer usually means the source changed in between.
			t.Errorf("second build digest %s; first %s\n[config, base layer, binaries layer]:\n%v\n%v", again, digest, first, blobs(t, img2))
		}
	})
}

// readLayout returns the one image of the OCI layout at dir and its index entry.
func readLayout(t *testing.T, dir string) (v1.Image, v1.Descriptor) {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("layout index has %d manifests; want 1", len(im.Manifests))
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img, im.Manifests[0]
}

// blobs lists the image's config and layer digests.
func blobs(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	cfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	hs := []v1.Hash{cfg}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, d)
	}
	return hs
}

type tarFile struct {
	hdr  tar.Header
	body []byte
}

// extract reads the image's flattened filesystem, keyed by path without the leading slash or trailing one.
func extract(t *testing.T, img v1.Image) map[string]tarFile {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]tarFile{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.Trim(h.Name, "/")] = tarFile{*h, body}
	}
}

// TestDockerfile checks textually what the Dockerfile cannot be built here to prove:
// a multi-stage build of static binaries whose final stage runs as non-root.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	from := regexp.MustCompile(`(?m)^FROM\s+\S+`).FindAllStringIndex(df, -1)
	if len(from) < 2 {
		t.Fatalf("%d FROM lines; want a multi-stage build", len(from))
	}
	build, final := df[:from[len(from)-1][0]], df[from[len(from)-1][0]:]
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "./cmd/consumer", "./cmd/producer"} {
		if !strings.Contains(build, want) {
			t.Errorf("build stage lacks %q", want)
		}
	}
	if !regexp.MustCompile(`^FROM\s+(gcr\.io/distroless/static\S*|scratch)\b`).MatchString(final) {
		t.Errorf("final stage %q; want distroless static or scratch", strings.SplitN(final, "\n", 2)[0])
	}
	users := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(final, -1)
	if len(users) == 0 || !slices.Contains([]string{"65532", "65532:65532", "nonroot", "nonroot:nonroot"}, users[len(users)-1][1]) {
		t.Errorf("final stage USER %v; want non-root 65532", users)
	}
	if !regexp.MustCompile(`(?m)^ENTRYPOINT\s+\["/consumer"\]`).MatchString(final) {
		t.Error(`final stage lacks ENTRYPOINT ["/consumer"]`)
	}
}

func TestRunNeedsOutput(t *testing.T) {
	if err := run(t.Context(), nil, io.Discard, io.Discard); err == nil {
		t.Error("run without -oci-layout or -tarball succeeded")
	}
}

// A mistyped -oci-layout must not wipe an unrelated directory.
func TestWriteLayoutKeepsOtherDirs(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "keep.txt")
	if err := os.WriteFile(keep, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("wxterm/consumer:dev")
	if err := writeLayout(dir, tag, empty.Image); err == nil {
		t.Error("writeLayout into a non-layout directory succeeded")
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("existing file gone: %v", err)
	}
}
