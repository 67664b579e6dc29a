package shop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/phoenixsre/phoenix/examples/shop/orderlog"
)

// maxStockBody bounds what orders reads of an inventory answer.
const maxStockBody = 4 << 10

// orders stores order values in the log and checks stock with inventory
// before every request.
type orders struct {
	store     *orderlog.Store
	inventory *url.URL
	client    *http.Client
	log       *slog.Logger
}

func (o *orders) register(s *server, a *admin) {
	s.app("PUT /orders/{id}", o.put)
	s.app("GET /orders/{id}", o.get)
	s.plain("POST /admin/promote", a.auth(o.promote))
	s.plain("GET /admin/state", a.auth(o.state))
}

func (o *orders) put(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := orderlog.ValidateID(id); err != nil {
		http.Error(w, "bad order id: "+err.Error(), http.StatusBadRequest)
		return
	}
	if o.store.Role() != orderlog.Primary {
		http.Error(w, orderlog.ErrStandby.Error(), http.StatusServiceUnavailable)
		return
	}
	value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, orderlog.MaxValueLen))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, fmt.Sprintf("value too large: at most %d bytes", orderlog.MaxValueLen), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := o.checkStock(r.Context(), id); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	switch err := o.store.Put(r.Context(), id, value); {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, orderlog.ErrStandby), errors.Is(err, orderlog.ErrClosed),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		http.Error(w, "store: "+err.Error(), http.StatusServiceUnavailable)
	default:
		http.Error(w, "store: "+err.Error(), http.StatusInternalServerError)
	}
}

func (o *orders) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := orderlog.ValidateID(id); err != nil {
		http.Error(w, "bad order id: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := o.checkStock(r.Context(), id); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	value, ok := o.store.Get(id)
	if !ok {
		http.Error(w, fmt.Sprintf("order %q not found", id), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(value)
}

// checkStock asks inventory about the order's sku; any failure, including
// a non-200 answer or a malformed one, is returned with its reason.
func (o *orders) checkStock(ctx context.Context, id string) error {
	sku := skuFor(id)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.inventory.JoinPath("stock", sku).String(), nil)
	if err != nil {
		return fmt.Errorf("inventory: build request: %w", err)
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return fmt.Errorf("inventory unreachable: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStockBody))
	if err != nil {
		return fmt.Errorf("inventory: read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("inventory answered %d: %.200s", resp.StatusCode, body)
	}
	if _, err := decodeStock(body, sku); err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	return nil
}

// promote makes a standby the primary; on a primary it changes nothing.
func (o *orders) promote(w http.ResponseWriter, r *http.Request) {
	was := o.store.Role()
	st, err := o.store.Promote(r.Context())
	if err != nil {
		o.log.Error("promotion failed", "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if was != orderlog.Primary {
		o.log.Info("promoted to primary", "records", st.Records, "offset", st.Offset, "truncated_bytes", st.Truncated)
	}
	writeJSON(w, http.StatusOK, st)
}

func (o *orders) state(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, o.store.State())
}
