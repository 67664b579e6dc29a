package scale

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Sample is one measurement of demand: Value requests in the interval that
// ends at At.
type Sample struct {
	At    time.Time
	Value float64
}

// Trace limits: a trace is read whole into memory.
const (
	maxTraceLine    = 256
	maxTraceSamples = 10_000_000
)

// ParseTrace reads a demand series in the Numenta Anomaly Benchmark's CSV
// form: a header "timestamp,value", then one "2014-04-10 00:04:00,94.0" per
// line, in time order (equal timestamps allowed). Values are requests per
// interval: finite and not negative. Times without a zone are UTC.
func ParseTrace(r io.Reader) ([]Sample, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, maxTraceLine), maxTraceLine)
	var out []Sample
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(strings.TrimSuffix(sc.Text(), "\r"))
		if text == "" {
			continue
		}
		if line == 1 && !startsWithDigit(text) {
			if err := checkHeader(text); err != nil {
				return nil, err
			}
			continue
		}
		s, err := parseSample(text)
		if err != nil {
			return nil, fmt.Errorf("trace line %d: %w", line, err)
		}
		if n := len(out); n > 0 && s.At.Before(out[n-1].At) {
			return nil, fmt.Errorf("trace line %d: %s is before the line above (%s): sort the trace by time", line, s.At.Format(time.DateTime), out[n-1].At.Format(time.DateTime))
		}
		if len(out) >= maxTraceSamples {
			return nil, fmt.Errorf("trace line %d: more than %d samples", line, maxTraceSamples)
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("trace line %d: longer than %d bytes: is this a timestamp,value CSV?", line+1, maxTraceLine)
		}
		return nil, fmt.Errorf("read trace: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("trace has no samples: expected lines of timestamp,value")
	}
	return out, nil
}

func startsWithDigit(s string) bool { return s[0] >= '0' && s[0] <= '9' }

func checkHeader(text string) error {
	cols := strings.Split(text, ",")
	if len(cols) != 2 || strings.TrimSpace(strings.Trim(cols[0], `"`)) != "timestamp" || strings.TrimSpace(strings.Trim(cols[1], `"`)) != "value" {
		return fmt.Errorf("trace header %q: expected \"timestamp,value\"", truncate(text, 40))
	}
	return nil
}

func parseSample(text string) (Sample, error) {
	ts, vs, ok := strings.Cut(text, ",")
	if !ok || strings.Contains(vs, ",") {
		return Sample{}, fmt.Errorf("%q: expected two fields, timestamp,value", truncate(text, 40))
	}
	ts, vs = strings.TrimSpace(strings.Trim(ts, `"`)), strings.TrimSpace(strings.Trim(vs, `"`))
	at, err := parseTime(ts)
	if err != nil {
		return Sample{}, err
	}
	v, err := strconv.ParseFloat(vs, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return Sample{}, fmt.Errorf("value %q: expected a finite number of requests, 0 or more", truncate(vs, 30))
	}
	return Sample{At: at, Value: v}, nil
}

// parseTime reads the timestamp forms a trace may use: NAB's, then RFC 3339.
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02 15:04:05", time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("timestamp %q: expected the form 2014-04-10 00:04:00 (or RFC 3339)", truncate(s, 40))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
