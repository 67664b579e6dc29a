package kubernetes

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestObjectName(t *testing.T) {
	tests := []struct{ owner, id, want string }{
		{"phoenix", "orders-1.orders", "phx-orders-1-orders-"},
		{"phoenix", "A_B", "phx-a-b-"},
		{"phoenix", "...", "phx-"},
		{"phoenix", strings.Repeat("x", 128), "phx-" + strings.Repeat("x", 48) + "-"},
	}
	for _, tt := range tests {
		got := objectName(tt.owner, tt.id)
		if !strings.HasPrefix(got, tt.want) || len(got) > 63 {
			t.Errorf("objectName(%q) = %q, want prefix %q", tt.id, got, tt.want)
		}
	}
	if objectName("phoenix", "a") == objectName("staging", "a") {
		t.Error("two owners share an object name")
	}
	if objectName("phoenix", "a.b") == objectName("phoenix", "a-b") {
		t.Error("two IDs with the same slug share an object name")
	}
}

// FuzzObjectName: whatever the ID (it comes from the allocation records on
// disk), the name is a valid Service name and label value, and stable.
func FuzzObjectName(f *testing.F) {
	for _, s := range []string{"orders-1.orders", "", "-", "A", strings.Repeat("é", 70), "a\x00b"} {
		f.Add("phoenix", s)
	}
	f.Fuzz(func(t *testing.T, owner, id string) {
		n := objectName(owner, id)
		if errs := validation.IsDNS1035Label(n); len(errs) > 0 {
			t.Fatalf("objectName(%q) = %q: %v", id, n, errs)
		}
		if errs := validation.IsValidLabelValue(n); len(errs) > 0 {
			t.Fatalf("objectName(%q) = %q is not a label value: %v", id, n, errs)
		}
		if errs := validation.IsDNS1123Subdomain(claimName(n, 1<<30)); len(errs) > 0 {
			t.Fatalf("claim name of %q: %v", n, errs)
		}
		if objectName(owner, id) != n {
			t.Fatal("not stable")
		}
	})
}

// FuzzParseOfferID: an offer ID from a config or an allocation record
// either parses to label values that format back to it, or is refused.
func FuzzParseOfferID(f *testing.F) {
	for _, s := range []string{"zone-a/m5.large", "-/-", "a/", "/b", "a/b/c", "", "zone a/x", "-/m5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		zone, itype, err := parseOfferID(id)
		if err != nil {
			return
		}
		for _, v := range []string{zone, itype} {
			if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
				t.Fatalf("parseOfferID(%q) gave %q: %v", id, v, errs)
			}
		}
		if back := formatOfferID(zone, itype); back != id {
			t.Fatalf("parseOfferID(%q) = %q, %q, which formats to %q", id, zone, itype, back)
		}
	})
}
