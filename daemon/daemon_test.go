package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/phoenixsre/phoenix/config"
	"github.com/phoenixsre/phoenix/daemon"
)

// TestReceiversAreWiredAndGuarded starts a whole daemon on real sockets and
// checks that every receiver answers on the OTLP/HTTP listener, that each
// needs the daemon's token, and that what they take reaches the graph and
// the store.
func TestReceiversAreWiredAndGuarded(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	}))
	defer backend.Close()
	dir := t.TempDir()
	token := "0123456789abcdef0123456789abcdef"
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(fmt.Appendf(nil, `
state_dir: %s
api: {listen: 127.0.0.1:0, token_file: %s}
receivers: {otlp_http: {listen: 127.0.0.1:0}}
components:
  - name: orders
    proxy: 127.0.0.1:0
    primary: {url: %s}
    replica: {command: [orders]}
`, dir, filepath.Join(dir, "token"), backend.URL))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := daemon.New(ctx, cfg, daemon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	zipkin := `[{"traceId":"0000000000000001","id":"0000000000000001","name":"get","kind":"SERVER","localEndpoint":{"serviceName":"gateway"}},
	{"traceId":"0000000000000001","parentId":"0000000000000001","id":"0000000000000002","name":"get","kind":"CLIENT","localEndpoint":{"serviceName":"gateway"},"remoteEndpoint":{"serviceName":"orders"}},
	{"traceId":"0000000000000001","parentId":"0000000000000002","id":"0000000000000003","name":"get","kind":"SERVER","localEndpoint":{"serviceName":"orders"}}]`
	wr := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "process_resident_memory_bytes"}, {Name: "component", Value: "orders"}},
		Samples: []prompb.Sample{{Value: 42e6, Timestamp: time.Now().UnixMilli()}},
	}}}
	raw, err := wr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	rw := snappy.Encode(nil, raw)

	base := "http://" + d.OTLPAddr()
	tests := []struct {
		name, path, ctype string
		headers           map[string]string
		body              []byte
		want              int
	}{
		{"zipkin", "/api/v2/spans", "application/json", nil, []byte(zipkin), http.StatusAccepted},
		{"remote-write", "/api/v1/write", "application/x-protobuf", map[string]string{"Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0"}, rw, http.StatusNoContent},
		{"otlp metrics, bad body", "/v1/metrics", "application/x-protobuf", nil, []byte("not protobuf"), http.StatusBadRequest},
		{"otlp traces, bad body", "/v1/traces", "application/json", nil, []byte("{"), http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, auth := range []string{"", "Bearer " + token} {
				req, _ := http.NewRequest(http.MethodPost, base+tt.path, bytes.NewReader(tt.body))
				req.Header.Set("Content-Type", tt.ctype)
				for k, v := range tt.headers {
					req.Header.Set(k, v)
				}
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				want := tt.want
				if auth == "" {
					want = http.StatusUnauthorized
				}
				if resp.StatusCode != want {
					t.Errorf("auth %q: %d %s, want %d", auth, resp.StatusCode, b, want)
				}
			}
		})
	}

	// The spans made an edge; the graph answers in DOT through the API.
	req, _ := http.NewRequest(http.MethodGet, "http://"+d.APIAddr()+"/api/v1/graph?format=dot", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "gateway") || !strings.Contains(string(b), "orders") {
		t.Errorf("graph: %d %s", resp.StatusCode, b)
	}
}
