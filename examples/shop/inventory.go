package shop

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"

	"github.com/phoenixsre/phoenix/examples/shop/orderlog"
)

// stock is the inventory's answer for one sku.
type stock struct {
	SKU       string `json:"sku"`
	Available int    `json:"available"`
}

// inventory answers stock queries; it keeps no state.
type inventory struct{}

func (inventory) register(s *server) {
	s.app("GET /stock/{sku}", stockHandler)
}

func stockHandler(w http.ResponseWriter, r *http.Request) {
	sku := r.PathValue("sku")
	if err := orderlog.ValidateID(sku); err != nil {
		http.Error(w, "bad sku: "+err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, http.StatusOK, stock{SKU: sku, Available: available(sku)})
}

// available is the deterministic quantity in stock for a sku, 0..999.
func available(sku string) int {
	return int(hash32(sku) % 1000)
}

func hash32(s string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return h.Sum32()
}

// skuFor maps an order id to one of 100 skus, stably across processes.
func skuFor(id string) string {
	return fmt.Sprintf("sku-%d", hash32(id)%100)
}

// decodeStock parses an inventory answer and checks it is about sku.
func decodeStock(body []byte, sku string) (stock, error) {
	var s stock
	if err := json.Unmarshal(body, &s); err != nil {
		return stock{}, fmt.Errorf("malformed stock JSON: %w", err)
	}
	if s.SKU != sku {
		return stock{}, fmt.Errorf("stock answer is for sku %q, asked for %q", s.SKU, sku)
	}
	if s.Available < 0 {
		return stock{}, errors.New("stock answer has a negative quantity")
	}
	return s, nil
}
