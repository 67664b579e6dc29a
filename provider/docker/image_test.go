package docker_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phoenixsre/phoenix/provider/docker"
)

// TestEnsureImageIsKeyedByTheBinary: a second EnsureImage of the same
// binary finds the first one's image; the image runs the binary as
// ImageExecutable and carries its hash.
func TestEnsureImageIsKeyedByTheBinary(t *testing.T) {
	cli, img := engine(t)
	bin := filepath.Join(shared.dir, "testserver")
	again, err := docker.EnsureImage(t.Context(), cli, bin, "phoenix-testserver")
	if err != nil {
		t.Fatal(err)
	}
	if again != img {
		t.Fatalf("second EnsureImage = %+v, first %+v", again, img)
	}
	if !strings.HasPrefix(img.Ref, "phoenix-testserver:") || !strings.HasPrefix(img.SHA256, strings.TrimPrefix(img.Ref, "phoenix-testserver:")) {
		t.Fatalf("ref %s is not keyed by the hash %s", img.Ref, img.SHA256)
	}
	got, err := cli.ImageInspect(t.Context(), img.Ref)
	if err != nil {
		t.Fatal(err)
	}
	if got.Config.Labels[docker.LabelBinary] != img.SHA256 {
		t.Errorf("label %s = %q, want %s", docker.LabelBinary, got.Config.Labels[docker.LabelBinary], img.SHA256)
	}
	if len(got.Config.Entrypoint) != 1 || got.Config.Entrypoint[0] != docker.ImageExecutable {
		t.Errorf("entrypoint %v, want [%s]", got.Config.Entrypoint, docker.ImageExecutable)
	}

	// A changed binary is another image.
	changed := filepath.Join(t.TempDir(), "testserver")
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(changed, append(b, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	other, err := docker.EnsureImage(t.Context(), cli, changed, "phoenix-testserver")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = docker.RemoveImages(t.Context(), cli, "phoenix-testserver", img.Ref) })
	if other.Ref == img.Ref || other.ID == img.ID {
		t.Fatalf("a changed binary got the same image %+v", other)
	}
}

func TestEnsureImageRefusesWhatCannotRunFromScratch(t *testing.T) {
	cli, _ := engine(t)
	notELF := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := docker.EnsureImage(t.Context(), cli, notELF, ""); err == nil || !strings.Contains(err.Error(), "not a Linux executable") {
		t.Errorf("EnsureImage of a script: %v", err)
	}
	if static, err := docker.IsStatic("/bin/sh"); err != nil || static {
		t.Skipf("/bin/sh is not a dynamic executable here (%v, %v)", static, err)
	}
	if _, err := docker.EnsureImage(t.Context(), cli, "/bin/sh", ""); err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Errorf("EnsureImage of a dynamic binary: %v", err)
	}
}

func TestIsStatic(t *testing.T) {
	engine(t) // builds the static test server
	for _, tc := range []struct {
		path   string
		static bool
		err    bool
	}{
		{filepath.Join(shared.dir, "testserver"), true, false},
		{"/nonexistent", false, true},
	} {
		static, err := docker.IsStatic(tc.path)
		if static != tc.static || (err != nil) != tc.err {
			t.Errorf("IsStatic(%s) = %v, %v", tc.path, static, err)
		}
	}
}
