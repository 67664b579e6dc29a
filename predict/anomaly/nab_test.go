package anomaly

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/phoenixsre/phoenix/internal/shareddata"
	"github.com/phoenixsre/phoenix/predict/nab"
)

type nabNovelty struct{ d *Novelty }

func (n nabNovelty) Score(p nab.Point) float64 { return n.d.Score(p.Time, p.Value) }

// TestNABScore streams the shared NAB corpus (41 files, 64 windows) through
// the detector and checks its scores: with NAB's label-optimised threshold,
// the 77 on the standard profile and above the best published
// detector on the other two (CAD OSE's 72.41 low FP, ARTime's 79.42 low FN);
// with the fixed default threshold, above the 70.
func TestNABScore(t *testing.T) {
	dir := filepath.Dir(shareddata.Require(t, "data/nab/windows.json"))
	f, err := os.Open(filepath.Join(dir, "windows.json"))
	if err != nil {
		t.Fatal(err)
	}
	ws, err := nab.ReadWindows(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c, err := nab.Run(context.Background(), os.DirFS(dir), ws, nab.RunConfig{
		NewDetector: func(string) nab.Detector { return nabNovelty{NewNovelty(NoveltyConfig{})} },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scored %d files in %v", len(c), time.Since(start))
	floors := map[string][2]float64{ // label-optimised, fixed
		nab.ProfileStandard:    {77, 70},
		nab.ProfileRewardLowFP: {72.41, 60},
		nab.ProfileRewardLowFN: {79.42, 70},
	}
	for _, p := range nab.Profiles() {
		opt, err := nab.Optimize(c, p)
		if err != nil {
			t.Fatal(err)
		}
		fixed, err := nab.Score(c, p, DefaultThreshold)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%-18s label-optimised %.2f (threshold %.4f, TP %d FN %d FP %d); fixed %.2f", p.Name, opt.Score, opt.Threshold, opt.TP, opt.FN, opt.FP, fixed.Score)
		if opt.Score < floors[p.Name][0] || fixed.Score < floors[p.Name][1] {
			t.Errorf("%s: %.2f label-optimised, %.2f fixed; want at least %v and %v", p.Name, opt.Score, fixed.Score, floors[p.Name][0], floors[p.Name][1])
		}
	}
}
