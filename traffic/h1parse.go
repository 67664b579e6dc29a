package traffic

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
)

// The HTTP/1.1 fast path parses heads itself, strictly: it takes only what
// it can forward byte for byte without ambiguity, and declines the rest,
// which then goes to net/http (see h1Server). Strictness is the point: a
// proxy that reads a request differently from the backend behind it is open
// to request smuggling, so anything net/http would have to interpret (obs-fold,
// bare LF, Transfer-Encoding on a request, duplicate lengths, absolute-form
// targets) is left to net/http, and the differential fuzz test
// (FuzzH1Request) checks that whatever the fast path takes, net/http reads
// the same way.

// Limits of the fast path; a head beyond them is declined, not refused.
const (
	h1MaxHeaders   = 100
	h1MaxMethod    = 20
	h1ReadBuffer   = 8 << 10  // a client's request head must fit here
	h1WriteBuffer  = 4 << 10  // responses to a client are gathered here
	h1RespBuffer   = 32 << 10 // a backend's response head must fit here
	h1MaxChunkLine = 4 << 10
)

// h1Header is a header line of a head, as slices of it.
type h1Header struct {
	name, value []byte
}

// h1Request is a request head the fast path takes. Its slices point into
// the reader's buffer: valid until the head is discarded.
type h1Request struct {
	method, target, host []byte
	contentLength        int64
	close                bool // the client asked to close after this request
	idempotencyKey       bool
	teTrailers           bool       // TE names trailers: sent on as "Te: trailers", as ReverseProxy does
	headers              []h1Header // forwarded as they are, in order
	xff                  []byte     // X-Forwarded-For values, joined with ", "
	xffs                 int        // how many X-Forwarded-For headers
}

// errDecline says the fast path does not take a head: net/http will.
var errDecline = errors.New("declined by the fast path")

// parseRequestHead parses head (a whole head, final CRLF CRLF included)
// into r, reusing r's slices. It returns errDecline (wrapped, with the
// reason) for anything but a plain HTTP/1.1 request in origin form whose
// body, if any, has a Content-Length of at most maxBody.
func parseRequestHead(head []byte, maxBody int64, r *h1Request) error {
	*r = h1Request{headers: r.headers[:0], xff: r.xff[:0]}
	line, rest, ok := cutLine(head)
	if !ok {
		return declinef("request line")
	}
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || sp > h1MaxMethod || !isToken(line[:sp]) {
		return declinef("method")
	}
	r.method, line = line[:sp], line[sp+1:]
	if string(r.method) == "CONNECT" || string(r.method) == "PRI" {
		return declinef("method %s", r.method)
	}
	sp = bytes.IndexByte(line, ' ')
	if sp <= 0 || line[0] != '/' || !isTarget(line[:sp]) {
		return declinef("target")
	}
	r.target = line[:sp]
	if string(line[sp+1:]) != "HTTP/1.1" {
		return declinef("version")
	}
	hosts, lengths := 0, 0
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			return declinef("header line")
		}
		if len(line) == 0 {
			break
		}
		name, value, err := parseHeaderLine(line)
		if err != nil {
			return err
		}
		if len(r.headers) == h1MaxHeaders {
			return declinef("more than %d headers", h1MaxHeaders)
		}
		switch {
		case asciiEqualFold(name, "Host"):
			hosts++
			if !isHost(value) {
				return declinef("host")
			}
			r.host = value
			continue // the backend's host is sent instead
		case asciiEqualFold(name, "Content-Length"):
			lengths++
			n, ok := parseDigits(value)
			if !ok || n > maxBody {
				return declinef("content-length")
			}
			r.contentLength = n
		case asciiEqualFold(name, "Connection"):
			close, ok := connectionTokens(value)
			if !ok {
				return declinef("connection %q", value)
			}
			r.close = r.close || close
			continue
		case asciiEqualFold(name, "Transfer-Encoding"), asciiEqualFold(name, "Expect"), asciiEqualFold(name, "Upgrade"):
			return declinef("%s", name)
		case asciiEqualFold(name, "X-Forwarded-For"):
			if r.xffs > 0 {
				r.xff = append(r.xff, ", "...)
			}
			r.xff = append(r.xff, value...)
			r.xffs++
			continue
		case asciiEqualFold(name, "Te"):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok, _, _ = bytes.Cut(tok, []byte(";")) // a t-codings weight
				if asciiEqualFold(bytes.Trim(tok, " \t"), "trailers") {
					r.teTrailers = true
				}
			}
			continue
		case isHopByHop(name), asciiEqualFold(name, "Forwarded"),
			asciiEqualFold(name, "X-Forwarded-Host"), asciiEqualFold(name, "X-Forwarded-Proto"):
			continue // rewritten, as ReverseProxy's Rewrite mode does
		case asciiEqualFold(name, "Idempotency-Key"), asciiEqualFold(name, "X-Idempotency-Key"):
			r.idempotencyKey = true
		}
		r.headers = append(r.headers, h1Header{name: name, value: value})
	}
	if len(rest) != 0 {
		return declinef("bytes after the head")
	}
	if hosts != 1 || lengths > 1 {
		return declinef("%d Host and %d Content-Length headers", hosts, lengths)
	}
	return nil
}

// h1Response is a backend's response head as the fast path forwards it.
type h1Response struct {
	status  int
	reason  []byte
	headers []h1Header
	length  int64 // body length when known; -1 if chunked or until close
	chunked bool
	close   bool // the backend closes the connection after this response
}

// parseResponseHead parses a backend's response head to a request of
// method. Unlike a request, a response it cannot take is an error: the
// request has already been sent.
func parseResponseHead(head []byte, method []byte, r *h1Response) error {
	*r = h1Response{headers: r.headers[:0], length: -1}
	line, rest, ok := cutLine(head)
	if !ok {
		return errors.New("malformed status line")
	}
	var http10 bool
	switch {
	case bytes.HasPrefix(line, []byte("HTTP/1.1 ")):
	case bytes.HasPrefix(line, []byte("HTTP/1.0 ")):
		http10 = true
	default:
		return fmt.Errorf("malformed status line %q", clip(line))
	}
	line = line[len("HTTP/1.1 "):]
	if len(line) < 3 || !isDigit(line[0]) || !isDigit(line[1]) || !isDigit(line[2]) || line[0] == '0' ||
		len(line) > 3 && line[3] != ' ' {
		return fmt.Errorf("malformed status code in %q", clip(line))
	}
	r.status = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	if len(line) > 4 {
		r.reason = line[4:]
		if !isFieldValue(r.reason) {
			return fmt.Errorf("malformed reason phrase %q", clip(r.reason))
		}
	}
	keepAlive, lengths, encodings := false, 0, 0
	var named [][]byte // headers the Connection header makes hop-by-hop
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			return errors.New("malformed header line")
		}
		if len(line) == 0 {
			break
		}
		name, value, err := parseHeaderLine(line)
		if err != nil {
			return fmt.Errorf("malformed header %q", clip(line))
		}
		if len(r.headers) == h1MaxHeaders {
			return fmt.Errorf("more than %d headers", h1MaxHeaders)
		}
		switch {
		case asciiEqualFold(name, "Content-Length"):
			lengths++
			n, ok := parseDigits(value)
			if !ok {
				return fmt.Errorf("malformed Content-Length %q", clip(value))
			}
			r.length = n
		case asciiEqualFold(name, "Transfer-Encoding"):
			encodings++
			if !asciiEqualFold(value, "chunked") {
				return fmt.Errorf("unsupported Transfer-Encoding %q", clip(value))
			}
			r.chunked = true
		case asciiEqualFold(name, "Connection"):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				switch tok = bytes.TrimSpace(tok); {
				case asciiEqualFold(tok, "close"):
					r.close = true
				case asciiEqualFold(tok, "keep-alive"):
					keepAlive = true
				case asciiEqualFold(tok, "Content-Length"), asciiEqualFold(tok, "Transfer-Encoding"):
					// The body is relayed by the framing parsed here, so
					// the headers that state it stay, whatever Connection says.
				case len(tok) > 0:
					named = append(named, tok)
				}
			}
			continue
		case isHopByHop(name) && !asciiEqualFold(name, "Trailer"):
			continue
		}
		r.headers = append(r.headers, h1Header{name: name, value: value})
	}
	if len(rest) != 0 {
		return errors.New("bytes after the head")
	}
	if len(named) > 0 {
		// Headers named in Connection are for this hop only (RFC 9110
		// 7.6.1): removed, as ReverseProxy removes them.
		r.headers = slices.DeleteFunc(r.headers, func(h h1Header) bool {
			return slices.ContainsFunc(named, func(n []byte) bool { return bytes.EqualFold(h.name, n) })
		})
	}
	if http10 && encodings > 0 {
		return errors.New("Transfer-Encoding in an HTTP/1.0 response")
	}
	if lengths > 1 || encodings > 1 || lengths == 1 && encodings == 1 {
		return fmt.Errorf("ambiguous body length: %d Content-Length and %d Transfer-Encoding headers", lengths, encodings)
	}
	if http10 && !keepAlive {
		r.close = true
	}
	switch {
	case string(method) == "HEAD", r.status < 200, r.status == 204, r.status == 304:
		r.length, r.chunked = 0, false
	case r.chunked:
		r.length = -1
	case lengths == 0:
		r.close = true // the body runs until the backend closes
	}
	return nil
}

// parseChunkSize reads a chunk-size line (CRLF included) of a chunked body.
func parseChunkSize(line []byte) (int64, error) {
	body, ok := bytes.CutSuffix(line, []byte("\r\n"))
	if !ok {
		return 0, fmt.Errorf("malformed chunk size line %q", clip(line))
	}
	if i := bytes.IndexByte(body, ';'); i >= 0 {
		if !isFieldValue(body[i+1:]) {
			return 0, fmt.Errorf("malformed chunk extension %q", clip(body))
		}
		body = body[:i]
	}
	body = bytes.TrimRight(body, " \t")
	if len(body) == 0 || len(body) > 15 {
		return 0, fmt.Errorf("malformed chunk size %q", clip(body))
	}
	var n int64
	for _, c := range body {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, fmt.Errorf("malformed chunk size %q", clip(body))
		}
		n = n<<4 | int64(d)
	}
	return n, nil
}

func declinef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errDecline, fmt.Sprintf(format, args...))
}

// cutLine splits b at its first CRLF. A bare CR or LF before it, or none at
// all, is not a line.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, false
	}
	line = b[:i-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil, false
	}
	return line, b[i+1:], true
}

// parseHeaderLine splits "name: value" (no obs-fold, no space before the
// colon), trimming the value's optional whitespace.
func parseHeaderLine(line []byte) (name, value []byte, err error) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 || !isToken(line[:colon]) {
		return nil, nil, declinef("header name")
	}
	value = bytes.Trim(line[colon+1:], " \t")
	if !isFieldValue(value) {
		return nil, nil, declinef("header value")
	}
	return line[:colon], value, nil
}

// connectionTokens reads a request's Connection header: close, keep-alive,
// or nothing else (other tokens name hop-by-hop headers, left to net/http).
func connectionTokens(v []byte) (close, ok bool) {
	for tok := range bytes.SplitSeq(v, []byte(",")) {
		switch tok = bytes.Trim(tok, " \t"); {
		case asciiEqualFold(tok, "close"):
			close = true
		case asciiEqualFold(tok, "keep-alive"), len(tok) == 0:
		default:
			return false, false
		}
	}
	return close, true
}

// isHopByHop names the headers ReverseProxy removes before forwarding.
func isHopByHop(name []byte) bool {
	for _, h := range [...]string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"} {
		if asciiEqualFold(name, h) {
			return true
		}
	}
	return false
}

func parseDigits(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isToken: RFC 9110's token, the characters of methods and header names.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', isDigit(c):
		case bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0:
		default:
			return false
		}
	}
	return true
}

// isTarget: visible ASCII only, no fragment, every % escaping two hex
// digits.
func isTarget(b []byte) bool {
	for i, c := range b {
		switch {
		case c <= ' ' || c >= 0x7f || c == '#':
			return false
		case c == '%' && (i+2 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2])):
			return false
		}
	}
	return true
}

func isHex(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// isHost: a host and optional port, as names and IP literals are written.
func isHost(b []byte) bool {
	if len(b) == 0 || len(b) > 255 {
		return false
	}
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', isDigit(c):
		case c == '.', c == '-', c == '_', c == ':', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}

// isFieldValue: visible characters, spaces and tabs, obs-text; no CTLs.
func isFieldValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// clip shortens what an error quotes from the network.
func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
