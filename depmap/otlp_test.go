package depmap

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func testRequestBodies(t testing.TB) (protoBody, jsonBody []byte) {
	t.Helper()
	req := ptraceotlp.NewExportRequestFromTraces(traces(
		span{service: "gateway", trace: 1, id: 1},
		span{service: "orders", trace: 1, id: 2, parent: 1},
	))
	protoBody, err := req.MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	jsonBody, err = req.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return protoBody, jsonBody
}

func TestOTLPHandler(t *testing.T) {
	const max = 4096
	protoBody, jsonBody := testRequestBodies(t)
	bomb := gzipped(t, make([]byte, 16<<20)) // ~16 KiB that expands to 16 MiB
	noise := make([]byte, 2*max)
	rand.NewChaCha8([32]byte{1}).Read(noise)
	tooBigCompressed := gzipped(t, noise) // incompressible: over max as sent
	gz := gzipped(t, protoBody)

	tests := []struct {
		name        string
		method      string
		contentType string
		encoding    string
		body        []byte
		maxBody     int64
		wantStatus  int
		wantReason  string // in the error body
		wantSpans   int
	}{
		{name: "protobuf", contentType: contentTypeProto, body: protoBody, wantStatus: 200, wantSpans: 2},
		{name: "json with charset", contentType: "application/json; charset=utf-8", body: jsonBody, wantStatus: 200, wantSpans: 2},
		{name: "gzip protobuf", contentType: contentTypeProto, encoding: "gzip", body: gz, wantStatus: 200, wantSpans: 2},
		{name: "gzip json", contentType: contentTypeJSON, encoding: "GZIP", body: gzipped(t, jsonBody), wantStatus: 200, wantSpans: 2},
		{name: "empty protobuf is an empty request", contentType: contentTypeProto, body: nil, wantStatus: 200},
		{name: "bad protobuf", contentType: contentTypeProto, body: []byte{0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01}, wantStatus: 400, wantReason: "decode OTLP trace request"},
		{name: "bad json", contentType: contentTypeJSON, body: []byte(`{"resourceSpans":[{`), wantStatus: 400, wantReason: "decode OTLP trace request"},
		{name: "json with bad trace id", contentType: contentTypeJSON, body: []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}`), wantStatus: 400, wantReason: "decode OTLP trace request"},
		{name: "wrong content type", contentType: "text/plain", body: protoBody, wantStatus: 415, wantReason: "content type \"text/plain\" not supported"},
		{name: "no content type", body: protoBody, wantStatus: 415, wantReason: "not supported"},
		{name: "unknown encoding", contentType: contentTypeProto, encoding: "br", body: protoBody, wantStatus: 415, wantReason: "content encoding \"br\" not supported"},
		{name: "too big", contentType: contentTypeProto, body: make([]byte, max+1), wantStatus: 413, wantReason: "larger than 4096 bytes"},
		{name: "exactly max is fine", contentType: contentTypeProto, body: bytes.Repeat([]byte{0x0a, 0x00}, max/2), wantStatus: 200},
		{name: "too big compressed", contentType: contentTypeProto, encoding: "gzip", body: tooBigCompressed, wantStatus: 413, wantReason: "larger than 4096 bytes"},
		{name: "gzip bomb", contentType: contentTypeProto, encoding: "gzip", body: bomb, maxBody: 1 << 20, wantStatus: 413, wantReason: "expands beyond 1048576 bytes"},
		{name: "corrupt gzip", contentType: contentTypeProto, encoding: "gzip", body: []byte("not gzip at all"), wantStatus: 400, wantReason: "gzip header"},
		{name: "truncated gzip", contentType: contentTypeProto, encoding: "gzip", body: gz[:len(gz)-6], wantStatus: 400, wantReason: "body truncated"},
		{name: "GET", method: http.MethodGet, contentType: contentTypeProto, wantStatus: 405, wantReason: "method GET not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newTestGraph(t, Options{})
			srv := httptest.NewServer(NewOTLPHandler(g, HandlerOptions{MaxBodyBytes: cmp.Or(tt.maxBody, max)}))
			defer srv.Close()
			resp, body := send(t, cmp.Or(tt.method, http.MethodPost), srv.URL+"/v1/traces", tt.contentType, tt.encoding, tt.body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %q", resp.StatusCode, tt.wantStatus, body)
			}
			if got := g.Stats().Spans; got != uint64(tt.wantSpans) {
				t.Errorf("graph took %d spans, want %d", got, tt.wantSpans)
			}
			if tt.wantStatus == http.StatusOK {
				checkExportResponse(t, resp.Header.Get("Content-Type"), body, encodingOf(tt.contentType))
				return
			}
			if tt.wantStatus == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != http.MethodPost {
				t.Errorf("Allow = %q, want POST", resp.Header.Get("Allow"))
			}
			if reason := errorReason(t, resp.Header.Get("Content-Type"), body); !strings.Contains(reason, tt.wantReason) {
				t.Errorf("reason %q, want it to contain %q", reason, tt.wantReason)
			}
		})
	}
}

// send makes one request and returns the response with its body read.
func send(t *testing.T, method, url, contentType, encoding string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, out
}

func checkExportResponse(t *testing.T, contentType string, body []byte, enc encoding) {
	t.Helper()
	resp := ptraceotlp.NewExportResponse()
	var err error
	switch {
	case enc == encProto && contentType == contentTypeProto:
		err = resp.UnmarshalProto(body)
	case enc == encJSON && contentType == contentTypeJSON:
		err = resp.UnmarshalJSON(body)
	default:
		t.Fatalf("response content type %q for a request in encoding %d", contentType, enc)
	}
	if err != nil {
		t.Errorf("response does not decode: %v (%q)", err, body)
	}
}

// errorReason decodes an error body: a google.rpc.Status in the response's
// encoding, or plain text.
func errorReason(t *testing.T, contentType string, body []byte) string {
	t.Helper()
	var st status.Status
	switch contentType {
	case contentTypeProto:
		if err := proto.Unmarshal(body, &st); err != nil {
			t.Fatalf("protobuf error body: %v", err)
		}
		return st.GetMessage()
	case contentTypeJSON:
		if err := protojson.Unmarshal(body, &st); err != nil {
			t.Fatalf("json error body: %v", err)
		}
		return st.GetMessage()
	}
	if !strings.HasPrefix(contentType, "text/plain") {
		t.Errorf("error content type %q", contentType)
	}
	return string(body)
}

func FuzzOTLPHandler(f *testing.F) {
	protoBody, jsonBody := testRequestBodies(f)
	f.Add(protoBody, false, false)
	f.Add(jsonBody, true, false)
	f.Add(gzipped(f, protoBody), false, true)
	f.Add(gzipped(f, jsonBody), true, true)
	f.Add([]byte(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"intValue":"3"}}]},"scopeSpans":[{"spans":[{"traceId":"","spanId":"0102030405060708","parentSpanId":"0102030405060708","status":{"code":2}}]}]}]}`), true, false)
	f.Add([]byte{0x0a, 0x02, 0x12, 0x00}, false, false)
	f.Add([]byte{}, true, false)

	g := newTestGraph(f, Options{MaxPending: 64, MaxIndex: 64, MaxEdges: 16})
	h := NewOTLPHandler(g, HandlerOptions{MaxBodyBytes: 1 << 16})
	f.Fuzz(func(t *testing.T, body []byte, json, gz bool) {
		req := httptest.NewRequest(http.MethodPost, "/v1/traces", bytes.NewReader(body))
		enc := encProto
		if json {
			enc = encJSON
		}
		req.Header.Set("Content-Type", contentTypeOf(enc))
		if gz {
			req.Header.Set("Content-Encoding", "gzip")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			checkExportResponse(t, rec.Header().Get("Content-Type"), rec.Body.Bytes(), enc)
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if errorReason(t, rec.Header().Get("Content-Type"), rec.Body.Bytes()) == "" {
				t.Errorf("status %d with no reason", rec.Code)
			}
		default:
			t.Fatalf("status %d: %q", rec.Code, rec.Body.Bytes())
		}
		if s := g.Stats(); s.Pending > 64 || s.Indexed > 64 || s.Edges > 16 {
			t.Fatalf("bounds exceeded: %+v", s)
		}
	})
}
