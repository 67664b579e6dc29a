package process_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/phoenixsre/phoenix/provider"
	"github.com/phoenixsre/phoenix/provider/process"
	"github.com/phoenixsre/phoenix/provider/providertest"
)

// TestMain doubles as the instance program: re-executed with
// PROCESS_TEST_SERVER set, the test binary serves /healthz and /data.
func TestMain(m *testing.M) {
	if os.Getenv("PROCESS_TEST_SERVER") == "1" {
		addr, dataDir := os.Args[len(os.Args)-2], os.Args[len(os.Args)-1]
		http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
		http.HandleFunc("/data", func(w http.ResponseWriter, r *http.Request) {
			http.ServeFile(w, r, filepath.Join(dataDir, "data"))
		})
		if err := http.ListenAndServe(addr, nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	os.Exit(m.Run())
}

func TestConformance(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	providertest.Run(t, providertest.Harness{
		New: func(t *testing.T) provider.Provider {
			p, err := process.New(process.Config{Root: root})
			if err != nil {
				t.Fatal(err)
			}
			return p
		},
		Command:       []string{exe, "-test.run=^$", "{addr}", "{data_dir}"},
		Env:           map[string]string{"PROCESS_TEST_SERVER": "1"},
		SharedDataDir: true,
		Kill: func(t *testing.T, inst provider.Instance) {
			var pid int
			if _, err := fmt.Sscanf(inst.Detail, "pid %d", &pid); err != nil {
				t.Fatalf("instance detail %q: %v", inst.Detail, err)
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		},
	})
}

// TestAdoptsProcessWhoseRecordLostItsPID covers a crash between writing the
// intent and recording the PID: the instance is found by its environment
// marker, not started twice.
func TestAdoptsProcessWhoseRecordLostItsPID(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	p, err := process.New(process.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	spec := provider.Spec{ID: "lost-pid", Command: []string{exe, "-test.run=^$", "{addr}", "{data_dir}"},
		Env: map[string]string{"PROCESS_TEST_SERVER": "1"}}
	first, err := p.Provision(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Release(context.Background(), spec.ID) })

	recPath := filepath.Join(root, spec.ID, "instance.json")
	b, err := os.ReadFile(recPath)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	rec["pid"], rec["start_ticks"] = 0, 0
	b, _ = json.Marshal(rec)
	if err := os.WriteFile(recPath, b, 0o600); err != nil {
		t.Fatal(err)
	}

	p2, err := process.New(process.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	again, err := p2.Provision(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if again.Detail != first.Detail {
		t.Fatalf("started %s, want the running %s adopted", again.Detail, first.Detail)
	}
}
