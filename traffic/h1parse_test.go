package traffic

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"strings"
	"testing"
)

func TestParseRequestHead(t *testing.T) {
	const max = 1 << 20
	for _, tc := range []struct {
		name, head string
		decline    string // a word of the reason, or "" if taken
	}{
		{"plain GET", "GET /who HTTP/1.1\r\nHost: orders\r\n\r\n", ""},
		{"PUT with a body", "PUT /k/1 HTTP/1.1\r\nHost: orders\r\nContent-Length: 5\r\n\r\n", ""},
		{"query and escapes", "GET /a%2Fb?x=1&y=%20 HTTP/1.1\r\nHost: orders:8080\r\n\r\n", ""},
		{"close", "GET / HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n", ""},
		{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: o\r\n\r\n", "version"},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "method"},
		{"absolute form", "GET http://o/ HTTP/1.1\r\nHost: o\r\n\r\n", "target"},
		{"asterisk", "OPTIONS * HTTP/1.1\r\nHost: o\r\n\r\n", "target"},
		{"CONNECT", "CONNECT o:443 HTTP/1.1\r\nHost: o\r\n\r\n", "method"},
		{"chunked body", "POST / HTTP/1.1\r\nHost: o\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding"},
		{"smuggling: length and chunked", "POST / HTTP/1.1\r\nHost: o\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding"},
		{"two lengths", "POST / HTTP/1.1\r\nHost: o\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n", "Content-Length"},
		{"length with a sign", "POST / HTTP/1.1\r\nHost: o\r\nContent-Length: +4\r\n\r\n", "content-length"},
		{"length over the retry limit", "POST / HTTP/1.1\r\nHost: o\r\nContent-Length: 1048577\r\n\r\n", "content-length"},
		{"expect", "PUT / HTTP/1.1\r\nHost: o\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", "Expect"},
		{"upgrade", "GET / HTTP/1.1\r\nHost: o\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", "connection"},
		{"connection naming a header", "GET / HTTP/1.1\r\nHost: o\r\nConnection: X-Secret\r\n\r\n", "connection"},
		{"no host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", "Host"},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "Host"},
		{"host with a path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "host"},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: o\r\nX-A: 1\r\n 2\r\n\r\n", "header name"},
		{"space before colon", "GET / HTTP/1.1\r\nHost : o\r\n\r\n", "header name"},
		{"bare LF", "GET / HTTP/1.1\nHost: o\r\n\r\n", "request line"},
		{"bare CR in a value", "GET / HTTP/1.1\r\nHost: o\r\nX-A: 1\r2\r\n\r\n", "header line"},
		{"NUL in a value", "GET / HTTP/1.1\r\nHost: o\r\nX-A: 1\x002\r\n\r\n", "header value"},
		{"space in the target", "GET /a b HTTP/1.1\r\nHost: o\r\n\r\n", "version"},
		{"bad escape", "GET /a%zz HTTP/1.1\r\nHost: o\r\n\r\n", "target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r h1Request
			err := parseRequestHead([]byte(tc.head), max, &r)
			switch {
			case tc.decline == "" && err != nil:
				t.Fatalf("declined (%v), want taken", err)
			case tc.decline != "" && err == nil:
				t.Fatalf("taken, want declined for %q", tc.decline)
			case err != nil && (!errors.Is(err, errDecline) || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.decline))):
				t.Fatalf("declined with %q, want errDecline about %q", err, tc.decline)
			}
			if err == nil {
				agreesWithNetHTTP(t, []byte(tc.head), &r)
			}
		})
	}
}

// agreesWithNetHTTP checks that net/http reads a head the fast path took
// the way the fast path did: the same method, target, host, body length and
// headers, so that nothing reaches a backend other than what the client sent.
func agreesWithNetHTTP(t *testing.T, head []byte, r *h1Request) {
	t.Helper()
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		t.Fatalf("fast path took %q, net/http refuses it: %v", head, err)
	}
	if req.Method != string(r.method) || req.RequestURI != string(r.target) || req.Host != string(r.host) {
		t.Fatalf("fast path read %s %s host %q, net/http %s %s host %q", r.method, r.target, r.host, req.Method, req.RequestURI, req.Host)
	}
	if req.ContentLength != r.contentLength || len(req.TransferEncoding) != 0 || req.Close != r.close {
		t.Fatalf("fast path read length %d close %v, net/http length %d encoding %v close %v",
			r.contentLength, r.close, req.ContentLength, req.TransferEncoding, req.Close)
	}
	if got, want := string(r.xff), strings.Join(req.Header.Values("X-Forwarded-For"), ", "); got != want {
		t.Fatalf("X-Forwarded-For %q, net/http %q", got, want)
	}
	seen := map[string]int{}
	for _, h := range r.headers {
		key := http.CanonicalHeaderKey(string(h.name))
		vs := req.Header.Values(key)
		if seen[key] >= len(vs) || vs[seen[key]] != string(h.value) {
			t.Fatalf("header %s: %q forwarded, net/http read %q", key, h.value, vs)
		}
		seen[key]++
	}
}

// FuzzH1Request: whatever head the fast path takes, net/http reads the same
// way (see agreesWithNetHTTP); anything else it declines without failing.
func FuzzH1Request(f *testing.F) {
	for _, s := range []string{
		"GET /who HTTP/1.1\r\nHost: orders\r\n\r\n",
		"PUT /k/1 HTTP/1.1\r\nHost: o\r\nContent-Length: 5\r\nIdempotency-Key: 1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: o\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: o\r\nX-Forwarded-For: 1.2.3.4\r\nx-forwarded-for: 5.6.7.8\r\nConnection: keep-alive, close\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: o\r\nX-A: 1\r\n 2\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		var r h1Request
		if err := parseRequestHead(head, 1<<20, &r); err != nil {
			if !errors.Is(err, errDecline) {
				t.Fatalf("error %v is not a decline", err)
			}
			return
		}
		agreesWithNetHTTP(t, head, &r)
	})
}

func TestParseResponseHead(t *testing.T) {
	for _, tc := range []struct {
		name, head, method string
		length             int64
		chunked, close     bool
		bad                string
		headers            string // the headers relayed, "Name: value" joined by "; ", if set
	}{
		{name: "length", head: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", length: 3},
		{name: "chunked", head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", length: -1, chunked: true},
		{name: "until close", head: "HTTP/1.1 200 OK\r\n\r\n", length: -1, close: true},
		{name: "HTTP/1.0 keep-alive", head: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", length: 0},
		{name: "HTTP/1.0", head: "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", length: 0, close: true},
		{name: "HEAD", head: "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", method: "HEAD", length: 0},
		{name: "no content", head: "HTTP/1.1 204 No Content\r\n\r\n", length: 0},
		{name: "not modified", head: "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", length: 0},
		{name: "no reason", head: "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", length: 0},
		{name: "close", head: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", length: 0, close: true},
		{name: "headers named in Connection are dropped", head: "HTTP/1.1 200 OK\r\nx-secret: 1\r\nConnection: X-Secret, close, X-Hop\r\nX-Kept: 2\r\nX-Hop: 3\r\nContent-Length: 0\r\n\r\n",
			length: 0, close: true, headers: "X-Kept: 2; Content-Length: 0"},
		{name: "Connection cannot drop the framing", head: "HTTP/1.1 200 OK\r\nConnection: Content-Length, Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n",
			length: -1, chunked: true, headers: "Transfer-Encoding: chunked"},
		{name: "Connection cannot drop Content-Length", head: "HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 5\r\n\r\n",
			length: 5, headers: "Content-Length: 5"},
		{name: "length and chunked", head: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", bad: "ambiguous"},
		{name: "two lengths", head: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", bad: "ambiguous"},
		{name: "gzip encoding", head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", bad: "Transfer-Encoding"},
		{name: "HTTP/2", head: "HTTP/2 200\r\n\r\n", bad: "status line"},
		{name: "status 099", head: "HTTP/1.1 099 X\r\n\r\n", bad: "status code"},
		{name: "status 2000", head: "HTTP/1.1 2000 X\r\n\r\n", bad: "status code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "GET"
			}
			var r h1Response
			err := parseResponseHead([]byte(tc.head), []byte(method), &r)
			if tc.bad != "" {
				if err == nil || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("err = %v, want one about %q", err, tc.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.length != tc.length || r.chunked != tc.chunked || r.close != tc.close {
				t.Fatalf("length %d chunked %v close %v, want %d %v %v", r.length, r.chunked, r.close, tc.length, tc.chunked, tc.close)
			}
			if tc.headers != "" {
				var got []string
				for _, h := range r.headers {
					got = append(got, string(h.name)+": "+string(h.value))
				}
				if strings.Join(got, "; ") != tc.headers {
					t.Errorf("headers relayed %q, want %q", strings.Join(got, "; "), tc.headers)
				}
			}
		})
	}
}

// FuzzH1Response: a response head and body the fast path relays reach the
// client as net/http reads them from the backend: same status, same body,
// and the relay ends where net/http's reading does. (Relaying as the fast
// path does: parse, then copy the body by its framing.)
func FuzzH1Response(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcNEXT",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\nNEXT",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\n\r\nuntil close",
		"HTTP/1.1 204 No Content\r\n\r\nNEXT",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		i := bytes.Index(in, []byte("\r\n\r\n"))
		if i < 0 {
			return
		}
		head := in[:i+4]
		var r h1Response
		if parseResponseHead(head, []byte("GET"), &r) != nil {
			return
		}
		src := bufio.NewReader(bytes.NewReader(in[i+4:]))
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		var err error
		switch {
		case r.chunked:
			err = copyChunked(w, src)
		default:
			err = copyN(w, src, r.length)
		}
		if err != nil {
			return // the fast path cuts the client connection: nothing to compare
		}
		w.Flush()
		rest, _ := io.ReadAll(src)

		want, werr := http.ReadResponse(bufio.NewReader(bytes.NewReader(in)), &http.Request{Method: "GET"})
		if werr != nil {
			t.Fatalf("fast path relayed %q, net/http refuses it: %v", in, werr)
		}
		if want.StatusCode != r.status {
			t.Fatalf("status %d, net/http %d", r.status, want.StatusCode)
		}
		wantBody, werr := io.ReadAll(want.Body)
		if werr != nil {
			t.Fatalf("fast path relayed %q, net/http fails its body: %v", in, werr)
		}
		body := out.Bytes()
		if r.chunked {
			body, err = io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(body)))
			if err != nil {
				t.Fatalf("relayed chunked body %q does not decode: %v", out.Bytes(), err)
			}
		}
		if !bytes.Equal(body, wantBody) {
			t.Fatalf("relayed body %q, net/http reads %q", body, wantBody)
		}
		if r.length >= 0 && !r.chunked && int64(len(in)-i-4-len(rest)) != r.length {
			t.Fatalf("relay consumed %d bytes, want %d", len(in)-i-4-len(rest), r.length)
		}
	})
}
