package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phoenixsre/phoenix/predict/anomaly"
	"github.com/phoenixsre/phoenix/predict/nab"
)

// writeCorpus lays out generated series as a NAB data directory with its
// windows.json.
func writeCorpus(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	windows := map[string][][2]string{}
	for _, s := range anomaly.SyntheticCorpus(n, 3) {
		p := filepath.Join(dir, filepath.FromSlash(s.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		b.WriteString("timestamp,value\n")
		for _, pt := range s.Points {
			fmt.Fprintf(&b, "%s,%v\n", nab.FormatTime(pt.Time), pt.Value)
		}
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		ws := [][2]string{}
		for _, w := range s.Windows {
			ws = append(ws, [2]string{nab.FormatTime(w.Start), nab.FormatTime(w.End)})
		}
		windows[s.Name] = ws
	}
	data, err := json.Marshal(windows)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "windows.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestEvalNAB(t *testing.T) {
	data, out := writeCorpus(t, 6), t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"eval", "nab", "--data", data, "--out", out, "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var rep nabReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, stdout.String())
	}
	if rep.Files != 6 || rep.FixedThreshold != anomaly.DefaultThreshold || len(rep.LabelOptimised) != 3 || len(rep.Fixed) != 3 {
		t.Errorf("report %+v: want 6 files, the fixed threshold and three profiles twice", rep)
	}
	for name, s := range rep.LabelOptimised {
		if s.Score < rep.Fixed[name].Score-1e-9 {
			t.Errorf("%s: the label-optimised score %v is below the fixed threshold's %v", name, s.Score, rep.Fixed[name].Score)
		}
	}
	rows, err := os.ReadFile(filepath.Join(out, "phoenix", "synthetic", "phoenix_series_00.csv"))
	if err != nil || !strings.HasPrefix(string(rows), "timestamp,value,anomaly_score\n") || strings.Count(string(rows), "\n") != 4001 {
		t.Errorf("result file: %v, %d lines", err, strings.Count(string(rows), "\n"))
	}
	stdout.Reset()
	if code := run(context.Background(), []string{"eval", "nab", "--data", data}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "reward_low_FN_rate") {
		t.Errorf("text output (exit %d):\n%s", code, stdout.String())
	}
}

func TestEvalForecast(t *testing.T) {
	data := writeCorpus(t, 3)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"eval", "forecast", "--data", data, "--horizon", "3", "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(stdout.Bytes(), &top); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"mase", "coverage_80", "coverage_95", "series"} {
		if _, ok := top[k]; !ok {
			t.Errorf("no %q at the top of %s", k, stdout.String())
		}
	}
	var rep forecastReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Series) != 3 || !(rep.Coverage80 > 0.7 && rep.Coverage80 < 0.9) || !(rep.Coverage95 > 0.9) {
		t.Errorf("report: %d series, coverage %v / %v", len(rep.Series), rep.Coverage80, rep.Coverage95)
	}
}

func TestEvalUsage(t *testing.T) {
	for _, args := range [][]string{
		{"eval", "nab"},
		{"eval", "forecast", "--data", "x"},
		{"eval", "forecast", "--data", "x", "--horizon", "3", "--model", "prophet"},
		{"eval", "forecast", "--data", "x", "--horizon", "3", "--warmup", "1.5"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"eval", "nab", "--data", t.TempDir()}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "no .csv file") {
		t.Errorf("empty directory: exit %d, %s", code, stderr.String())
	}
}
