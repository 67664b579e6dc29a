// Package shareddata finds, for tests, the team's shared tree that sits
// beside the repository (../shared: the NAB corpus, real Zipkin traces, the
// envtest build script), from the working directory at any depth of the
// checkout.
package shareddata

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Find returns the path of shared/rel in the working directory or the
// nearest of its parents that has it.
func Find(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	want := filepath.Join("shared", filepath.FromSlash(rel))
	for {
		p := filepath.Join(dir, want)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%s not found in the working directory or any parent", want)
		}
		dir = parent
	}
}

// Require is Find for a test that needs shared/rel: where it is missing,
// the test is skipped with the reason, or failed under CI=true, where the
// shared tree is always present.
func Require(t testing.TB, rel string) string {
	t.Helper()
	p, err := Find(rel)
	switch {
	case err == nil:
		return p
	case os.Getenv("CI") == "true":
		t.Fatalf("shared data: %v (required when CI=true)", err)
	default:
		t.Skipf("shared data: %v; skipping", err)
	}
	return ""
}
