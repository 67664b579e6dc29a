package traffic

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParseBackend(t *testing.T) {
	tests := []struct {
		in       string
		wantName string
		wantURL  string
		wantErr  string
	}{
		{in: "orders@primary=http://127.0.0.1:28081", wantName: "orders@primary", wantURL: "http://127.0.0.1:28081"},
		{in: "http://127.0.0.1:28081", wantName: "127.0.0.1:28081", wantURL: "http://127.0.0.1:28081"},
		{in: "orders=https://orders.internal/api", wantName: "orders", wantURL: "https://orders.internal/api"},
		{in: "v6=http://[::1]:80", wantName: "v6", wantURL: "http://[::1]:80"},
		{in: "=http://h:1", wantErr: "use 1-128 characters"},
		{in: "a b=http://h:1", wantErr: "not allowed"},
		{in: "x=ftp://h:1", wantErr: `scheme "ftp" is not supported`},
		{in: "x=http:///path", wantErr: "has no host"},
		{in: "x=http:opaque", wantErr: "has no host"},
		{in: "x=http://u:p@h:1", wantErr: "user info"},
		{in: "x=http://h:1/?a=b", wantErr: "query or fragment"},
		{in: "x=http://h:1/#frag", wantErr: "query or fragment"},
		{in: "x=http://h:1/%zz", wantErr: "invalid URL escape"},
		{in: "", wantErr: "use 1-128 characters"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			b, err := ParseBackend(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseBackend(%q) error = %v, want it to contain %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseBackend(%q): %v", tc.in, err)
			}
			if b.Name != tc.wantName || b.URL.String() != tc.wantURL {
				t.Errorf("ParseBackend(%q) = %s, %s; want %s, %s", tc.in, b.Name, b.URL, tc.wantName, tc.wantURL)
			}
		})
	}
}

// FuzzParseBackend: any input is parsed or refused without panic, and what
// parses is valid and reads back the same from its String form.
func FuzzParseBackend(f *testing.F) {
	for _, s := range []string{
		"orders@primary=http://127.0.0.1:28081", "http://127.0.0.1:1/x", "=", "a=b=c",
		"x=http://h:1/?a=b", "v6=http://[::1]:80/p%20q", "x=https://h/a/../b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBackend(s)
		if err != nil {
			return
		}
		if err := b.validate(); err != nil {
			t.Fatalf("ParseBackend(%q) returned an invalid backend: %v", s, err)
		}
		again, err := ParseBackend(b.String())
		if err != nil {
			t.Fatalf("ParseBackend(%q) = %s, which does not parse again: %v", s, b, err)
		}
		if again.Name != b.Name || again.URL.String() != b.URL.String() {
			t.Fatalf("round trip of %q: %s became %s", s, b, again)
		}
	})
}

func TestJoinPath(t *testing.T) {
	tests := []struct{ base, req, want string }{
		{"", "/x", "/x"},
		{"/", "/x", "/x"},
		{"/api", "/x", "/api/x"},
		{"/api/", "/x", "/api/x"},
		{"/api", "x", "/api/x"},
		{"/a%2Fb", "/c", "/a%2Fb/c"},
		{"/a", "/c%2Fd", "/a/c%2Fd"},
	}
	for _, tc := range tests {
		base, err := url.Parse(tc.base)
		if err != nil {
			t.Fatal(err)
		}
		req, err := url.Parse(tc.req)
		if err != nil {
			t.Fatal(err)
		}
		path, raw := joinPath(base, req)
		got := (&url.URL{Path: path, RawPath: raw}).EscapedPath()
		if got != tc.want {
			t.Errorf("joinPath(%q, %q) = %q, want %q", tc.base, tc.req, got, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"defaults are valid", Config{Component: "orders"}, ""},
		{"component required", Config{}, "Component:"},
		{"component pattern", Config{Component: "Orders!"}, "Component:"},
		{"health path relative", Config{Component: "o", HealthPath: "healthz"}, "HealthPath"},
		{"health path query", Config{Component: "o", HealthPath: "/h?x=1"}, "HealthPath"},
		{"negative duration", Config{Component: "o", HoldTimeout: -time.Second}, "HoldTimeout -1s: must be positive"},
		{"timeout above interval", Config{Component: "o", HealthInterval: 100 * time.Millisecond, HealthTimeout: time.Second}, "exceeds HealthInterval"},
		{"fast interval above interval", Config{Component: "o", HealthInterval: 100 * time.Millisecond, HealthTimeout: 50 * time.Millisecond, HealthFastInterval: time.Second}, "HealthFastInterval 1s exceeds"},
		{"negative thresholds", Config{Component: "o", UnhealthyAfter: -1, HealthyAfter: -2}, "HealthyAfter -2"},
		{"negative body limit", Config{Component: "o", MaxRetryBody: -1}, "MaxRetryBody"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.withDefaults().validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("validate: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("validate = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
