package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// jaegerConfig is Jaeger v2's all-in-one with in-memory storage, only the
// OTLP/HTTP receiver and the query API, on the given ports.
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: detailed
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: %[1]d
    logs:
      level: warn
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:%[2]d
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: 127.0.0.1:%[3]d
    grpc:
      endpoint: 127.0.0.1:%[4]d
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 5000000
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:%[5]d
processors:
  batch:
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
`

type jaegerProc struct {
	cmd                      *exec.Cmd
	metrics, query, otlp, hc int
	stderr                   *bytes.Buffer
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func startJaeger(ctx context.Context, bin, dir string) (*jaegerProc, error) {
	var ports [5]int
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	j := &jaegerProc{metrics: ports[0], hc: ports[1], query: ports[2], otlp: ports[4], stderr: &bytes.Buffer{}}
	cfg := filepath.Join(dir, "jaeger.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, jaegerConfig, ports[0], ports[1], ports[2], ports[3], ports[4]), 0o600); err != nil {
		return nil, err
	}
	j.cmd = exec.Command(bin, "--config", cfg)
	j.cmd.Stderr = j.stderr
	j.cmd.Stdout = j.stderr
	if err := j.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/status", j.hc))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return j, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			j.stop()
			return nil, fmt.Errorf("jaeger not healthy within 60s: %v\n%s", err, j.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (j *jaegerProc) stop() {
	_ = j.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = j.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = j.cmd.Process.Kill()
		<-done
	}
}

// storedSpans reads how many spans Jaeger's storage exporter has written.
func (j *jaegerProc) storedSpans() (float64, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", j.metrics))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, err
	}
	var total float64
	for name, f := range families {
		if !strings.HasPrefix(name, "otelcol_exporter_sent_spans") {
			continue
		}
		for _, m := range f.GetMetric() {
			total += m.GetCounter().GetValue()
		}
	}
	return total, nil
}

// dependencies asks Jaeger's query API for the links it computes.
func (j *jaegerProc) dependencies() ([]string, error) {
	end := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	url := fmt.Sprintf("http://127.0.0.1:%d/api/dependencies?endTs=%d&lookback=%d", j.query, end.UnixMilli(), (400 * 24 * time.Hour).Milliseconds())
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET dependencies: %s: %s", resp.Status, body)
	}
	var out struct {
		Data []struct {
			Parent, Child string
			CallCount     int
		}
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, err
	}
	var edges []string
	for _, d := range out.Data {
		if d.Parent != d.Child { // Jaeger also counts a service calling itself
			edges = append(edges, edgeString(d.Parent, d.Child, false))
		}
	}
	return edges, nil
}

// benchJaeger runs rounds against a fresh Jaeger each, timed from the
// first request until its storage has written every span.
func benchJaeger(ctx context.Context, bin string, w *workload, clients, rounds int) (*result, error) {
	r := &result{name: "Jaeger v2 all-in-one (OTLP/HTTP receiver, batch, in-memory storage)"}
	dir, err := os.MkdirTemp("", "depmap-bench-jaeger-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	for round := range rounds {
		j, err := startJaeger(ctx, bin, dir)
		if err != nil {
			return nil, err
		}
		start := time.Now()
		err = send(ctx, fmt.Sprintf("http://127.0.0.1:%d/v1/traces", j.otlp), w.bodies, clients)
		for err == nil {
			var n float64
			if n, err = j.storedSpans(); err == nil && n >= float64(w.spans) {
				break
			}
			if time.Since(start) > 10*time.Minute {
				err = errors.New("jaeger did not store every span within 10 minutes")
			}
			time.Sleep(20 * time.Millisecond)
		}
		elapsed := time.Since(start)
		if err == nil && round == rounds-1 {
			r.edges, err = j.dependencies()
		}
		j.stop()
		if err != nil {
			return nil, fmt.Errorf("round %d: %w\n%s", round, err, j.stderr.String())
		}
		r.spansPerS = append(r.spansPerS, float64(w.spans)/elapsed.Seconds())
	}
	return r, nil
}
