package nab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReadCorpus lays out a results directory on disk the way NAB does and
// reads it back, pairing each file with its windows.
func TestReadCorpus(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	slice, err := os.ReadFile("testdata/nab/ARTime_speed_7578.csv")
	if err != nil {
		t.Fatal(err)
	}
	write("ARTime/realTraffic/ARTime_speed_7578.csv", string(slice))
	write("ARTime/other/ARTime_flat.csv", "timestamp,value,anomaly_score\n2015-01-01 00:00:00,1,0.5\n")
	start := time.Date(2015, 9, 8, 11, 44, 0, 0, time.UTC)
	windows := Windows{
		"realTraffic/speed_7578.csv": {{Start: start, End: start.Add(20 * time.Minute)}},
		"other/flat.csv":             nil,
	}
	c, err := ReadCorpus(os.DirFS(root), "ARTime", windows)
	if err != nil {
		t.Fatal(err)
	}
	if len(c) != 2 || c[0].Name != "other/flat.csv" || c[1].Name != "realTraffic/speed_7578.csv" {
		t.Fatalf("corpus files %v, want other/flat.csv then realTraffic/speed_7578.csv", names(c))
	}
	if len(c[1].Times) != 12 || len(c[1].Windows) != 1 || c[0].Scores[0] != 0.5 {
		t.Errorf("speed_7578: %d rows, %d windows; flat score %v; want 12, 1, 0.5", len(c[1].Times), len(c[1].Windows), c[0].Scores[0])
	}

	windows["realTraffic/missing.csv"] = nil
	if _, err := ReadCorpus(os.DirFS(root), "ARTime", windows); err == nil || !strings.Contains(err.Error(), "ARTime/realTraffic/ARTime_missing.csv") {
		t.Errorf("missing file: error %v, want one naming ARTime/realTraffic/ARTime_missing.csv", err)
	}
	write("ARTime/realTraffic/ARTime_missing.csv", "timestamp,value,anomaly_score\n2015-01-01 00:00:00,1,x\n")
	if _, err := ReadCorpus(os.DirFS(root), "ARTime", windows); err == nil || !strings.Contains(err.Error(), "ARTime_missing.csv: read NAB results: line 2") {
		t.Errorf("bad file: error %v, want one naming the file and line", err)
	}
	for _, bad := range []string{"", "../ARTime", "a/b", "."} {
		if _, err := ReadCorpus(os.DirFS(root), bad, windows); err == nil || !strings.Contains(err.Error(), "single path element") {
			t.Errorf("detector %q: error %v, want a refusal", bad, err)
		}
	}
}

func names(c Corpus) []string {
	out := make([]string, len(c))
	for i, f := range c {
		out[i] = f.Name
	}
	return out
}
