package anomaly

import (
	"testing"

	"github.com/phoenixsre/phoenix/predict/nab"
)

// TestDefaultThresholdFromTraining re-derives the fixed default threshold
// from the synthetic training corpus: NAB's optimiser, run on the detector's
// scores of 60 generated series, must find a best standard score that the
// shipped DefaultThreshold comes within 3 points of. NAB's own files are
// never looked at here.
func TestDefaultThresholdFromTraining(t *testing.T) {
	var c nab.Corpus
	for _, s := range SyntheticCorpus(60, 1) {
		d := NewNovelty(NoveltyConfig{})
		f := nab.File{Name: s.Name, Windows: s.Windows}
		for _, p := range s.Points {
			f.Append(p.Time, d.Score(p.Time, p.Value))
		}
		c = append(c, f)
	}
	p, _ := nab.ProfileByName(nab.ProfileStandard)
	opt, err := nab.Optimize(c, p)
	if err != nil {
		t.Fatal(err)
	}
	fixed, err := nab.Score(c, p, DefaultThreshold)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("training corpus: optimum %.2f at threshold %.4f (TP %d FN %d FP %d); DefaultThreshold %.2f gives %.2f", opt.Score, opt.Threshold, opt.TP, opt.FN, opt.FP, DefaultThreshold, fixed.Score)
	if fixed.Score < opt.Score-3 {
		t.Errorf("DefaultThreshold %v scores %.2f on the training corpus, more than 3 below the optimum %.2f at %.4f", DefaultThreshold, fixed.Score, opt.Score, opt.Threshold)
	}
}
