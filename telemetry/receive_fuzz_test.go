package telemetry

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang/snappy"
	promhistogram "github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// fuzzChain is the push chain the daemon builds, once per fuzz target.
func fuzzChain(f *testing.F) *Limiter {
	f.Helper()
	store, err := OpenStore(StoreConfig{Dir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = store.Close() })
	m, err := NewMapper(MappingConfig{OnSample: func(Sample) {}}, store)
	if err != nil {
		f.Fatal(err)
	}
	lim, err := NewLimiter(LimitsConfig{MaxSeries: 10_000}, m)
	if err != nil {
		f.Fatal(err)
	}
	return lim
}

var rwContentTypes = []string{
	"application/x-protobuf",
	"application/x-protobuf;proto=io.prometheus.write.v2.Request",
	"application/x-protobuf;proto=prometheus.WriteRequest",
}

// FuzzRemoteWrite sends arbitrary bodies to the remote-write receiver, as
// remote-write 1.0 or 2.0, snappy-encoded by the harness (mode bit 2 set)
// or raw. The receiver must never panic nor answer 5xx: whatever a sender
// writes is its own fault, and the answer says so.
func FuzzRemoteWrite(f *testing.F) {
	now := time.Now().UnixMilli()
	ls := labels.FromStrings(labels.MetricName, "http_requests_total", "job", "orders", "code", "200")
	v1, _ := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels: prompb.FromLabels(ls, nil), Samples: []prompb.Sample{{Timestamp: now, Value: 1}, {Timestamp: now + 1, Value: 2}},
		Histograms: []prompb.Histogram{prompb.FromFloatHistogram(now+2, &promhistogram.FloatHistogram{Count: 2, ZeroCount: 2, Sum: 0.5})},
	}}}).Marshal()
	st := writev2.NewSymbolTable()
	v2req := &writev2.Request{Timeseries: []writev2.TimeSeries{{LabelsRefs: st.SymbolizeLabels(ls, nil), Samples: []writev2.Sample{{Timestamp: now, Value: 3}}}}}
	v2req.Symbols = st.Symbols()
	v2, _ := v2req.Marshal()
	f.Add(v1, uint8(4))
	f.Add(v2, uint8(5))
	f.Add(snappy.Encode(nil, v1), uint8(0))
	f.Add([]byte("\x0a\x02\x0a\x00"), uint8(4))
	f.Add([]byte{}, uint8(6))
	h, err := NewRemoteWriteHandler(RemoteWriteConfig{MaxBodyBytes: 1 << 16, MaxDecodedBytes: 1 << 18}, fuzzChain(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, mode uint8) {
		if mode&4 != 0 {
			body = snappy.Encode(nil, body)
		}
		req := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(body))
		req.Header.Set("Content-Type", rwContentTypes[int(mode&3)%len(rwContentTypes)])
		req.Header.Set("Content-Encoding", "snappy")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusNoContent:
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusTooManyRequests:
			if rec.Body.Len() == 0 {
				t.Errorf("status %d without a reason", rec.Code)
			}
		default:
			t.Errorf("status %d: %s", rec.Code, rec.Body)
		}
	})
}

// FuzzOTLP sends arbitrary bodies to the OTLP/HTTP metrics receiver, as
// protobuf or JSON (mode bit 0), gzipped by the harness (mode bit 1) or
// not. It must never panic nor answer 5xx.
func FuzzOTLP(f *testing.F) {
	now := time.Now()
	f.Add(otlpBodyF(now, false), uint8(0))
	f.Add(otlpBodyF(now, true), uint8(1))
	f.Add(otlpBodyF(now, false), uint8(2))
	f.Add([]byte(`{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"x","sum":{"isMonotonic":true,"aggregationTemporality":2,"dataPoints":[{"asInt":"5","timeUnixNano":"1"}]}}]}]}]}`), uint8(1))
	f.Add([]byte(`{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"h","histogram":{"aggregationTemporality":2,"dataPoints":[{"count":"3","bucketCounts":["1","2"],"explicitBounds":[0.5],"timeUnixNano":"1"}]}},{"name":"e","exponentialHistogram":{"aggregationTemporality":2,"dataPoints":[{"count":"1","scale":3,"positive":{"offset":-2,"bucketCounts":["1"]}}]}}]}]}]}`), uint8(1))
	f.Add([]byte("\x0a\xff\xff"), uint8(0))
	recv, err := NewOTLPReceiver(OTLPConfig{MaxBodyBytes: 1 << 16}, fuzzChain(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, mode uint8) {
		ctype := "application/x-protobuf"
		if mode&1 != 0 {
			ctype = "application/json"
		}
		req := httptest.NewRequest(http.MethodPost, "/v1/metrics", bytes.NewReader(gzipIf(mode&2 != 0, body)))
		req.Header.Set("Content-Type", ctype)
		if mode&2 != 0 {
			req.Header.Set("Content-Encoding", "gzip")
		}
		rec := httptest.NewRecorder()
		recv.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
		default:
			t.Errorf("status %d: %s", rec.Code, rec.Body)
		}
	})
}

func gzipIf(yes bool, b []byte) []byte {
	if !yes {
		return b
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// otlpBodyF is otlpBody for fuzz seeds.
func otlpBodyF(at time.Time, json bool) []byte {
	b, err := otlpBodyBytes(at, 1, json)
	if err != nil {
		panic(err)
	}
	return b
}
