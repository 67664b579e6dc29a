package nab

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzReadSeries checks that any input either fails cleanly or reads to
// points in time order with finite values.
func FuzzReadSeries(f *testing.F) {
	f.Add([]byte("timestamp,value\n2015-09-08 11:39:00,73\n2015-09-08 11:39:00,62.5\n"))
	f.Add([]byte("\ufefftimestamp,value\n2011-07-01 00:00:01,-1.03989471325e-05\n"))
	f.Add([]byte("value,timestamp,x\n1,2014-04-01 00:00:00.5,\"a,b\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pts, err := ReadSeries(bytes.NewReader(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "read NAB series") {
				t.Fatalf("error %q does not say what failed", err)
			}
			return
		}
		for i, p := range pts {
			if math.IsNaN(p.Value) || math.IsInf(p.Value, 0) || (i > 0 && p.Time.Before(pts[i-1].Time)) {
				t.Fatalf("accepted row %d = %+v", i, p)
			}
		}
	})
}

// FuzzReadResults checks that any input either fails cleanly or reads to
// rows that survive a write and re-read unchanged.
func FuzzReadResults(f *testing.F) {
	f.Add([]byte("timestamp,value,anomaly_score\n2015-09-08 11:39:00,73,0.0\n2015-09-08 11:44:00,62,0.5\n"))
	f.Add([]byte("timestamp,value\n2011-07-01 00:00:01,-1.03989471325e-05\n"))
	f.Add([]byte("anomaly_score,timestamp\n1,2014-04-01 00:00:00.5\n"))
	f.Add([]byte("timestamp,value,anomaly_score\n\"2015-09-08 11:39:00\",\"7\"\"3\",0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, err := ReadResults(bytes.NewReader(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "read NAB results") {
				t.Fatalf("error %q does not say what failed", err)
			}
			return
		}
		var buf bytes.Buffer
		if err := WriteResults(&buf, rows); err != nil {
			t.Fatalf("writing rows just read: %v", err)
		}
		again, err := ReadResults(&buf)
		if err != nil {
			t.Fatalf("re-reading what was written: %v\n%s", err, buf.String())
		}
		if len(rows) == 0 {
			rows = nil
		}
		if len(again) == 0 {
			again = nil
		}
		if diff := cmp.Diff(rows, again); diff != "" {
			t.Fatalf("round trip changed rows (-read +reread):\n%s", diff)
		}
	})
}

// FuzzReadWindows checks that any input either fails cleanly or yields
// windows the scorer can rely on.
func FuzzReadWindows(f *testing.F) {
	f.Add([]byte(`{"realTraffic/speed_7578.csv": [["2015-09-11 15:34:00.000000", "2015-09-11 17:54:00.000000"]], "a.csv": []}`))
	f.Add([]byte(`{"a.csv": [["2014-04-10 07:15:00", "2014-04-10 07:15:00"], ["2014-04-11 00:00:00", "2014-04-12 00:00:00"]]}`))
	f.Add([]byte(`{"a.csv": [["2014-04-12 00:00:00", "2014-04-10 00:00:00"]]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ws, err := ReadWindows(bytes.NewReader(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "read NAB windows") {
				t.Fatalf("error %q does not say what failed", err)
			}
			return
		}
		for name, list := range ws {
			if name == "" {
				t.Fatal("accepted an empty file name")
			}
			if err := checkWindows(list); err != nil {
				t.Fatalf("%s: accepted windows that fail the scorer's check: %v", name, err)
			}
		}
	})
}
