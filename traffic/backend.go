package traffic

import (
	"fmt"
	"net/url"
	"strings"
)

// Backend is one instance that can serve a component's traffic.
type Backend struct {
	// Name labels the backend in logs, metrics and status, for example
	// "orders@primary". See ParseBackend for the characters allowed.
	Name string
	// URL is the base URL: http or https, a host, and optionally a path
	// prefix that request paths are appended to; for a TCP proxy,
	// tcp://host:port.
	URL *url.URL
}

// String returns the backend as ParseBackend reads it: "name=url".
func (b Backend) String() string {
	if b.URL == nil {
		return b.Name
	}
	return b.Name + "=" + b.URL.String()
}

// maxNameLen bounds backend names: they become metric label values.
const maxNameLen = 128

// ParseBackend reads a backend written as "name=url", or as a bare "url"
// whose host then names it: "orders@primary=http://127.0.0.1:28081".
func ParseBackend(s string) (Backend, error) {
	name, raw, named := "", s, false
	// A bare URL may contain '=' only after its scheme; a name cannot
	// contain "://", so the first '=' before any "://" ends the name.
	if i := strings.IndexByte(s, '='); i >= 0 {
		if j := strings.Index(s, "://"); j < 0 || i < j {
			name, raw, named = s[:i], s[i+1:], true
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Backend{}, fmt.Errorf("backend %q: %w", s, err)
	}
	if !named {
		name = u.Host
	}
	b := Backend{Name: name, URL: u}
	if err := b.validate(); err != nil {
		return Backend{}, err
	}
	return b, nil
}

// validate reports what is wrong with b, naming the field and the fix.
func (b Backend) validate() error {
	if err := validName(b.Name); err != nil {
		return err
	}
	u := b.URL
	switch {
	case u == nil:
		return fmt.Errorf("backend %q: URL is missing", b.Name)
	case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "tcp":
		return fmt.Errorf("backend %q: URL scheme %q is not supported: use http://, https:// or tcp://", b.Name, u.Scheme)
	case u.Opaque != "" || u.Host == "":
		return fmt.Errorf("backend %q: URL %q has no host: write http://host:port", b.Name, u.Redacted())
	case u.User != nil:
		return fmt.Errorf("backend %q: URL carries user info: remove it, the proxy forwards the client's credentials", b.Name)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fmt.Errorf("backend %q: URL %q has a query or fragment: a backend is a base URL, remove them", b.Name, u.Redacted())
	}
	return nil
}

// validateFor checks b and that its scheme is one the protocol forwards.
func (b Backend) validateFor(p Protocol) error {
	if err := b.validate(); err != nil {
		return err
	}
	switch {
	case p == TCP && b.URL.Scheme != "tcp":
		return fmt.Errorf("backend %q: a TCP proxy needs a tcp://host:port URL, not %s://", b.Name, b.URL.Scheme)
	case p == TCP && (b.URL.Port() == "" || (b.URL.Path != "" && b.URL.Path != "/")):
		return fmt.Errorf("backend %q: write tcp://host:port, with a port and no path", b.Name)
	case p == HTTP && b.URL.Scheme == "tcp":
		return fmt.Errorf("backend %q: an HTTP proxy needs an http:// or https:// URL; set Protocol to tcp for tcp:// backends", b.Name)
	}
	return nil
}

func validName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("backend name %q: use 1-%d characters", name, maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("@._:-[]", c) >= 0:
		default:
			return fmt.Errorf("backend name %q: character %q is not allowed: use letters, digits and @ . _ : - [ ]", name, c)
		}
	}
	return nil
}

// clone returns b with its own copy of the URL, so that a caller mutating
// the URL it passed in or got back cannot change a live route.
func (b Backend) clone() Backend {
	if b.URL != nil {
		u := *b.URL
		b.URL = &u
	}
	return b
}

// same reports whether a and b name the same instance.
func (b Backend) same(o Backend) bool {
	return b.Name == o.Name && b.URL.String() == o.URL.String()
}

// joinPath appends the request path to the backend's path prefix, keeping
// exactly one slash between them, as httputil.ReverseProxy's SetURL does.
func joinPath(base, req *url.URL) (path, rawpath string) {
	if base.RawPath == "" && req.RawPath == "" {
		return joinSlash(base.Path, req.Path), ""
	}
	bp, rp := base.EscapedPath(), req.EscapedPath()
	escaped := joinSlash(bp, rp)
	return joinSlash(base.Path, req.Path), escaped
}

func joinSlash(a, b string) string {
	aslash, bslash := strings.HasSuffix(a, "/"), strings.HasPrefix(b, "/")
	switch {
	case aslash && bslash:
		return a + b[1:]
	case !aslash && !bslash:
		return a + "/" + b
	}
	return a + b
}
