package nab

import (
	"cmp"
	"context"
	"fmt"
	"io/fs"
	"runtime"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"
)

// Detector scores one series one point at a time. Score sees each point
// once, in file order, and nothing after it: NAB's streaming rule, and the
// reason a Detector gets no file length, minimum or maximum.
type Detector interface {
	Score(p Point) float64
}

// RunConfig says how Run feeds a corpus to a detector.
type RunConfig struct {
	// NewDetector makes the detector of one file; name is the file's path
	// as in windows.json, for labelling only.
	NewDetector func(name string) Detector
	// Result, if set, receives each file's scored rows once the file is
	// done, for writing NAB result files. It may be called concurrently.
	Result func(name string, rows []ScoredPoint) error
	// Parallel bounds the files scored at once; 0 means GOMAXPROCS.
	Parallel int
}

// Run streams every file named in windows, read from data (laid out as
// NAB's data directory, <category>/<file>.csv), through a new detector per
// file, and returns the scored corpus in name order, ready for Score and
// Optimize. Files are independent, so they run in parallel.
func Run(ctx context.Context, data fs.FS, windows Windows, cfg RunConfig) (Corpus, error) {
	if cfg.NewDetector == nil {
		return nil, fmt.Errorf("run NAB corpus: no detector")
	}
	names := make([]string, 0, len(windows))
	for name := range windows {
		names = append(names, name)
	}
	slices.Sort(names)
	c := make(Corpus, len(names))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(cmp.Or(cfg.Parallel, runtime.GOMAXPROCS(0)))
	for i, name := range names {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			f, err := runFile(data, name, cfg)
			if err != nil {
				return fmt.Errorf("run NAB corpus: %w", err)
			}
			f.Windows = windows[name]
			c[i] = f
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return c, nil
}

func runFile(data fs.FS, name string, cfg RunConfig) (File, error) {
	r, err := data.Open(name)
	if err != nil {
		return File{}, err
	}
	defer r.Close()
	pts, err := ReadSeries(r)
	if err != nil {
		return File{}, fmt.Errorf("%s: %w", name, err)
	}
	d := cfg.NewDetector(name)
	f := File{Name: name, Times: make([]time.Time, 0, len(pts)), Scores: make([]float64, 0, len(pts))}
	rows := make([]ScoredPoint, 0, len(pts))
	for _, p := range pts {
		s := d.Score(p)
		if !isFinite(s) {
			return File{}, fmt.Errorf("%s: detector scored %s as %v, not a finite number", name, FormatTime(p.Time), s)
		}
		f.Append(p.Time, s)
		rows = append(rows, ScoredPoint{Time: p.Time, Value: p.Value, Score: s})
	}
	if cfg.Result != nil {
		if err := cfg.Result(name, rows); err != nil {
			return File{}, fmt.Errorf("%s: %w", name, err)
		}
	}
	return f, nil
}
