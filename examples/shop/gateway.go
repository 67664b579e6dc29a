package shop

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/phoenixsre/phoenix/examples/shop/orderlog"
)

// maxUpstreamBody bounds what the gateway relays back from orders.
const maxUpstreamBody = 1 << 20

// gateway forwards order requests to the orders service. It never retries:
// a failed forward is the client's failure, which is what Phoenix must
// prevent, not what the gateway should hide.
type gateway struct {
	orders *url.URL
	client *http.Client
}

func (g *gateway) register(s *server) {
	s.app("PUT /orders/{id}", g.put)
	s.app("GET /orders/{id}", g.get)
}

func (g *gateway) put(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, orderlog.MaxValueLen))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, fmt.Sprintf("value too large: at most %d bytes", orderlog.MaxValueLen), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	g.forward(w, r, http.MethodPut, body)
}

func (g *gateway) get(w http.ResponseWriter, r *http.Request) {
	g.forward(w, r, http.MethodGet, nil)
}

// forward sends the request to orders and relays its status, content type
// and body; 502 with the reason when orders cannot be reached.
func (g *gateway) forward(w http.ResponseWriter, r *http.Request, method string, body []byte) {
	id := r.PathValue("id")
	if err := orderlog.ValidateID(id); err != nil {
		http.Error(w, "bad order id: "+err.Error(), http.StatusBadRequest)
		return
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(r.Context(), method, g.orders.JoinPath("orders", id).String(), rd)
	if err != nil {
		http.Error(w, "build request to orders: "+err.Error(), http.StatusInternalServerError)
		return
	}
	resp, err := g.client.Do(req)
	if err != nil {
		http.Error(w, "orders unreachable: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, maxUpstreamBody))
}
