package shop

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
)

// admin serves the /admin endpoints behind a bearer token.
type admin struct {
	token  string // empty: admin disabled
	faults *faults
	log    *slog.Logger
}

// auth answers 403 when admin is disabled and 401 for a missing or wrong
// token, and calls next otherwise.
func (a *admin) auth(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.token == "" {
			http.Error(w, "admin disabled: set "+AdminTokenEnv, http.StatusForbidden)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="shop admin"`)
			http.Error(w, "admin: missing or wrong bearer token (Authorization: Bearer <"+AdminTokenEnv+">)", http.StatusUnauthorized)
			return
		}
		next(w, r)
	})
}

// postFault starts a fault, clears them, or crashes the process.
func (a *admin) postFault(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFaultBodyLen))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, fmt.Sprintf("fault body exceeds %d bytes", maxFaultBodyLen), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read fault body: "+err.Error(), http.StatusBadRequest)
		return
	}
	spec, err := decodeFaultSpec(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a.log.Warn("fault requested", "kind", spec.Kind, "bytes_per_second", spec.BytesPerSecond,
		"ms_per_second", spec.MsPerSecond, "max_ms", spec.MaxMs, "per_second", spec.PerSecond, "max", spec.Max)
	if spec.Kind == faultCrash {
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, "crashing\n")
		_ = http.NewResponseController(w).Flush()
		a.faults.kill()
		return
	}
	if err := a.faults.apply(spec); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"faults": a.faults.status()})
}

// getFault lists the active faults.
func (a *admin) getFault(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"faults": a.faults.status()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
