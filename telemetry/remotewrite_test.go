package telemetry

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/phoenixsre/phoenix"
)

// ingestion is the push path as the daemon builds it: limits, then the
// component view, then the store.
type ingestion struct {
	store  *Store
	mapper *Mapper
	rec    *recorder
	url    string // base URL of the HTTP server
}

func newIngestion(t *testing.T, lc LimitsConfig, rc RemoteWriteConfig) *ingestion {
	t.Helper()
	in := &ingestion{store: openTestStore(t, StoreConfig{}), rec: &recorder{}}
	var err error
	if in.mapper, err = NewMapper(MappingConfig{OnSample: in.rec.add}, in.store); err != nil {
		t.Fatal(err)
	}
	lim, err := NewLimiter(lc, in.mapper)
	if err != nil {
		t.Fatal(err)
	}
	rw, err := NewRemoteWriteHandler(rc, lim)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/write", rw)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	in.url = srv.URL
	return in
}

func rwClient(t *testing.T, base string) *remoteapi.API {
	t.Helper()
	api, err := remoteapi.NewAPI(base, remoteapi.WithAPINoRetryOnRateLimit(),
		remoteapi.WithAPIBackoff(remoteapi.BackoffConfig{Min: time.Millisecond, Max: time.Millisecond, MaxRetries: 1}))
	if err != nil {
		t.Fatal(err)
	}
	return api
}

func v1Series(ls labels.Labels, t int64, v float64) prompb.TimeSeries {
	return prompb.TimeSeries{Labels: prompb.FromLabels(ls, nil), Samples: []prompb.Sample{{Timestamp: t, Value: v}}}
}

func TestRemoteWriteFromClient(t *testing.T) {
	in := newIngestion(t, LimitsConfig{}, RemoteWriteConfig{})
	api := rwClient(t, in.url)
	now := time.Now().UnixMilli()
	mem := labels.FromStrings(labels.MetricName, "process_resident_memory_bytes", "job", "orders", "instance", "a:1")
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		v1Series(mem, now, 1e6),
		v1Series(labels.FromStrings(labels.MetricName, "up", "job", "orders"), now, 1),
	}}
	if _, err := api.Write(context.Background(), remoteapi.WriteV1MessageType, req); err != nil {
		t.Fatalf("remote write 1.0: %v", err)
	}
	// Remote write 2.0: interned symbols, written-samples headers.
	st := writev2.NewSymbolTable()
	v2 := &writev2.Request{Timeseries: []writev2.TimeSeries{{
		LabelsRefs: st.SymbolizeLabels(mem, nil),
		Samples:    []writev2.Sample{{Timestamp: now + 1000, Value: 2e6}},
	}}}
	v2.Symbols = st.Symbols()
	stats, err := api.Write(context.Background(), remoteapi.WriteV2MessageType, v2)
	if err != nil || stats.Samples != 1 {
		t.Fatalf("remote write 2.0: %v, stats %+v, want 1 sample written", err, stats)
	}
	pts := seriesPoints(t, in.store, labels.MustNewMatcher(labels.MatchEqual, "job", "orders"))
	if got := pts[mem.String()]; len(got) != 2 || got[0].V != 1e6 || got[1].V != 2e6 {
		t.Errorf("memory series stored %v, want 1e6 then 2e6", got)
	}
	if len(pts) != 2 {
		t.Errorf("stored series %v, want memory and up", pts)
	}
	smp, _ := in.rec.waitSample(t, 1, "the second memory value in the component view", has(phoenix.SignalMemory))
	if smp.Target.Component != "orders" || smp.Values[phoenix.SignalMemory] != 2e6 {
		t.Errorf("component view: %+v, want orders at 2e6", smp)
	}
}

// rwRequest is a hand-made remote-write HTTP request, for what a client
// library would never send.
type rwRequest struct {
	method, ctype, encoding, tenant string
	body                            []byte
}

func snappyV1(t *testing.T, ts ...prompb.TimeSeries) []byte {
	t.Helper()
	b, err := (&prompb.WriteRequest{Timeseries: ts}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, b)
}

func (r rwRequest) send(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(r.method, url+"/api/v1/write", bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", r.ctype)
	req.Header.Set("Content-Encoding", r.encoding)
	if r.tenant != "" {
		req.Header.Set(DefaultTenantHeader, r.tenant)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestRemoteWriteRefusals(t *testing.T) {
	now := time.Now().UnixMilli()
	good := labels.FromStrings(labels.MetricName, "x", "job", "a")
	v1 := "application/x-protobuf"
	cases := []struct {
		name       string
		limits     LimitsConfig
		before     []byte // a request sent first, which must succeed
		req        rwRequest
		status     int
		reason     string
		retryAfter string
		stored     int // samples of job="a" stored in the end
	}{
		{name: "method", req: rwRequest{method: "GET", ctype: v1, encoding: "snappy"}, status: 405, reason: "POST"},
		{name: "content type", req: rwRequest{method: "POST", ctype: "text/plain", encoding: "snappy", body: snappyV1(t, v1Series(good, now, 1))}, status: 415, reason: "application/x-protobuf"},
		{name: "unknown proto", req: rwRequest{method: "POST", ctype: v1 + ";proto=foo.Bar", encoding: "snappy", body: snappyV1(t, v1Series(good, now, 1))}, status: 415, reason: "foo.Bar"},
		{name: "encoding", req: rwRequest{method: "POST", ctype: v1, encoding: "gzip", body: []byte("x")}, status: 415, reason: "snappy"},
		{name: "body too large", req: rwRequest{method: "POST", ctype: v1, encoding: "snappy", body: make([]byte, 2048)}, status: 413, reason: "1024-byte limit"},
		{name: "decoded too large", req: rwRequest{method: "POST", ctype: v1, encoding: "snappy", body: snappy.Encode(nil, make([]byte, 8192))}, status: 413, reason: "decompresses to 8192 bytes"},
		{name: "not snappy", req: rwRequest{method: "POST", ctype: v1, encoding: "snappy", body: []byte("\xff\xff\xff\xff\xff\xff")}, status: 400, reason: "not snappy-compressed"},
		{name: "not protobuf", req: rwRequest{method: "POST", ctype: v1, encoding: "snappy", body: snappy.Encode(nil, []byte("\x0a\xff\xff\xff\x0f"))}, status: 400, reason: "decode remote-write 1.0 request"},
		{name: "bad v2 symbol reference", req: rwRequest{method: "POST", ctype: v1 + ";proto=io.prometheus.write.v2.Request", encoding: "snappy", body: func() []byte {
			b, _ := (&writev2.Request{Symbols: []string{""}, Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{5, 6}, Samples: []writev2.Sample{{Timestamp: now, Value: 1}}}}}).Marshal()
			return snappy.Encode(nil, b)
		}()}, status: 400, reason: "outside of symbols table"},
		{name: "bad series beside a good one", req: rwRequest{method: "POST", ctype: v1, encoding: "snappy", body: snappyV1(t,
			v1Series(labels.FromStrings("job", "a"), now, 1), v1Series(good, now, 1))}, status: 400, reason: "has no metric name", stored: 1},
		{name: "future sample", req: rwRequest{method: "POST", ctype: v1, encoding: "snappy", body: snappyV1(t, v1Series(good, now+time.Hour.Milliseconds(), 1))}, status: 400, reason: "in the future"},
		{name: "out of order", before: snappyV1(t, v1Series(good, now, 1)), req: rwRequest{method: "POST", ctype: v1, encoding: "snappy", body: snappyV1(t, v1Series(good, now-1000, 2))}, status: 400, reason: "out of order", stored: 1},
		{name: "bad tenant", req: rwRequest{method: "POST", ctype: v1, encoding: "snappy", tenant: "a b", body: snappyV1(t, v1Series(good, now, 1))}, status: 400, reason: "X-Scope-OrgID"},
		{name: "rate limit", limits: LimitsConfig{SamplesPerSecond: 0.01, Burst: 1}, before: snappyV1(t, v1Series(good, now, 1)),
			req: rwRequest{method: "POST", ctype: v1, encoding: "snappy", body: snappyV1(t, v1Series(good, now+1, 1))}, status: 429, reason: "rate limit", retryAfter: "100", stored: 1},
		{name: "series limit keeps known series", limits: LimitsConfig{MaxSeries: 1, LimitRetryAfter: 90 * time.Second}, before: snappyV1(t, v1Series(good, now, 1)),
			req: rwRequest{method: "POST", ctype: v1, encoding: "snappy", body: snappyV1(t,
				v1Series(labels.FromStrings(labels.MetricName, "y", "job", "a"), now, 1), v1Series(good, now+1, 2))},
			status: 429, reason: "1 of 2 samples refused (1 stored): tenant \"\": series limit reached: 1 active series", retryAfter: "90", stored: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := newIngestion(t, tc.limits, RemoteWriteConfig{MaxBodyBytes: 1024, MaxDecodedBytes: 4096})
			if tc.before != nil {
				if resp, body := (rwRequest{method: "POST", ctype: v1, encoding: "snappy", body: tc.before}).send(t, in.url); resp.StatusCode != 204 {
					t.Fatalf("first request: %s %s", resp.Status, body)
				}
			}
			resp, body := tc.req.send(t, in.url)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.reason) {
				t.Errorf("got %s %q, want %d with %q", resp.Status, body, tc.status, tc.reason)
			}
			if got := resp.Header.Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
			}
			stored := 0
			for _, pts := range seriesPoints(t, in.store, labels.MustNewMatcher(labels.MatchEqual, "job", "a")) {
				stored += len(pts)
			}
			if stored != tc.stored {
				t.Errorf("%d samples stored, want %d", stored, tc.stored)
			}
		})
	}
}

func TestRemoteWriteInFlightBound(t *testing.T) {
	in := newIngestion(t, LimitsConfig{}, RemoteWriteConfig{MaxInFlight: 1})
	// The first request holds the only slot while its body trickles in.
	pr, pw := io.Pipe()
	first := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", in.url+"/api/v1/write", pr)
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Content-Encoding", "snappy")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	body := snappyV1(t, v1Series(labels.FromStrings(labels.MetricName, "x", "job", "a"), time.Now().UnixMilli(), 1))
	if _, err := pw.Write(body[:1]); err != nil { // the server is reading: the slot is taken
		t.Fatal(err)
	}
	// The first request may not have reached the handler yet: until it has,
	// the second one gets the slot and succeeds.
	var resp *http.Response
	var text string
	waitFor(t, "the second request refused", func() bool {
		resp, text = rwRequest{method: "POST", ctype: "application/x-protobuf", encoding: "snappy", body: body}.send(t, in.url)
		return resp.StatusCode != 204
	})
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" || !strings.Contains(text, "in flight") {
		t.Errorf("second request: %s %q Retry-After %q, want 429 in flight with Retry-After 1", resp.Status, text, resp.Header.Get("Retry-After"))
	}
	if _, err := pw.Write(body[1:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if code := <-first; code != 204 {
		t.Errorf("first request: %d, want 204", code)
	}
}
