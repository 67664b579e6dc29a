package depmap

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/phoenixsre/phoenix"
)

// Snapshotter is the graph as NewGraphHandler reads it. *Graph is one.
type Snapshotter interface {
	Snapshot() Snapshot
}

var _ Snapshotter = (*Graph)(nil)

// The formats NewGraphHandler serves, as ?format= takes them.
const (
	FormatJSON    = "json"
	FormatDOT     = "dot"
	FormatMermaid = "mermaid"
)

// NewGraphHandler serves the graph on GET: ?format=json (the default: a
// Snapshot), dot (Graphviz) or mermaid; with ?component=NAME only that
// component's neighbourhood (see Snapshot.Focus), and in JSON what it needs
// and who calls it. Errors are 400 (bad parameter), 404 (no such component
// in the graph) and 405, with a JSON body {"error": reason}. It does not
// authenticate: mount it behind the API's token check.
func NewGraphHandler(g Snapshotter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			jsonError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: use GET", r.Method))
			return
		}
		q := r.URL.Query()
		format := q.Get("format")
		if format == "" {
			format = FormatJSON
		}
		if format != FormatJSON && format != FormatDOT && format != FormatMermaid {
			jsonError(w, http.StatusBadRequest, fmt.Sprintf("format %q not supported: use %s, %s or %s", format, FormatJSON, FormatDOT, FormatMermaid))
			return
		}
		s := g.Snapshot()
		if q.Has("component") {
			c := phoenix.ComponentID(q.Get("component"))
			if err := c.Validate(); err != nil {
				jsonError(w, http.StatusBadRequest, "component: "+err.Error())
				return
			}
			var ok bool
			if s, ok = s.Focus(c); !ok {
				jsonError(w, http.StatusNotFound, fmt.Sprintf("component %s is not in the dependency graph: no edge to or from it is known", c))
				return
			}
		}
		var (
			buf bytes.Buffer
			err error
		)
		switch format {
		case FormatDOT:
			w.Header().Set("Content-Type", "text/vnd.graphviz; charset=utf-8")
			err = s.WriteDOT(&buf)
		case FormatMermaid:
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			err = s.WriteMermaid(&buf)
		default:
			w.Header().Set("Content-Type", "application/json")
			if s.Nodes == nil {
				s.Nodes = []Node{}
			}
			if s.Edges == nil {
				s.Edges = []Edge{}
			}
			enc := json.NewEncoder(&buf)
			enc.SetIndent("", "  ")
			err = enc.Encode(s)
		}
		if err != nil { // our own values always encode; a bug if reached
			w.Header().Del("Content-Type")
			jsonError(w, http.StatusInternalServerError, err.Error())
			return
		}
		_, _ = w.Write(buf.Bytes())
	})
}

func jsonError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
