package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
)

// ImageExecutable is where EnsureImage puts the binary inside the image:
// what {phoenix} must expand to in the commands of containerised replicas.
const ImageExecutable = "/phoenix"

// LabelBinary is the image label holding the binary's SHA-256.
const LabelBinary = "io.phoenixsre.phoenix.binary-sha256"

// Image is an image EnsureImage made or found.
type Image struct {
	// Ref is REPO:TAG, the tag being the first 16 hex digits of the
	// binary's SHA-256.
	Ref string
	ID  string
	// SHA256 is the binary's full hash, in hex.
	SHA256 string
}

// EnsureImage makes sure the engine has an image that runs binary, a
// statically linked Linux executable, as ImageExecutable, and returns it.
// The image is FROM scratch: the binary, an empty /data and a /tmp. It is
// keyed by the binary's hash, so a second call with the same binary finds
// the first one's image and imports nothing. repo defaults to "phoenix".
//
// It uses ImageImport of a root filesystem tar rather than ImageBuild: one
// call, no builder, no Dockerfile, and the same result on every engine.
func EnsureImage(ctx context.Context, cli *client.Client, binary, repo string) (Image, error) {
	if repo == "" {
		repo = "phoenix"
	}
	static, err := IsStatic(binary)
	if err != nil {
		return Image{}, fmt.Errorf("image from %s: %w", binary, err)
	}
	if !static {
		return Image{}, fmt.Errorf("image from %s: the binary is dynamically linked and cannot run FROM scratch; build it with CGO_ENABLED=0 (docker.BuildBinary does)", binary)
	}
	sum, err := fileSHA256(binary)
	if err != nil {
		return Image{}, fmt.Errorf("image from %s: %w", binary, err)
	}
	img := Image{Ref: repo + ":" + sum[:16], SHA256: sum}
	if got, err := cli.ImageInspect(ctx, img.Ref); err == nil && got.Config != nil && got.Config.Labels[LabelBinary] == sum {
		img.ID = got.ID
		return img, nil
	} else if err != nil && !cerrdefs.IsNotFound(err) {
		return Image{}, fmt.Errorf("inspect image %s: %w", img.Ref, engineErr(err))
	}

	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeRootFS(pw, binary)) }()
	defer pr.Close()
	resp, err := cli.ImageImport(ctx, client.ImageImportSource{Source: pr, SourceName: "-"}, img.Ref, client.ImageImportOptions{
		Message: "phoenix image from " + filepath.Base(binary),
		Changes: []string{
			`ENTRYPOINT ["` + ImageExecutable + `"]`,
			"LABEL " + LabelBinary + "=" + sum,
		},
	})
	if err != nil {
		return Image{}, fmt.Errorf("import image %s: %w", img.Ref, engineErr(err))
	}
	err = checkStream(resp)
	resp.Close()
	if err != nil {
		return Image{}, fmt.Errorf("import image %s: %w", img.Ref, err)
	}
	got, err := cli.ImageInspect(ctx, img.Ref)
	if err != nil {
		return Image{}, fmt.Errorf("inspect imported image %s: %w", img.Ref, engineErr(err))
	}
	img.ID = got.ID
	return img, nil
}

// checkStream reads an engine progress stream (JSON messages) to its end
// and returns the first error reported in it.
func checkStream(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("engine's progress stream: %w", err)
		}
		if m.Error != nil {
			return fmt.Errorf("engine: %s", m.Error.Message)
		}
	}
}

// writeRootFS writes the image's root filesystem as a tar.
func writeRootFS(w io.Writer, binary string) error {
	f, err := os.Open(binary)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	mtime := time.Unix(0, 0)
	tw := tar.NewWriter(w)
	for _, d := range []struct {
		name string
		mode int64
	}{{"data/", 0o755}, {"tmp/", 0o1777}} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d.name, Mode: d.mode, ModTime: mtime}); err != nil {
			return err
		}
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(ImageExecutable, "/"), Mode: 0o755, Size: st.Size(), ModTime: mtime}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.Copy(tw, f); err != nil {
		return err
	}
	return tw.Close()
}

// RemoveImages removes the images of repo other than keep (a Ref), e.g.
// those of older binaries. An image a container still uses is kept.
func RemoveImages(ctx context.Context, cli *client.Client, repo, keep string) error {
	res, err := cli.ImageList(ctx, client.ImageListOptions{Filters: make(client.Filters).Add("reference", repo)})
	if err != nil {
		return fmt.Errorf("list images: %w", engineErr(err))
	}
	for _, im := range res.Items {
		for _, tag := range im.RepoTags {
			if tag == keep || !strings.HasPrefix(tag, repo+":") {
				continue
			}
			if _, err := cli.ImageRemove(ctx, tag, client.ImageRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
				return fmt.Errorf("remove image %s: %w", tag, engineErr(err))
			}
		}
	}
	return nil
}

// IsStatic reports whether the ELF executable at path needs no dynamic
// loader (it has no PT_INTERP program header), so that it runs FROM scratch.
func IsStatic(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, fmt.Errorf("not a Linux executable: %w", err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return false, fmt.Errorf("ELF type %s is not an executable", f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}

// BuildBinary builds the Go package pkg (e.g. "./cmd/phoenix") of the
// module in moduleDir into out, statically linked (CGO_ENABLED=0, linux),
// with the go command on PATH.
func BuildBinary(ctx context.Context, moduleDir, pkg, out string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("build %s: the go command is not on PATH: %w", pkg, err)
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %s in %s: %w\n%s", pkg, moduleDir, err, buf.Bytes())
	}
	return nil
}

// StaticBinary returns a statically linked phoenix binary for images: exe
// itself if it is static, otherwise one built from the module's source in
// moduleDir into outDir. moduleDir empty means: exe or nothing.
func StaticBinary(ctx context.Context, exe, moduleDir, outDir string) (string, error) {
	if static, err := IsStatic(exe); err == nil && static {
		return exe, nil
	}
	if moduleDir == "" {
		return "", fmt.Errorf("%s is dynamically linked; build a static one with CGO_ENABLED=0 go build ./cmd/phoenix, or run from the source tree", exe)
	}
	out := filepath.Join(outDir, "phoenix-static")
	if err := BuildBinary(ctx, moduleDir, "./cmd/phoenix", out); err != nil {
		return "", err
	}
	return out, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
