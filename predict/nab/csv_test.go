package nab

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestReadSeriesNABSlice(t *testing.T) {
	f, err := os.Open("testdata/nab/speed_7578.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ReadSeries(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 12 {
		t.Fatalf("%d points, want 12", len(got))
	}
	want0 := Point{Time: time.Date(2015, 9, 8, 11, 39, 0, 0, time.UTC), Value: 73}
	if got[0] != want0 || got[11].Value != 66 {
		t.Errorf("first %+v last %+v, want first %+v and last value 66", got[0], got[11], want0)
	}
}

// The ARTime slice reads back to the same rows after a write, and the
// written timestamps are byte for byte NAB's.
func TestResultsRoundTripNABSlice(t *testing.T) {
	raw, err := os.ReadFile("testdata/nab/ARTime_speed_7578.csv")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := ReadResults(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteResults(&buf, rows); err != nil {
		t.Fatal(err)
	}
	again, err := ReadResults(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rows, again); diff != "" {
		t.Errorf("round trip changed rows (-read +reread):\n%s", diff)
	}
	var buf2 bytes.Buffer
	if err := WriteResults(&buf2, rows); err != nil {
		t.Fatal(err)
	}
	inLines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	outLines := strings.Split(strings.TrimSpace(buf2.String()), "\n")
	if len(inLines) != len(outLines) || outLines[0] != "timestamp,value,anomaly_score" {
		t.Fatalf("wrote %d lines starting %q, want %d starting with NAB's header", len(outLines), outLines[0], len(inLines))
	}
	for i := range inLines {
		in, _, _ := strings.Cut(inLines[i], ",")
		out, _, _ := strings.Cut(outLines[i], ",")
		if in != out {
			t.Errorf("line %d: timestamp %q written as %q", i+1, in, out)
		}
	}
}

func TestReadResultsColumns(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []ScoredPoint
	}{
		{
			name: "NAB's full results layout",
			in: "timestamp,value,anomaly_score,label,S(t)_reward_low_FP_rate,S(t)_reward_low_FN_rate,S(t)_standard\n" +
				"2014-04-01 00:00:00,18.09,0.03,0,0.0,0.0,0.0\n",
			want: []ScoredPoint{{Time: time.Date(2014, 4, 1, 0, 0, 0, 0, time.UTC), Value: 18.09, Score: 0.03}},
		},
		{
			name: "reordered, no value column, BOM, fractional seconds",
			in:   "\ufeffanomaly_score,timestamp\n0.5,2014-04-01 00:00:00.250000\n",
			want: []ScoredPoint{{Time: time.Date(2014, 4, 1, 0, 0, 0, 250_000_000, time.UTC), Score: 0.5}},
		},
		{
			name: "exponent notation, as in realAdExchange",
			in:   "timestamp,value,anomaly_score\n2011-07-01 00:00:01,-1.03989471325e-05,1e-3\n",
			want: []ScoredPoint{{Time: time.Date(2011, 7, 1, 0, 0, 1, 0, time.UTC), Value: -1.03989471325e-05, Score: 0.001}},
		},
		{
			name: "header only",
			in:   "timestamp,value,anomaly_score\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadResults(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadBadCSV(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		results bool // read with ReadResults, not ReadSeries
		want    string
	}{
		{"empty", "", false, "empty input"},
		{"no value column", "timestamp,v\n", false, `has no "value" column`},
		{"no score column", "timestamp,value\n", true, `has no "anomaly_score" column`},
		{"bad timestamp", "timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01T00:05:00,2\n", false, `line 3: timestamp "2014-04-01T00:05:00"`},
		{"bad date", "timestamp,value\n2014-02-30 00:00:00,1\n", false, "line 2: timestamp"},
		{"bad number", "timestamp,value\n2014-04-01 00:00:00,abc\n", false, `line 2: column value: "abc" is not a finite number`},
		{"NaN", "timestamp,value\n2014-04-01 00:00:00,NaN\n", false, "line 2: column value"},
		{"infinite score", "timestamp,value,anomaly_score\n2014-04-01 00:00:00,1,+Inf\n", true, "line 2: column anomaly_score"},
		{"time goes back", "timestamp,value\n2014-04-01 00:05:00,1\n2014-04-01 00:00:00,1\n", false, "line 3: timestamp 2014-04-01 00:00:00 is before"},
		{"short row", "timestamp,value\n2014-04-01 00:00:00\n", false, "line 2"},
		{"bad quote", "timestamp,value\n\"2014-04-01 00:00:00,1\n", false, "extraneous or missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.results {
				_, err = ReadResults(strings.NewReader(tt.in))
			} else {
				_, err = ReadSeries(strings.NewReader(tt.in))
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestResultWriter(t *testing.T) {
	var empty bytes.Buffer
	if err := NewResultWriter(&empty).Flush(); err != nil {
		t.Fatal(err)
	}
	if empty.String() != "timestamp,value,anomaly_score\n" {
		t.Errorf("empty file %q, want the header alone", empty.String())
	}
	var buf bytes.Buffer
	rw := NewResultWriter(&buf)
	at := time.Date(2015, 9, 8, 11, 39, 0, 0, time.FixedZone("CEST", 2*3600))
	if err := rw.Write(ScoredPoint{Time: at, Value: 1e6, Score: 0.25}); err != nil {
		t.Fatal(err)
	}
	if err := rw.Write(ScoredPoint{Time: at, Value: 1, Score: 0}); err != nil {
		t.Fatal(err)
	}
	if err := rw.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "timestamp,value,anomaly_score\n2015-09-08 09:39:00,1000000,0.25\n2015-09-08 09:39:00,1,0\n"
	if buf.String() != want {
		t.Errorf("wrote %q, want %q (UTC, no exponent)", buf.String(), want)
	}
	if err := NewResultWriter(&buf).Write(ScoredPoint{Score: nanScore()}); err == nil || !strings.Contains(err.Error(), "must be finite") {
		t.Errorf("NaN score: error %v, want one saying it must be finite", err)
	}
}

func nanScore() float64 {
	zero := 0.0
	return zero / zero
}
