package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/control"
	"github.com/phoenixsre/phoenix/depmap"
)

// StatusSource is the controller as the API reads it.
type StatusSource interface {
	Status() control.Status
}

// EventSource is the event log as the API reads it.
type EventSource interface {
	Events(after uint64, limit int) ([]phoenix.Event, error)
	Wait(ctx context.Context, after uint64, limit int) ([]phoenix.Event, error)
}

// Switcher takes an operator's requests to switch a component to its
// replica now, or back to its original primary.
type Switcher interface {
	RequestSwitch(c phoenix.ComponentID, reason string) error
	RequestFailBack(c phoenix.ComponentID, reason string) error
}

// Options are what the API serves from.
type Options struct {
	Status   StatusSource
	Events   EventSource
	Graph    depmap.Snapshotter
	Switcher Switcher
	// Token must be presented as "Authorization: Bearer <token>" on every
	// /api/ call. It must not be empty.
	Token    string
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
}

// maxWait bounds a long-poll on the event log.
const maxWait = 60 * time.Second

// New returns the API's handler. /healthz and /metrics are open (they change
// nothing and reveal no secret); everything under /api/ needs the token.
func New(o Options) (http.Handler, error) {
	if o.Token == "" {
		return nil, errors.New("api: a token is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &server{o: o}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	if o.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	}
	api := http.NewServeMux()
	api.HandleFunc("GET /api/v1/status", s.status)
	api.HandleFunc("GET /api/v1/events", s.events)
	if o.Graph != nil {
		// ?format=json|dot|mermaid&component=NAME
		api.Handle("GET /api/v1/graph", depmap.NewGraphHandler(o.Graph))
	}
	api.HandleFunc("POST /api/v1/components/{name}/switch", s.request("switch", Switcher.RequestSwitch))
	api.HandleFunc("POST /api/v1/components/{name}/failback", s.request("failback", Switcher.RequestFailBack))
	mux.Handle("/api/", RequireToken(o.Token, api))
	return mux, nil
}

// RequireToken wraps h so that only requests carrying the bearer token pass;
// others get 401 with the reason.
func RequireToken(token string, h http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("Authorization")
		if got == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="phoenix"`)
			httpError(w, http.StatusUnauthorized, "missing Authorization: Bearer <token> header (the token is in the daemon's token file)")
			return
		}
		if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="phoenix", error="invalid_token"`)
			httpError(w, http.StatusUnauthorized, "invalid token")
			return
		}
		h.ServeHTTP(w, r)
	})
}

type server struct{ o Options }

func (s *server) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, s.o.Status.Status())
}

// events serves the log after ?after=SEQ (default 0), at most ?limit=N
// (default 1000); with ?wait=DURATION it blocks until there is at least one
// such event or the wait ends (then it answers an empty list).
func (s *server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, err := uintParam(q.Get("after"), 0)
	if err != nil {
		httpError(w, http.StatusBadRequest, "after: "+err.Error())
		return
	}
	limit, err := uintParam(q.Get("limit"), 1000)
	if err != nil || limit == 0 || limit > 10000 {
		httpError(w, http.StatusBadRequest, "limit: want a whole number from 1 to 10000")
		return
	}
	var wait time.Duration
	if v := q.Get("wait"); v != "" {
		if wait, err = time.ParseDuration(v); err != nil || wait < 0 || wait > maxWait {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("wait: want a duration from 0s to %s, e.g. 30s", maxWait))
			return
		}
	}
	var evs []phoenix.Event
	if wait > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		evs, err = s.o.Events.Wait(ctx, after, int(limit))
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			err = nil
		}
	} else {
		evs, err = s.o.Events.Events(after, int(limit))
	}
	if err != nil {
		if r.Context().Err() != nil {
			return
		}
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if evs == nil {
		evs = []phoenix.Event{}
	}
	writeJSON(w, evs)
}

// request serves an operator's request (switch, failback) on a component:
// 202 once the loop has it, 409 with the reason when it cannot be done now.
func (s *server) request(what string, do func(Switcher, phoenix.ComponentID, string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := phoenix.ComponentID(r.PathValue("name"))
		if err := name.Validate(); err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		if s.o.Switcher == nil {
			httpError(w, http.StatusNotImplemented, "this daemon does not take "+what+" requests")
			return
		}
		if err := do(s.o.Switcher, name, "requested through the API"); err != nil {
			code := http.StatusConflict
			if errors.Is(err, control.ErrUnknownComponent) {
				code = http.StatusNotFound
			}
			httpError(w, code, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		writeJSON(w, map[string]string{"status": what + " requested", "component": string(name)})
	}
}

func uintParam(v string, def uint64) (uint64, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number", v)
	}
	return n, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
