package nab

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// recorder scores each point by its position and remembers what it saw.
type recorder struct{ seen *[]Point }

func (r recorder) Score(p Point) float64 {
	*r.seen = append(*r.seen, p)
	return float64(len(*r.seen)) / 100
}

func TestRunFeedsEachFileInOrder(t *testing.T) {
	fsys := fstest.MapFS{
		"a/one.csv":    {Data: []byte("timestamp,value\n2015-01-01 00:00:00,1\n2015-01-01 00:05:00,2\n2015-01-01 00:10:00,3\n")},
		"b/two.csv":    {Data: []byte("timestamp,value\n2015-01-01 00:00:00,7\n2015-01-01 00:05:00,8\n")},
		"windows.json": {Data: []byte(`{"a/one.csv": [["2015-01-01 00:05:00", "2015-01-01 00:10:00"]], "b/two.csv": []}`)},
	}
	names, err := ListSeries(fsys)
	if err != nil || strings.Join(names, " ") != "a/one.csv b/two.csv" {
		t.Fatalf("ListSeries = %v, %v; want the files of windows.json", names, err)
	}
	ws := Windows{"b/two.csv": nil}
	ws["a/one.csv"] = []Window{{Start: mustTime(t, "2015-01-01 00:05:00"), End: mustTime(t, "2015-01-01 00:10:00")}}
	seen := map[string]*[]Point{}
	results := map[string][]ScoredPoint{}
	c, err := Run(context.Background(), fsys, ws, RunConfig{
		Parallel: 1,
		NewDetector: func(name string) Detector {
			s := &[]Point{}
			seen[name] = s
			return recorder{s}
		},
		Result: func(name string, rows []ScoredPoint) error { results[name] = rows; return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(c) != 2 || c[0].Name != "a/one.csv" || len(c[0].Windows) != 1 || len(c[1].Scores) != 2 {
		t.Fatalf("corpus %+v", c)
	}
	if got := *seen["b/two.csv"]; len(got) != 2 || got[0].Value != 7 || got[1].Value != 8 {
		t.Errorf("two.csv's detector saw %v, want 7 then 8 and nothing of one.csv", got)
	}
	if r := results["a/one.csv"]; len(r) != 3 || r[2].Score != 0.03 || r[2].Value != 3 {
		t.Errorf("one.csv results %v", r)
	}
	if _, err := Run(context.Background(), fsys, Windows{"missing.csv": nil}, RunConfig{NewDetector: func(string) Detector { return recorder{&[]Point{}} }}); err == nil {
		t.Error("a missing file ran")
	}
	if got := ResultPath("phoenix", "realTraffic/speed_6005.csv"); got != "phoenix/realTraffic/phoenix_speed_6005.csv" {
		t.Errorf("ResultPath = %s", got)
	}
}

func TestListSeriesWalks(t *testing.T) {
	fsys := fstest.MapFS{"x/a.csv": {}, "y/z/b.CSV": {}, "notes.txt": {}}
	names, err := ListSeries(fsys)
	if err != nil || strings.Join(names, " ") != "x/a.csv y/z/b.CSV" {
		t.Errorf("ListSeries = %v, %v", names, err)
	}
	if _, err := ListSeries(fstest.MapFS{"a.txt": {}}); err == nil {
		t.Error("no error for a directory without series")
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := ParseTime(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
