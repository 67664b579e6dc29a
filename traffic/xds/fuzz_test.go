package xds

import (
	"net/url"
	"testing"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/traffic"
)

// FuzzEndpoints: any backend URL either becomes an IP endpoint with a port
// in range, or is refused with an error; never a panic.
func FuzzEndpoints(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1:8080", "tcp://[::1]:5432", "http://10.0.0.1", "https://[::ffff:10.0.0.1]", "http://localhost:80", "tcp://1.2.3.4:0", "tcp://1.2.3.4:99999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		eps, names, err := endpointsOf([]traffic.Backend{{Name: "b", URL: u}})
		if err != nil {
			return
		}
		if len(eps) != 1 || len(names) != 1 || eps[0].Port() == 0 || !eps[0].Addr().IsValid() || eps[0].Addr().Is4In6() {
			t.Fatalf("endpointsOf(%q) = %v %v", raw, eps, names)
		}
		// A published snapshot with it must be consistent.
		if _, _, err := snapshots("1", map[phoenix.ComponentID]componentRoute{"c": {protocol: traffic.HTTP, endpoints: eps, names: names}}, nil); err != nil {
			t.Fatalf("snapshot with %v: %v", eps, err)
		}
	})
}
