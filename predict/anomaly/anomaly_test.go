package anomaly

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestSortedWindowMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	w := newSortedWindow(50)
	var all []float64
	for i := range 500 {
		v := float64(rng.IntN(40)) // ties are common
		w.Add(v)
		all = append(all, v)
		kept := slices.Clone(all[max(0, len(all)-50):])
		slices.Sort(kept)
		if !slices.Equal(w.sorted, kept) {
			t.Fatalf("step %d: window %v, want %v", i, w.sorted, kept)
		}
		q := float64(rng.IntN(42)) - 1
		above := 0
		for _, x := range kept {
			if x >= q {
				above++
			}
		}
		if got := w.Above(q); got != above {
			t.Fatalf("step %d: Above(%v) = %d, want %d", i, q, got, above)
		}
	}
}

func TestNovelty(t *testing.T) {
	square := func(i int) float64 { // period 20, values 0 and 10
		if i%20 < 10 {
			return 0
		}
		return 10
	}
	tests := []struct {
		name  string
		f     func(i int) float64
		at    int     // the point whose score is checked
		want  float64 // its score
		quiet bool    // every other point after warm-up scores 0
	}{
		{"a recurring square wave never alarms", square, -1, 0, true},
		{"a spike half the range above", func(i int) float64 {
			if i == 300 {
				return 15
			}
			return square(i)
		}, 300, 0.5, true},
		{"a step into the gap between the levels", func(i int) float64 {
			if i >= 300 {
				return 5
			}
			return square(i)
		}, 300, 0.5, false},
		{"a level seen before is not news", func(i int) float64 {
			if i >= 300 {
				return 10
			}
			return square(i)
		}, 300, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewNovelty(NoveltyConfig{Smooth: 1, Ramp: -1})
			for i := range 400 {
				s := d.Score(t0.Add(time.Duration(i)*time.Minute), tt.f(i))
				if s < 0 || s > 1 || math.IsNaN(s) {
					t.Fatalf("point %d: score %v outside [0, 1]", i, s)
				}
				switch {
				case i == tt.at:
					if math.Abs(s-tt.want) > 1e-9 {
						t.Errorf("point %d: score %v, want %v", i, s, tt.want)
					}
				case tt.quiet && i > 40 && s != 0:
					t.Errorf("point %d: score %v, want 0", i, s)
				}
			}
		})
	}
}

// After an alarm the next Hold points score 0; a NaN scores 0 and is not
// learnt; nothing is scored during the warm-up.
func TestNoveltyHoldWarmupNaN(t *testing.T) {
	d := NewNovelty(NoveltyConfig{Smooth: 1, Hold: 3, Warmup: 10, Ramp: -1})
	var scores []float64
	vals := []float64{0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 5, 9, 13, 17, math.NaN(), 21}
	for i, v := range vals {
		scores = append(scores, d.Score(t0.Add(time.Duration(i)*time.Second), v))
	}
	if scores[1] != 0 {
		t.Errorf("warm-up point scored %v", scores[1])
	}
	if !(scores[12] > 0.9) {
		t.Errorf("jump to 5 over a range of 1 scored %v, want the cap near 1", scores[12])
	}
	for _, i := range []int{13, 14, 15} {
		if scores[i] != 0 {
			t.Errorf("point %d in the hold scored %v", i, scores[i])
		}
	}
	if scores[16] != 0 || !(scores[17] > 0) {
		t.Errorf("NaN scored %v, the next new level %v; want 0 and > 0", scores[16], scores[17])
	}
}

// Growing a fixed series point by point gives the same scores as running
// it whole: the detector cannot look ahead, with the day-over-day feature
// off (a one-second spacing makes a day longer than the history) and on (a
// one-minute season).
func TestNoveltyIsStreaming(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	xs := make([]float64, 600)
	for i := range xs {
		xs[i] = math.Sin(float64(i)/10) + 0.1*rng.NormFloat64()
		if i > 400 {
			xs[i] += 3
		}
	}
	for _, cfg := range []NoveltyConfig{{}, {Season: time.Minute}} {
		full := NewNovelty(cfg)
		var want []float64
		for i, v := range xs {
			want = append(want, full.Score(t0.Add(time.Duration(i)*time.Second), v))
		}
		for _, cut := range []int{100, 401, 599} {
			d := NewNovelty(cfg)
			for i, v := range xs[:cut] {
				if got := d.Score(t0.Add(time.Duration(i)*time.Second), v); got != want[i] {
					t.Fatalf("season %v, prefix %d, point %d: %v, want %v", cfg.Season, cut, i, got, want[i])
				}
			}
		}
		if !slices.ContainsFunc(want[401:420], func(s float64) bool { return s >= DefaultThreshold }) {
			t.Errorf("season %v: a shift of 3 over a range of about 2.4 raised no alarm", cfg.Season)
		}
	}
}

// Over its first Ramp points the detector scales its score by how many it
// has seen, before the cap at 1: the same jump scores n/Ramp of what it
// scores without the ramp at point n, and in full from Ramp on.
func TestNoveltyRamp(t *testing.T) {
	for _, tt := range []struct {
		at   int
		jump float64 // over a range of 1
	}{{150, 1.5}, {300, 1.5}, {599, 1.5}, {600, 1.5}, {900, 1.5}, {150, 3.5}, {400, 3.5}} {
		score := func(ramp int) float64 {
			d := NewNovelty(NoveltyConfig{Smooth: 1, Ramp: ramp, Season: -1})
			var s float64
			for i := range tt.at + 1 {
				v := float64(i % 2) // 0, 1, 0, 1, ...: a range of 1
				if i == tt.at {
					v = tt.jump
				}
				s = d.Score(t0.Add(time.Duration(i)*time.Minute), v)
			}
			return s
		}
		gap := tt.jump - 1
		want := min(gap*min(float64(tt.at+1)/DefaultRamp, 1), 1)
		if full, ramped := score(-1), score(0); math.Abs(full-min(gap, 1)) > 1e-9 || math.Abs(ramped-want) > 1e-9 {
			t.Errorf("jump to %v at point %d: %v with the ramp, %v without; want %v and %v", tt.jump, tt.at, ramped, full, want, min(gap, 1))
		}
	}
}

// perDay is a day of five-minute points, the spacing the day-over-day
// tests feed.
const perDay = 288

// dailyCycle is a noiseless daily cycle between 10 and 90 at point i.
func dailyCycle(i int) float64 { return 50 + 40*math.Sin(2*math.Pi*float64(i)/perDay) }

// A daily peak that does not come is a familiar value at an unfamiliar
// time: the day-over-day feature raises an alarm within the hours the peak
// should have lasted, and without it (Season < 0) the detector stays
// silent. Neither raises one over the ordinary days before, once the first
// three (its probation, as NAB's first 15%) have been learnt.
func TestNoveltyMissingDailyPeak(t *testing.T) {
	missing := 10*perDay + perDay/4 // the tenth day's peak, at 06:00
	from, to := missing-perDay/8, missing+perDay/8
	for _, tt := range []struct {
		season time.Duration
		alarm  bool
	}{{0, true}, {-1, false}} {
		rng := rand.New(rand.NewPCG(11, 12)) // the same noise for both
		d := NewNovelty(NoveltyConfig{Season: tt.season})
		first := -1
		for i := range 11 * perDay {
			v := dailyCycle(i) + rng.NormFloat64()
			if i >= from && i < to {
				v = 50 + rng.NormFloat64() // the morning stays at the daily mean
			}
			s := d.Score(t0.Add(time.Duration(i)*5*time.Minute), v)
			if s >= DefaultThreshold && first < 0 && i >= 3*perDay {
				first = i
			}
		}
		switch {
		case tt.alarm && (first < from || first >= to):
			t.Errorf("season %v: first alarm at point %d, want one in [%d, %d)", tt.season, first, from, to)
		case !tt.alarm && first >= 0:
			t.Errorf("season %v: alarm at point %d, want none", tt.season, first)
		}
	}
}

// On an ordinary daily cycle the day-over-day feature adds no alarm, not
// even while it starts (its first moving means are judged against a history
// of a few, which its own warm-up absorbs): the alarms are those of the
// detector without it.
func TestNoveltyDayOverDayQuietOnACycle(t *testing.T) {
	alarms := func(season time.Duration) []int {
		rng := rand.New(rand.NewPCG(13, 14))
		d := NewNovelty(NoveltyConfig{Season: season})
		var at []int
		for i := range 5 * perDay {
			v := dailyCycle(i) + 2*rng.NormFloat64()
			if d.Score(t0.Add(time.Duration(i)*5*time.Minute), v) >= DefaultThreshold {
				at = append(at, i)
			}
		}
		return at
	}
	if on, off := alarms(0), alarms(-1); !slices.Equal(on, off) {
		t.Errorf("alarms with the day-over-day feature %v, without %v; want the same", on, off)
	}
}

// The change is taken against the latest point at or before the same time
// a season earlier, whatever the spacing; a season the history does not
// reach is not scored.
func TestDayOverDayLag(t *testing.T) {
	regular := func(i int) time.Duration { return time.Duration(i) * time.Minute }
	irregular := func(i int) time.Duration { // one minute, then five
		if i < 100 {
			return time.Duration(i) * time.Minute
		}
		return time.Duration(100+5*(i-100)) * time.Minute
	}
	for _, tt := range []struct {
		name    string
		season  time.Duration
		history int
		at      func(i int) time.Duration
		scored  bool
	}{
		{"an hour of one-minute points", time.Hour, 4096, regular, true},
		{"one minute, then five", time.Hour, 4096, irregular, true},
		{"one point back", time.Minute, 4096, regular, true},
		{"a ring that wraps", time.Hour, 90, irregular, true},
		{"a ring just long enough", time.Hour, 60, regular, true},
		{"off", -1, 4096, regular, false},
		{"longer than the history spans", time.Hour, 59, regular, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newDayOverDay(tt.season, tt.history, 3, 1)
			for i := range 300 {
				now := tt.at(i)
				f.score(t0.Add(now), now.Minutes()) // the value is the time
				// The latest point at or before now - season among those
				// the history keeps, by brute force.
				then := math.Inf(-1)
				for j := max(i-tt.history, 0); j < i; j++ {
					if tj := tt.at(j); tj <= now-tt.season {
						then = max(then, tj.Minutes())
					}
				}
				if tt.season < 0 || math.IsInf(then, -1) {
					// No change is taken here, and none was before
					// (once a season back is reached, it stays reached).
					if n := len(f.change.last); n > 0 {
						t.Fatalf("point %d: changes %v taken with none a season back", i, f.change.last)
					}
					continue
				}
				if n := len(f.change.last); n == 0 || f.change.last[n-1] != (now.Minutes()-then)/2 {
					t.Fatalf("point %d: halved changes %v, want the last %v", i, f.change.last, (now.Minutes()-then)/2)
				}
			}
			if scored := len(f.change.last) > 0; scored != tt.scored {
				t.Errorf("changes taken: %v, want %v", scored, tt.scored)
			}
		})
	}
}

func TestAvgPath(t *testing.T) {
	// c(n) = 2H(n-1) - 2(n-1)/n with H(i) ≈ ln i + γ.
	for _, tt := range []struct {
		n    int
		want float64
	}{{1, 0}, {2, 1}, {256, 10.2448}} {
		if got := avgPath(tt.n); math.Abs(got-tt.want) > 1e-3 {
			t.Errorf("c(%d) = %v, want %v", tt.n, got, tt.want)
		}
	}
}

func TestIsolationForest(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var rows [][]float64
	for range 1000 {
		rows = append(rows, []float64{rng.NormFloat64(), rng.NormFloat64(), 5 + rng.NormFloat64()})
	}
	f := FitIsolationForest(rows, 100, 256, rand.New(rand.NewPCG(1, 1)))
	in := f.Score([]float64{0, 0, 5})
	out := f.Score([]float64{6, -6, 5})
	edge := f.Score([]float64{0, 0, 9})
	if !(in < 0.5 && out > 0.6 && edge > in) {
		t.Errorf("scores: centre %v, far outlier %v, outlier in one feature %v; want < 0.5, > 0.6, above the centre", in, out, edge)
	}
	if FitIsolationForest(rows[:1], 10, 256, rng) != nil {
		t.Error("a forest from one row")
	}
	var nilForest *IsolationForest
	if s := nilForest.Score([]float64{1}); s != 0.5 {
		t.Errorf("nil forest scores %v, want the uninformed 0.5", s)
	}
}

// The calibrated likelihood of a score is its rank among the baseline's,
// and past the largest the generalised Pareto tail keeps it below 1 and
// growing.
func TestCalibrator(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	c := NewCalibrator(2000)
	for range 2000 {
		c.Add(rng.ExpFloat64())
	}
	for _, tt := range []struct{ s, want, tol float64 }{
		{math.Log(2), 0.5, 0.03},        // median of Exp(1)
		{math.Log(10), 0.9, 0.015},      // 90th percentile
		{math.Log(1000), 0.999, 1.5e-3}, // a few sample points beyond
	} {
		if got := c.Likelihood(tt.s); math.Abs(got-tt.want) > tt.tol {
			t.Errorf("likelihood of %.3f = %.4f, want %.4f ± %v", tt.s, got, tt.want, tt.tol)
		}
	}
	far, farther := c.Likelihood(15), c.Likelihood(20)
	if !(far < 1 && farther > far) {
		t.Errorf("tail: L(15) = %v, L(20) = %v; want below 1 and increasing", far, farther)
	}
	if (&Calibrator{tail: newUpperTail(10, 0.05, 1)}).Likelihood(3) != 0 {
		t.Error("an empty baseline gave a likelihood")
	}
}
