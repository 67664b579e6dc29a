package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeTrace writes a day and a half of 5-minute demand, a daily wave.
func writeTrace(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("timestamp,value\n")
	start := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range 432 {
		v := 200 + 100*math.Sin(2*math.Pi*float64(i)/288) + float64(i%7)*5
		fmt.Fprintf(&b, "%s,%.1f\n", start.Add(time.Duration(i)*5*time.Minute).Format(time.DateTime), v)
	}
	p := filepath.Join(t.TempDir(), "demand.csv")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEvalScaleJSON checks the --json object: exactly the keys.
func TestEvalScaleJSON(t *testing.T) {
	trace := writeTrace(t)
	for _, policy := range []string{"hpa", "predictive"} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{"eval", "scale", "--trace", trace, "--policy", policy, "--json"}, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		var obj map[string]any
		if err := json.Unmarshal(stdout.Bytes(), &obj); err != nil {
			t.Fatalf("output is not one JSON object: %v\n%s", err, stdout.String())
		}
		var keys []string
		for k := range obj {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		want := []string{"ceiling_samples", "overprovisioned_replica_hours", "policy", "replica_hours", "scaling_actions", "underprovisioned_fraction"}
		if !slices.Equal(keys, want) || obj["policy"] != policy {
			t.Fatalf("keys %v policy %v, want %v and %s", keys, obj["policy"], want, policy)
		}
		if rh, _ := obj["replica_hours"].(float64); !(rh > 0) {
			t.Fatalf("replica_hours = %v", obj["replica_hours"])
		}
	}
}

func TestEvalScaleText(t *testing.T) {
	trace := writeTrace(t)
	var stdout, stderr bytes.Buffer
	args := []string{"eval", "scale", "--trace", trace, "--policy", "all", "--capacity", "25", "--startup", "600"}
	if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"capacity 25 per replica", "startup 10m0s", "policy             hpa", "policy             predictive", "under-provisioned"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestEvalScaleErrors(t *testing.T) {
	trace := writeTrace(t)
	bad := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(bad, []byte("timestamp,value\n2024-03-01 00:00:00,-4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"eval", "scale"}, 2, "--trace"},
		{[]string{"eval", "scale", "--trace", trace, "--policy", "vpa"}, 2, "--policy"},
		{[]string{"eval", "scale", "--trace", trace, "--capacity", "-3"}, 2, "--capacity"},
		{[]string{"eval", "scale", "--trace", trace, "--startup", "soon"}, 2, "--startup"},
		{[]string{"eval", "scale", "--trace", trace, "--target", "2"}, 2, "target"},
		{[]string{"eval", "scale", "--trace", filepath.Join(t.TempDir(), "none.csv")}, 1, "no such file"},
		{[]string{"eval", "scale", "--trace", bad}, 1, "line 2"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tt.args, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", tt.args[2:], code, stderr.String(), tt.code, tt.want)
		}
	}
}

// FuzzParseStartup checks that --startup's parser gives a duration within
// its bounds or an error, never a panic.
func FuzzParseStartup(f *testing.F) {
	for _, s := range []string{"300", "5m", "1.5", "-1", "1e30", "NaN", "90s", "2h30m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseStartup(s)
		if err == nil && d < 0 {
			t.Fatalf("parseStartup(%q) = %v", s, d)
		}
	})
}
