package nab

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// TimeLayout is the timestamp format of NAB's data and result files. NAB's
// timestamps carry no zone; this package reads and writes them as UTC.
// Parsing also accepts a fractional second (windows.json writes
// "2014-04-10 07:15:00.000000"); writing emits one only when it is not zero.
const TimeLayout = "2006-01-02 15:04:05"

// writeLayout drops a zero fraction, so whole seconds round-trip to the
// exact text NAB writes.
const writeLayout = "2006-01-02 15:04:05.999999999"

// Point is one row of a NAB data file.
type Point struct {
	Time  time.Time
	Value float64
}

// ScoredPoint is one row of a NAB result file: the data row and the
// detector's anomaly score for it (NAB's scores are in [0, 1], but any finite
// number is accepted).
type ScoredPoint struct {
	Time  time.Time
	Value float64
	Score float64
}

// ParseTime parses a NAB timestamp, such as "2015-08-31 18:22:00" or
// "2014-04-10 07:15:00.000000", as UTC.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(TimeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("timestamp %q: want YYYY-MM-DD hh:mm:ss[.ffffff]", s)
	}
	return t, nil
}

// FormatTime formats t (converted to UTC) as NAB writes timestamps.
func FormatTime(t time.Time) string { return t.UTC().Format(writeLayout) }

// ReadSeries reads a NAB data file: a header naming at least the columns
// "timestamp" and "value" (in any order; other columns are ignored), then one
// row per interval in time order (NAB's own data repeats a timestamp where
// a clock change left a gap, so equal timestamps are accepted) with finite
// values.
// Errors name the line.
func ReadSeries(r io.Reader) ([]Point, error) {
	var points []Point
	err := readTable(r, []string{"timestamp", "value"}, func(t time.Time, nums []float64) error {
		points = append(points, Point{Time: t, Value: nums[0]})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read NAB series: %w", err)
	}
	return points, nil
}

// ReadResults reads a NAB result file: a header naming at least
// "timestamp" and "anomaly_score" (NAB's files also carry "value" and
// sometimes label or raw-score columns, which are ignored), then one row per
// data row, in time order as for ReadSeries, with finite numbers. Value is
// zero when the file has no "value" column.
func ReadResults(r io.Reader) ([]ScoredPoint, error) {
	var rows []ScoredPoint
	err := readTable(r, []string{"timestamp", "anomaly_score", "value?"}, func(t time.Time, nums []float64) error {
		rows = append(rows, ScoredPoint{Time: t, Score: nums[0], Value: nums[1]})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read NAB results: %w", err)
	}
	return rows, nil
}

// readTable reads a CSV whose first column named in cols is a timestamp and
// whose other named columns are numbers; a name ending in '?' is optional
// and reads as 0 when absent. Each row is handed to row; nums is reused
// between calls.
func readTable(r io.Reader, cols []string, row func(t time.Time, nums []float64) error) error {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return errors.New("empty input: want a header line such as timestamp,value")
	}
	if err != nil {
		return fmt.Errorf("header: %w", err)
	}
	header = slices.Clone(header) // ReuseRecord would overwrite it
	idx, err := columnIndexes(header, cols)
	if err != nil {
		return err
	}
	cr.FieldsPerRecord = len(header)
	nums := make([]float64, len(cols)-1)
	var prev time.Time
	for n := 0; ; n++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err // csv.ParseError names the line already
		}
		line, _ := cr.FieldPos(0)
		t, err := ParseTime(rec[idx[0]])
		if err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		if n > 0 && t.Before(prev) {
			return fmt.Errorf("line %d: timestamp %s is before the previous row's %s: rows must be in time order", line, FormatTime(t), FormatTime(prev))
		}
		prev = t
		for i, c := range idx[1:] {
			nums[i] = 0
			if c < 0 {
				continue
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(rec[c]), 64)
			if err != nil || !isFinite(v) {
				return fmt.Errorf("line %d: column %s: %q is not a finite number", line, header[c], rec[c])
			}
			nums[i] = v
		}
		if err := row(t, nums); err != nil {
			return err
		}
	}
}

// columnIndexes finds each wanted column in header; names ending in '?' are
// optional and map to -1 when missing.
func columnIndexes(header, want []string) ([]int, error) {
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff") // a UTF-8 BOM from spreadsheet exports
	}
	idx := make([]int, len(want))
	for i, w := range want {
		name, optional := strings.CutSuffix(w, "?")
		idx[i] = -1
		for j, h := range header {
			if strings.TrimSpace(h) == name {
				idx[i] = j
				break
			}
		}
		if idx[i] < 0 && !optional {
			return nil, fmt.Errorf("header %q has no %q column", strings.Join(header, ","), name)
		}
	}
	return idx, nil
}

// ResultWriter writes a NAB result file, "timestamp,value,anomaly_score",
// one row per Write, with timestamps in NAB's format. The header is written
// before the first row, or by Flush if there is none. Call Flush at the end
// and check its error.
type ResultWriter struct {
	w      *csv.Writer
	header bool
	rec    [3]string
}

// NewResultWriter returns a ResultWriter that writes to w.
func NewResultWriter(w io.Writer) *ResultWriter { return &ResultWriter{w: csv.NewWriter(w)} }

// Write appends one row. Numbers are written in the shortest decimal form
// that reads back to the same float64.
func (rw *ResultWriter) Write(p ScoredPoint) error {
	if !isFinite(p.Value) || !isFinite(p.Score) {
		return fmt.Errorf("write NAB result at %s: value %v and score %v must be finite", FormatTime(p.Time), p.Value, p.Score)
	}
	if err := rw.writeHeader(); err != nil {
		return err
	}
	rw.rec = [3]string{
		FormatTime(p.Time),
		strconv.FormatFloat(p.Value, 'f', -1, 64),
		strconv.FormatFloat(p.Score, 'f', -1, 64),
	}
	if err := rw.w.Write(rw.rec[:]); err != nil {
		return fmt.Errorf("write NAB result: %w", err)
	}
	return nil
}

// Flush writes any buffered rows (and the header if nothing was written)
// and reports the first error seen.
func (rw *ResultWriter) Flush() error {
	if err := rw.writeHeader(); err != nil {
		return err
	}
	rw.w.Flush()
	if err := rw.w.Error(); err != nil {
		return fmt.Errorf("write NAB results: %w", err)
	}
	return nil
}

func (rw *ResultWriter) writeHeader() error {
	if rw.header {
		return nil
	}
	rw.header = true
	if err := rw.w.Write([]string{"timestamp", "value", "anomaly_score"}); err != nil {
		return fmt.Errorf("write NAB results header: %w", err)
	}
	return nil
}

// WriteResults writes rows as a complete NAB result file.
func WriteResults(w io.Writer, rows []ScoredPoint) error {
	rw := NewResultWriter(w)
	for _, p := range rows {
		if err := rw.Write(p); err != nil {
			return err
		}
	}
	return rw.Flush()
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
