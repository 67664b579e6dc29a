package nab

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// rowTime is the timestamp of row i in the hand-made files: one row every
// five minutes from t0.
func rowTime(i int) time.Time { return t0.Add(time.Duration(i) * 5 * time.Minute) }

// handFile builds an n-row file whose rows listed in scores carry that
// anomaly score and all others 0, with windows given as [first, last] rows.
func handFile(name string, n int, windows [][2]int, scores map[int]float64) File {
	f := File{Name: name}
	for _, w := range windows {
		f.Windows = append(f.Windows, Window{Start: rowTime(w[0]), End: rowTime(w[1])})
	}
	for i := range n {
		f.Append(rowTime(i), scores[i])
	}
	return f
}

func profile(t *testing.T, name string) Profile {
	t.Helper()
	p, err := ProfileByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The hand-made cases below use a 40-row file. Its probationary period is
// floor(0.15*40) = 6 rows (0..5). The window spans rows 10..14, width W = 5.
// σ(x) = 2/(1+e^(5x)) - 1 = tanh(-2.5x), so σ(-1) = tanh(2.5) ≈ 0.986614.
// A detection at window row i weighs TP*σ(-(14-i+1)/5)/σ(-1); one at row
// j > 14 weighs FP*σ((j-14)/(5-1)); one before any window weighs -FP.
// Standard: Null = -1 (one missed window), Perfect = +1, so the normalised
// score is 100*(raw+1)/2. reward_low_FN: Null = -2, Perfect = 1, score
// 100*(raw+2)/3. Detections are rows scored 1 at threshold 0.5.
func TestScoreOneWindow(t *testing.T) {
	sigma1 := math.Tanh(2.5)
	tests := []struct {
		name    string
		profile string
		detect  []int
		windows [][2]int
		raw     float64
		score   float64
		parts   Parts // counts only
	}{
		{
			// Position -(14-10+1)/5 = -1: exactly TP.
			name: "at the window's first row", profile: ProfileStandard, detect: []int{10},
			raw: 1, score: 100, parts: Parts{TP: 1, TN: 29},
		},
		{
			// Position -1/5: σ(-0.2) = tanh(0.5) ≈ 0.462117, /σ(-1) ≈ 0.468387;
			// score 100*(1.468387)/2 ≈ 73.42.
			name: "at the window's last row", profile: ProfileStandard, detect: []int{14},
			raw: math.Tanh(0.5) / sigma1, score: 50 * (1 + math.Tanh(0.5)/sigma1), parts: Parts{TP: 1, TN: 29},
		},
		{
			// Same detection, reward_low_FN: 100*(0.468387+2)/3 ≈ 82.28.
			name: "at the last row, reward_low_FN", profile: "reward_low_FN", detect: []int{14},
			raw: math.Tanh(0.5) / sigma1, score: 100 * (2 + math.Tanh(0.5)/sigma1) / 3, parts: Parts{TP: 1, TN: 29},
		},
		{
			// Rows 11 and 13: only the earliest counts, position -4/5:
			// tanh(2)/tanh(2.5) ≈ 0.977108; the later one is neither TP nor FP.
			name: "two in the window, earliest counts", profile: ProfileStandard, detect: []int{11, 13},
			raw: math.Tanh(2) / sigma1, score: 50 * (1 + math.Tanh(2)/sigma1), parts: Parts{TP: 1, TN: 29},
		},
		{
			// Nothing: the window is missed, raw = -FN = Null, score 0.
			name: "none", profile: ProfileStandard,
			raw: -1, score: 0, parts: Parts{FN: 1, TN: 29},
		},
		{
			// Row 17, 3 rows after the window: 0.11*σ(3/4) = 0.11*tanh(-1.875)
			// ≈ -0.104968, plus the miss: raw ≈ -1.104968, score ≈ -5.25.
			name: "after the window", profile: ProfileStandard, detect: []int{17},
			raw: -1 + 0.11*math.Tanh(-1.875), score: 50 * 0.11 * math.Tanh(-1.875), parts: Parts{FP: 1, FN: 1, TN: 28},
		},
		{
			// reward_low_FP doubles the FP weight: -1 + 0.22*tanh(-1.875).
			name: "after the window, reward_low_FP", profile: ProfileRewardLowFP, detect: []int{17},
			raw: -1 + 0.22*math.Tanh(-1.875), score: 50 * 0.22 * math.Tanh(-1.875), parts: Parts{FP: 1, FN: 1, TN: 28},
		},
		{
			// Row 26: distance 12/4 = 3 exactly, not yet floored:
			// 0.11*tanh(-7.5) ≈ -0.10999993.
			name: "three widths after", profile: ProfileStandard, detect: []int{26},
			raw: -1 + 0.11*math.Tanh(-7.5), score: 50 * 0.11 * math.Tanh(-7.5), parts: Parts{FP: 1, FN: 1, TN: 28},
		},
		{
			// Row 30: distance 16/4 = 4 > 3, floored at -1: -0.11 - 1; score -5.5.
			name: "far after", profile: ProfileStandard, detect: []int{30},
			raw: -1.11, score: -5.5, parts: Parts{FP: 1, FN: 1, TN: 28},
		},
		{
			// Row 7: no window precedes it, weight -1: -0.11 - 1; score -5.5.
			name: "before the window", profile: ProfileStandard, detect: []int{7},
			raw: -1.11, score: -5.5, parts: Parts{FP: 1, FN: 1, TN: 28},
		},
		{
			// Row 3 is probationary: ignored, the window is missed; score 0.
			name: "in the probationary period", profile: ProfileStandard, detect: []int{3},
			raw: -1, score: 0, parts: Parts{FN: 1, TN: 29},
		},
		{
			// Start plus row 17: 1 - 0.104968 ≈ 0.895032, score ≈ 94.75.
			name: "hit and a false alarm", profile: ProfileStandard, detect: []int{10, 17},
			raw: 1 + 0.11*math.Tanh(-1.875), score: 50 * (2 + 0.11*math.Tanh(-1.875)), parts: Parts{TP: 1, FP: 1, TN: 28},
		},
		{
			// Window rows 4..8 straddles the probationary period: row 4 is not
			// scored, row 6 (position -3/5) is: tanh(1.5)/tanh(2.5) ≈ 0.917427.
			name: "window straddling probation", profile: ProfileStandard, detect: []int{4, 6}, windows: [][2]int{{4, 8}},
			raw: math.Tanh(1.5) / sigma1, score: 50 * (1 + math.Tanh(1.5)/sigma1), parts: Parts{TP: 1, TN: 31},
		},
		{
			// Window rows 1..3 lies inside probation: not scored, so Null = 0
			// while Perfect = 1 (NAB counts it there). Nothing detected: raw 0,
			// score 100*(0-0)/(1-0) = 0.
			name: "window inside probation", profile: ProfileStandard, windows: [][2]int{{1, 3}},
			raw: 0, score: 0, parts: Parts{TN: 34},
		},
		{
			// Same, with a detection at row 10, (10-3)/(3-1) = 3.5 widths after
			// the window: floored, -0.11; score 100*(-0.11)/1 = -11.
			name: "after a window inside probation", profile: ProfileStandard, detect: []int{10}, windows: [][2]int{{1, 3}},
			raw: -0.11, score: -11, parts: Parts{FP: 1, TN: 33},
		},
		{
			// A one-row window at row 10 (TP weight exactly 1 at its only row)
			// and a detection at row 12: the distance divides by W-1 = 0, read
			// as infinitely far: -0.11. raw 0.89, score 94.5.
			name: "one-row window", profile: ProfileStandard, detect: []int{10, 12}, windows: [][2]int{{10, 10}},
			raw: 0.89, score: 94.5, parts: Parts{TP: 1, FP: 1, TN: 32},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			windows := tt.windows
			if windows == nil {
				windows = [][2]int{{10, 14}}
			}
			scores := map[int]float64{}
			for _, i := range tt.detect {
				scores[i] = 1
			}
			c := Corpus{handFile("hand.csv", 40, windows, scores)}
			got, err := Score(c, profile(t, tt.profile), 0.5)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got.Raw-tt.raw) > 1e-9 || math.Abs(got.Score-tt.score) > 1e-9 {
				t.Errorf("raw %.9f score %.9f, want raw %.9f score %.9f", got.Raw, got.Score, tt.raw, tt.score)
			}
			counts := Parts{TP: got.TP, FP: got.FP, FN: got.FN, TN: got.TN}
			if counts != tt.parts {
				t.Errorf("counts %+v, want %+v", counts, tt.parts)
			}
			if sum := got.TPScore + got.FPScore + got.FNScore; math.Abs(sum-got.Raw) > 1e-12 {
				t.Errorf("parts sum to %v, raw is %v", sum, got.Raw)
			}
			if len(got.Files) != 1 || got.Files[0].Parts != got.Parts || got.Files[0].Name != "hand.csv" {
				t.Errorf("per-file parts %+v, want one file equal to the totals %+v", got.Files, got.Parts)
			}
		})
	}
}

// Two files, one window each (rows 10..14 of 40): the first detected at its
// first row (+1), the second missed (-1). Raw 0, Null -2, Perfect 2: the
// corpus is normalised as a whole, score 100*(0+2)/4 = 50.
func TestScoreCorpusIsNormalisedAsAWhole(t *testing.T) {
	c := Corpus{
		handFile("a.csv", 40, [][2]int{{10, 14}}, map[int]float64{10: 0.9}),
		handFile("b.csv", 40, [][2]int{{10, 14}}, nil),
	}
	got, err := Score(c, profile(t, ProfileStandard), 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if got.Null != -2 || got.Perfect != 2 || got.Raw != 0 || got.Score != 50 {
		t.Errorf("null %v perfect %v raw %v score %v, want -2 2 0 50", got.Null, got.Perfect, got.Raw, got.Score)
	}
	if got.Files[0].Raw != 1 || got.Files[1].Raw != -1 || got.Files[1].Name != "b.csv" {
		t.Errorf("files %+v, want a.csv raw 1 then b.csv raw -1", got.Files)
	}
}

// The file is 40 rows, window 10..14, standard profile, rows not listed
// scored 0. Thresholds are the distinct scores plus "detect nothing" (raw
// -1); threshold 0 detects all 29 rows outside the window, which costs more
// than the window earns, so it never wins here.
func TestOptimize(t *testing.T) {
	tests := []struct {
		name      string
		scores    map[int]float64
		threshold float64
		raw       float64
	}{
		{
			// Row 7 (before any window, -0.11) scores 0.9; row 11 (window
			// position -4/5, tanh(2)/tanh(2.5) ≈ 0.977108) 0.7; row 10 (window
			// start, 1) and rows 20..29 (false alarms 1.5 to 3.75 widths after
			// the window, 0.11*tanh(-2.5d) each, -0.11 from 3.25 on) share 0.5.
			// At 0.9: -1.11. At 0.7: -0.11 + 0.977108 ≈ 0.867108, the best.
			// At 0.5: -0.11 + 1 - 1.0998 ≈ -0.21. A sweep that split the 0.5
			// tie would see -0.11 + 1 = 0.89 after row 10 alone, which no
			// threshold gives, and pick 0.5.
			name: "ties enter together",
			scores: map[int]float64{7: 0.9, 11: 0.7, 10: 0.5, 20: 0.5, 21: 0.5, 22: 0.5, 23: 0.5, 24: 0.5,
				25: 0.5, 26: 0.5, 27: 0.5, 28: 0.5, 29: 0.5},
			threshold: 0.7, raw: -0.11 + math.Tanh(2)/math.Tanh(2.5),
		},
		{
			// 0.8 (row 10) and 0.6 (row 12, same window, not earlier) both give
			// +1: the higher threshold wins, as in NAB's stable sort.
			name:   "highest of equal thresholds",
			scores: map[int]float64{10: 0.8, 12: 0.6}, threshold: 0.8, raw: 1,
		},
		{
			// Only a false alarm scores high: detecting nothing is best and
			// reports NAB's threshold 1.1.
			name:   "nothing is best",
			scores: map[int]float64{20: 0.9}, threshold: 1.1, raw: -1,
		},
		{
			// Scores above 1.1: the "nothing" threshold is just above the
			// largest score.
			name:   "nothing is best, large scores",
			scores: map[int]float64{20: 5}, threshold: math.Nextafter(5, 6), raw: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Corpus{handFile("hand.csv", 40, [][2]int{{10, 14}}, tt.scores)}
			got, err := Optimize(c, profile(t, ProfileStandard))
			if err != nil {
				t.Fatal(err)
			}
			if got.Threshold != tt.threshold || math.Abs(got.Raw-tt.raw) > 1e-9 {
				t.Errorf("threshold %v raw %.9f, want threshold %v raw %.9f", got.Threshold, got.Raw, tt.threshold, tt.raw)
			}
		})
	}
}

// TestOptimizeMatchesBruteForce checks Optimize on random corpora whose
// scores come from a few values (so ties are common) against scoring every
// candidate threshold: it must find the best raw score and, among equals,
// the highest threshold.
func TestOptimizeMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		c := randomCorpus(rng)
		for _, p := range Profiles() {
			got, err := Optimize(c, p)
			if err != nil {
				t.Fatalf("trial %d: %v", trial, err)
			}
			bestRaw, bestThreshold := math.Inf(-1), 0.0
			for _, s := range []float64{1.1, 1, 0.75, 0.5, 0.25, 0} { // descending
				o, err := Score(c, p, s)
				if err != nil {
					t.Fatal(err)
				}
				if o.Raw > bestRaw+1e-9 {
					bestRaw, bestThreshold = o.Raw, s
				}
			}
			if math.Abs(got.Raw-bestRaw) > 1e-9 || got.Threshold != bestThreshold {
				t.Fatalf("trial %d %s: Optimize raw %v at %v, brute force raw %v at %v", trial, p.Name, got.Raw, got.Threshold, bestRaw, bestThreshold)
			}
		}
	}
}

func randomCorpus(rng *rand.Rand) Corpus {
	values := []float64{0, 0.25, 0.5, 0.75, 1}
	var c Corpus
	for f := range 1 + rng.IntN(3) {
		n := 20 + rng.IntN(60)
		var windows [][2]int
		for start := rng.IntN(n / 2); start < n; {
			end := min(n-1, start+rng.IntN(8))
			windows = append(windows, [2]int{start, end})
			start = end + 2 + rng.IntN(n)
		}
		scores := map[int]float64{}
		for i := range n {
			scores[i] = values[rng.IntN(len(values))]
		}
		c = append(c, handFile(string(rune('a'+f))+".csv", n, windows, scores))
	}
	return c
}

func TestScoreRejectsBadInput(t *testing.T) {
	good := func() File { return handFile("f.csv", 40, [][2]int{{10, 14}}, nil) }
	tests := []struct {
		name      string
		corpus    func() Corpus
		profile   Profile
		threshold float64
		want      string
	}{
		{"scores shorter than times", func() Corpus { f := good(); f.Scores = f.Scores[:39]; return Corpus{f} }, Profiles()[0], 0.5, "40 timestamps but 39 scores"},
		{"time goes back", func() Corpus { f := good(); f.Times[5] = f.Times[3]; return Corpus{f} }, Profiles()[0], 0.5, "row 5: timestamp"},
		{"NaN score", func() Corpus { f := good(); f.Scores[7] = math.NaN(); return Corpus{f} }, Profiles()[0], 0.5, "row 7"},
		{"infinite score", func() Corpus { f := good(); f.Scores[7] = math.Inf(1); return Corpus{f} }, Profiles()[0], 0.5, "not a finite number"},
		{"overlapping windows", func() Corpus {
			f := good()
			f.Windows = append(f.Windows, Window{Start: rowTime(12), End: rowTime(20)})
			return Corpus{f}
		}, Profiles()[0], 0.5, "must not overlap"},
		{"window outside the data", func() Corpus {
			f := good()
			f.Windows = []Window{{Start: rowTime(50), End: rowTime(60)}}
			return Corpus{f}
		}, Profiles()[0], 0.5, "covers no row"},
		{"no windows", func() Corpus { f := good(); f.Windows = nil; return Corpus{f} }, Profiles()[0], 0.5, "no labelled windows"},
		{"empty corpus", func() Corpus { return nil }, Profiles()[0], 0.5, "no labelled windows"},
		{"negative weight", func() Corpus { return Corpus{good()} }, Profile{Name: "x", TP: 1, FP: -1, FN: 1}, 0.5, "weight FP is -1"},
		{"zero TP and FN", func() Corpus { return Corpus{good()} }, Profile{Name: "x", FP: 1}, 0.5, "both 0"},
		{"NaN threshold", func() Corpus { return Corpus{good()} }, Profiles()[0], math.NaN(), "threshold is NaN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Score(tt.corpus(), tt.profile, tt.threshold)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Score error %v, want one containing %q", err, tt.want)
			}
			if !math.IsNaN(tt.threshold) {
				if _, err := Optimize(tt.corpus(), tt.profile); err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Optimize error %v, want one containing %q", err, tt.want)
				}
			}
		})
	}
	if _, err := Score(nil, Profiles()[0], 0.5); !errors.Is(err, ErrNoWindows) {
		t.Errorf("empty corpus: error %v, want ErrNoWindows", err)
	}
}

// Equal timestamps (NAB's ec2_disk_write_bytes_1ef3de repeats 03:00:00
// twelve times) are accepted; a window ending on a repeated timestamp ends
// at its first row, as NAB's timestamps.index does. Rows 10..14 with row 14
// repeated as row 15: the window is 10..14 (W=5), and a detection at row 15
// is 1/4 width after it: 0.11*σ(0.25) = 0.11*tanh(-0.625), plus the miss.
func TestRepeatedTimestamps(t *testing.T) {
	f := handFile("dup.csv", 40, [][2]int{{10, 14}}, map[int]float64{15: 1})
	for i := 15; i < 40; i++ {
		f.Times[i] = rowTime(i - 1)
	}
	got, err := Score(Corpus{f}, profile(t, ProfileStandard), 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if want := -1 + 0.11*math.Tanh(-0.625); math.Abs(got.Raw-want) > 1e-9 {
		t.Errorf("raw %.9f, want %.9f", got.Raw, want)
	}
}

func TestProfileByName(t *testing.T) {
	for _, name := range []string{"standard", "reward_low_FP", "reward_low_FP_rate", "reward_low_FN", "reward_low_FN_rate"} {
		if _, err := ProfileByName(name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	p, _ := ProfileByName("reward_low_FN")
	if p.FN != 2 || p.FP != 0.11 || p.TP != 1 {
		t.Errorf("reward_low_FN = %+v, want TP 1, FP 0.11, FN 2", p)
	}
	if _, err := ProfileByName("lenient"); err == nil || !strings.Contains(err.Error(), "standard, reward_low_FP_rate, reward_low_FN_rate") {
		t.Errorf("unknown profile: error %v, want one listing the profiles", err)
	}
}
