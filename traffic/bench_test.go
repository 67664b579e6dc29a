package traffic

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// BenchmarkProxy measures the same small GET sent straight to a local
// backend and through the proxy, side by side, as a baseline for throughput
// work. Both use keep-alive connections and run in parallel.
func BenchmarkProxy(b *testing.B) {
	payload := []byte("orders@primary")
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", "orders@primary")
		w.Write(payload)
	}))
	defer backend.Close()
	u, err := url.Parse(backend.URL)
	if err != nil {
		b.Fatal(err)
	}
	p := startProxy(b, Config{}, Backend{Name: "orders@primary", URL: u})

	for _, target := range []struct{ name, url string }{
		{"direct", backend.URL + "/who"},
		{"proxy", "http://" + p.Addr().String() + "/who"},
	} {
		b.Run(target.name, func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			defer client.CloseIdleConnections()
			b.ReportAllocs()
			b.SetParallelism(4) // 4 clients per core, as the test load does
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Get(target.url)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}
