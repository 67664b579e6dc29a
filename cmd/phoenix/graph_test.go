package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/api"
	"github.com/phoenixsre/phoenix/depmap"
)

// TestGraphCommand runs `phoenix graph` against a real HTTP server that
// serves depmap's graph handler behind the API's token check, as the
// daemon mounts it.
func TestGraphCommand(t *testing.T) {
	g, err := depmap.NewGraph(depmap.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range [][2]string{{"gateway", "orders"}, {"orders", "inventory"}} {
		if err := g.AddEdge(phoenix.ComponentID(e[0]), phoenix.ComponentID(e[1]), depmap.SourceStatic); err != nil {
			t.Fatal(err)
		}
	}
	const token = "graph-test-token-0123456789"
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/graph", depmap.NewGraphHandler(g))
	srv := httptest.NewServer(api.RequireToken(token, mux))
	defer srv.Close()
	t.Setenv("PHOENIX_TOKEN", token)

	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"graph", "--api", srv.URL}, 0, `"from": "gateway"`},
		{[]string{"graph", "--api", srv.URL, "--format", "dot"}, 0, "digraph phoenix {"},
		{[]string{"graph", "--api", srv.URL, "-f", "mermaid", "--component", "inventory"}, 0, "flowchart LR"},
		{[]string{"graph", "--api", srv.URL, "--format", "svg"}, 2, "use json, dot or mermaid"},
		{[]string{"graph", "--api", srv.URL, "--component", "billing"}, 1, "billing is not in the dependency graph"},
	} {
		t.Run(strings.Join(tc.args[3:], " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(t.Context(), tc.args, &out, &errb)
			if code != tc.code || !strings.Contains(out.String()+errb.String(), tc.out) {
				t.Fatalf("exit %d, want %d; output %q %q does not say %q", code, tc.code, out.String(), errb.String(), tc.out)
			}
		})
	}

	var out bytes.Buffer
	if code := run(t.Context(), []string{"graph", "--api", srv.URL, "--component", "orders"}, &out, &bytes.Buffer{}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	var s depmap.Snapshot
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Closure) != 1 || s.Closure[0] != "inventory" || len(s.Dependents) != 1 || s.Dependents[0] != "gateway" {
		t.Errorf("orders: closure %v dependents %v, want [inventory] and [gateway]", s.Closure, s.Dependents)
	}

	t.Setenv("PHOENIX_TOKEN", "wrong-token-0123456789")
	var errb bytes.Buffer
	if code := run(t.Context(), []string{"graph", "--api", srv.URL}, &bytes.Buffer{}, &errb); code != 1 || !strings.Contains(errb.String(), "invalid token") {
		t.Errorf("with a wrong token: exit %d, %q", code, errb.String())
	}
}
