package nab

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestReadWindowsNABSlice(t *testing.T) {
	f, err := os.Open("testdata/nab/windows.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ws, err := ReadWindows(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 3 || len(ws["artificialNoAnomaly/art_flatline.csv"]) != 0 {
		t.Fatalf("got %d files, %v for art_flatline; want 3 files and no window there", len(ws), ws["artificialNoAnomaly/art_flatline.csv"])
	}
	speed := ws["realTraffic/speed_7578.csv"]
	want := Window{Start: time.Date(2015, 9, 11, 15, 34, 0, 0, time.UTC), End: time.Date(2015, 9, 11, 17, 54, 0, 0, time.UTC)}
	if len(speed) != 4 || speed[0] != want {
		t.Errorf("speed_7578: %d windows, first %+v; want 4, first %+v", len(speed), speed[0], want)
	}
}

func TestReadBadWindows(t *testing.T) {
	const a, b, c = `"2014-04-10 07:15:00.000000"`, `"2014-04-11 16:45:00.000000"`, `"2014-04-12 00:00:00"`
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty", ``, "want an object"},
		{"null", `null`, "got null"},
		{"list", `[]`, "want an object"},
		{"truncated", `{"a.csv": [[` + a, "want an object"},
		{"one timestamp", `{"a.csv": [[` + a + `]]}`, "a.csv window 0: want [start, end], got 1 values"},
		{"three timestamps", `{"a.csv": [[` + a + `,` + b + `,` + c + `]]}`, "got 3 values"},
		{"number", `{"a.csv": [[1, 2]]}`, "want an object"},
		{"bad start", `{"a.csv": [["yesterday",` + b + `]]}`, `a.csv window 0 start: timestamp "yesterday"`},
		{"bad end", `{"a.csv": [[` + a + `, "2014-13-01 00:00:00"]]}`, "a.csv window 0 end"},
		{"reversed", `{"a.csv": [[` + b + `,` + a + `]]}`, "window 0 ends (2014-04-10 07:15:00) before it starts"},
		{"overlap", `{"a.csv": [[` + a + `,` + c + `],[` + b + `,` + c + `]]}`, "must not overlap"},
		{"out of order", `{"a.csv": [[` + b + `,` + c + `],[` + a + `,` + a + `]]}`, "must be in time order"},
		{"empty name", `{"": []}`, "empty file name"},
		{"too large", `{"a.csv": [], "pad": "` + strings.Repeat("x", maxWindowsBytes) + `"}`, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadWindows(strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
