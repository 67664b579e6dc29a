package depmap

import (
	"testing"
)

func TestComponentName(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"orders", "orders", true},
		{"coreSrv", "coresrv", true},
		{"yelp_main/api_proxy", "yelp_main-api_proxy", true},
		{"Mobile Gateway", "mobile-gateway", true},
		{"  -api- ", "api", true},
		{"café", "caf", true},
		{"%%", "", false},
		{"", "", false},
		{string(make([]byte, 65)), "", false},
		{"a" + string(make([]byte, 70)) + "b", "", false},
	} {
		got, ok := ComponentName(tc.in)
		if string(got) != tc.want || ok != tc.ok {
			t.Errorf("ComponentName(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzComponentName checks that a name is either refused or made a valid
// component name that maps to itself.
func FuzzComponentName(f *testing.F) {
	for _, s := range []string{"orders", "coreSrv", "yelp_main/api_proxy", "%%", "ÄÖÜ-x"} {
		f.Add(s)
	}
	var in interner
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := ComponentName(s)
		if !ok {
			return
		}
		if err := id.Validate(); err != nil {
			t.Fatalf("ComponentName(%q) = %q, which is invalid: %v", s, id, err)
		}
		if again, ok := ComponentName(string(id)); !ok || again != id {
			t.Fatalf("ComponentName(%q) = %q, not a fixed point", id, again)
		}
		if got, ok := in.name(s); !ok || got != id {
			t.Fatalf("interned %q = %q, want %q", s, got, id)
		}
	})
}
