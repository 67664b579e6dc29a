package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		content string
		mode    os.FileMode
		want    string // token, or a fragment of the error
		ok      bool
	}{
		{"owner only", "s3cret\n", 0o600, "s3cret", true},
		{"readable by others", "s3cret", 0o644, "chmod 600", false},
		{"group readable", "s3cret", 0o640, "chmod 600", false},
		{"empty", " \n", 0o600, "is empty", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.WriteFile(p, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			got, err := readTokenFile(p)
			switch {
			case tc.ok && (err != nil || got != tc.want):
				t.Fatalf("readTokenFile = %q, %v; want %q", got, err, tc.want)
			case !tc.ok && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if _, err := readTokenFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing token file was accepted")
	}
}

func TestAgentCommandLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"help", []string{"agent", "--help"}, 0, "--token-file"},
		{"no role", []string{"agent", "--dir", "x", "--token-file", "y"}, 2, "needs --role"},
		{"half tls", []string{"agent", "--role", "target", "--dir", "x", "--token-file", "y", "--tls-cert", "c"}, 2, "go together"},
		{"bad throttle", []string{"agent", "--role", "source", "--dir", "x", "--token-file", "y", "--throttle", "fast"}, 2, "--throttle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), tc.args, &out, &errOut)
			if code != tc.code || !strings.Contains(out.String()+errOut.String(), tc.want) {
				t.Fatalf("exit %d, output %q %q; want exit %d mentioning %q", code, out.String(), errOut.String(), tc.code, tc.want)
			}
		})
	}
}
