package nab

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"time"
)

// File is one data file as a detector scored it: a timestamp and an anomaly
// score per row, in time order (equal timestamps allowed), with the file's labelled
// windows. Build it row by row with Append while a detector runs, or from a
// result file with FileFromResults.
type File struct {
	// Name is the file's path relative to the corpus root, as in
	// windows.json ("realTraffic/speed_6005.csv"); it only labels output.
	Name    string
	Windows []Window
	Times   []time.Time
	Scores  []float64
}

// Append adds one scored row. Order and finiteness are checked when the
// corpus is scored, so Append never fails.
func (f *File) Append(t time.Time, score float64) {
	f.Times = append(f.Times, t)
	f.Scores = append(f.Scores, score)
}

// FileFromResults builds a File from the rows of a result file.
func FileFromResults(name string, windows []Window, rows []ScoredPoint) File {
	f := File{Name: name, Windows: windows, Times: make([]time.Time, len(rows)), Scores: make([]float64, len(rows))}
	for i, r := range rows {
		f.Times[i], f.Scores[i] = r.Time, r.Score
	}
	return f
}

// Corpus is the set of files a detector is scored on. NAB scores the corpus
// as a whole: one threshold and one normalised score for all its files.
type Corpus []File

// ReadCorpus reads one detector's result files from fsys laid out as NAB's
// results directory, <detector>/<category>/<detector>_<file>.csv, for every
// file named in windows, and pairs each with its windows. The files come
// back sorted by name.
func ReadCorpus(fsys fs.FS, detector string, windows Windows) (Corpus, error) {
	if detector == "" || detector == "." || path.Base(detector) != detector || !fs.ValidPath(detector) {
		return nil, fmt.Errorf("read NAB corpus: detector name %q must be a single path element", detector)
	}
	names := make([]string, 0, len(windows))
	for name := range windows {
		names = append(names, name)
	}
	slices.Sort(names)
	c := make(Corpus, 0, len(names))
	for _, name := range names {
		dir, file := path.Split(name)
		p := path.Join(detector, dir, detector+"_"+file)
		rows, err := readResultsFile(fsys, p)
		if err != nil {
			return nil, fmt.Errorf("read NAB corpus %s: %w", detector, err)
		}
		c = append(c, FileFromResults(name, windows[name], rows))
	}
	return c, nil
}

func readResultsFile(fsys fs.FS, name string) ([]ScoredPoint, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rows, err := ReadResults(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return rows, nil
}

// validate checks what scoring relies on; ReadResults guarantees all of it
// for files it read, but a File built in memory may break any of it.
func (f *File) validate() error {
	if len(f.Times) != len(f.Scores) {
		return fmt.Errorf("%d timestamps but %d scores", len(f.Times), len(f.Scores))
	}
	for i, t := range f.Times {
		if i > 0 && t.Before(f.Times[i-1]) {
			return fmt.Errorf("row %d: timestamp %s is before the previous row's %s", i, FormatTime(t), FormatTime(f.Times[i-1]))
		}
		if !isFinite(f.Scores[i]) {
			return fmt.Errorf("row %d (%s): anomaly score %v is not a finite number", i, FormatTime(t), f.Scores[i])
		}
	}
	return checkWindows(f.Windows)
}

// windowRows maps each window to the first and last row index it covers.
// NAB requires window bounds to be row timestamps and takes the first row
// carrying each (timestamps.index), so rows repeating the end's timestamp
// fall outside. This does the same, and for bounds between rows takes the
// rows inside.
func windowRows(times []time.Time, ws []Window) ([][2]int, error) {
	out := make([][2]int, len(ws))
	for i, w := range ws {
		first := sort.Search(len(times), func(j int) bool { return !times[j].Before(w.Start) })
		last := sort.Search(len(times), func(j int) bool { return !times[j].Before(w.End) })
		if last == len(times) || !times[last].Equal(w.End) {
			last--
		}
		if first > last {
			return nil, fmt.Errorf("window %d [%s, %s] covers no row of the file", i, FormatTime(w.Start), FormatTime(w.End))
		}
		out[i] = [2]int{first, last}
	}
	return out, nil
}

// ErrNoWindows is returned by Score and Optimize for a corpus without a
// single labelled window.
var ErrNoWindows = errors.New("the corpus has no labelled windows, so the normalised score is undefined (perfect and null detectors score the same)")
