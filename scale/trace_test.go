package scale

import (
	"strings"
	"testing"
	"time"
)

func TestParseTrace(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.DateTime, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name  string
		in    string
		want  []Sample
		error string // substring; "" for success
	}{
		{"nab", "timestamp,value\n2014-04-10 00:04:00,94.0\n2014-04-10 00:09:00,56\n", []Sample{{at("2014-04-10 00:04:00"), 94}, {at("2014-04-10 00:09:00"), 56}}, ""},
		{"no final newline, crlf", "timestamp,value\r\n2014-04-10 00:04:00,1\r\n2014-04-10 00:09:00,2", []Sample{{at("2014-04-10 00:04:00"), 1}, {at("2014-04-10 00:09:00"), 2}}, ""},
		{"no header", "2014-04-10 00:04:00,1\n", []Sample{{at("2014-04-10 00:04:00"), 1}}, ""},
		{"quoted, rfc3339, blank lines", "\"timestamp\",\"value\"\n\n2014-04-10T00:04:00Z,\"3\"\n", []Sample{{at("2014-04-10 00:04:00"), 3}}, ""},
		{"equal times", "2014-04-10 00:04:00,1\n2014-04-10 00:04:00,2\n", []Sample{{at("2014-04-10 00:04:00"), 1}, {at("2014-04-10 00:04:00"), 2}}, ""},
		{"empty", "", nil, "no samples"},
		{"header only", "timestamp,value\n", nil, "no samples"},
		{"wrong header", "time,count\n2014-04-10 00:04:00,1\n", nil, "header"},
		{"three fields", "2014-04-10 00:04:00,1,2\n", nil, "two fields"},
		{"one field", "2014-04-10 00:04:00\n", nil, "two fields"},
		{"bad time", "2014-13-10 00:04:00,1\n", nil, "timestamp"},
		{"bad value", "2014-04-10 00:04:00,lots\n", nil, "value"},
		{"negative", "2014-04-10 00:04:00,-1\n", nil, "value"},
		{"nan", "2014-04-10 00:04:00,NaN\n", nil, "value"},
		{"inf", "2014-04-10 00:04:00,+Inf\n", nil, "value"},
		{"out of order", "2014-04-10 00:09:00,1\n2014-04-10 00:04:00,1\n", nil, "sort the trace"},
		{"long line", "2014-04-10 00:04:00," + strings.Repeat("9", 400) + "\n", nil, "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTrace(strings.NewReader(tt.in))
			if tt.error != "" {
				if err == nil || !strings.Contains(err.Error(), tt.error) {
					t.Fatalf("ParseTrace = %v, %v; want an error about %q", got, err, tt.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("ParseTrace = %v, want %v", got, tt.want)
			}
			for i := range got {
				if !got[i].At.Equal(tt.want[i].At) || got[i].Value != tt.want[i].Value {
					t.Fatalf("sample %d = %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// FuzzParseTrace checks that any input gives samples that keep the
// trace's promises, or an error, and never a panic.
func FuzzParseTrace(f *testing.F) {
	f.Add("timestamp,value\n2014-04-10 00:04:00,94.0\n2014-04-10 00:09:00,56.0\n")
	f.Add("2014-04-10T00:04:00Z,1e3\r\n")
	f.Add("timestamp,value\n2014-04-10 00:04:00,-1\n")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParseTrace(strings.NewReader(in))
		if err != nil {
			return
		}
		if len(got) == 0 {
			t.Fatal("no error and no samples")
		}
		for i, s := range got {
			if !(s.Value >= 0) || s.Value > 1e308 {
				t.Fatalf("sample %d value %v", i, s.Value)
			}
			if i > 0 && s.At.Before(got[i-1].At) {
				t.Fatalf("sample %d out of order", i)
			}
		}
		if m, err := DeriveModel(got); err == nil {
			if err := m.Validate(); err != nil {
				t.Fatalf("DeriveModel(%v) = %+v, invalid: %v", got, m, err)
			}
		}
	})
}
