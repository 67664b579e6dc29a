package providertest

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/phoenixsre/phoenix/provider"
)

// readData returns the instance's GET /data status and body.
func readData(t *testing.T, inst provider.Instance) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + inst.Addr + "/data")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// testDataSurvivesCrash: an instance provisioned again after a crash gets
// the same data directory, with what was written there: the state copied
// to a replica is not lost because its process died.
func testDataSurvivesCrash(t *testing.T, h Harness) {
	if !h.SharedDataDir {
		t.Skip("the instance's data directory is not shared with the test (Harness.SharedDataDir is false)")
	}
	p := h.New(t)
	s := spec(t, h)
	inst := provision(t, p, s)
	want := "written before the crash"
	if err := os.WriteFile(filepath.Join(inst.DataDir, "data"), []byte(want), 0o600); err != nil {
		t.Fatal(err)
	}
	h.Kill(t, inst)
	waitExited(t, p, s.ID)
	again, err := p.Provision(ctx(t), s)
	if err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, again)
	if again.DataDir != inst.DataDir {
		t.Fatalf("data directory moved from %s to %s", inst.DataDir, again.DataDir)
	}
	if code, got := readData(t, again); code != http.StatusOK || got != want {
		t.Fatalf("after the crash the instance reads %d %q, want %q", code, got, want)
	}
}

// testReleaseRemovesData: Release frees the data directory, and the same ID
// provisioned later starts from an empty one.
func testReleaseRemovesData(t *testing.T, h Harness) {
	if !h.SharedDataDir {
		t.Skip("the instance's data directory is not shared with the test (Harness.SharedDataDir is false)")
	}
	p := h.New(t)
	s := spec(t, h)
	inst := provision(t, p, s)
	if err := os.WriteFile(filepath.Join(inst.DataDir, "data"), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.Release(ctx(t), s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(inst.DataDir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("data directory %s still there after Release: %v", inst.DataDir, err)
	}
	again := provision(t, p, s)
	if code, got := readData(t, again); code != http.StatusNotFound {
		t.Fatalf("a released ID provisioned again reads %d %q from its data directory, want it empty (404)", code, got)
	}
	_ = p.Release(context.Background(), s.ID)
}
