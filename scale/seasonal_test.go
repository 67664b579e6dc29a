package scale

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestSeasonalPredict checks the seasonal centre against hand computations
// on an hourly series with a period of 4 hours.
func TestSeasonalPredict(t *testing.T) {
	const period = 4 * time.Hour
	hour := func(h float64) time.Time { return t0.Add(time.Duration(h * float64(time.Hour))) }
	type sample struct {
		h float64 // hours after t0
		v float64
	}
	// two periods of a profile 10, 20, 30, 40, the second 5 higher
	twoPeriods := []sample{{0, 10}, {1, 20}, {2, 30}, {3, 40}, {4, 15}, {5, 25}, {6, 35}, {7, 45}}
	for _, tc := range []struct {
		name    string
		seasons int
		w       float64
		samples []sample
		h       int
		want    float64
		ok      bool
	}{
		{"before a period", 1, 1, []sample{{0, 10}, {1, 20}, {2, 30}}, 1, 0, false},
		{"one step ahead", 1, 1, twoPeriods, 1,
			// the last sample (45) plus the step from 3h to 4h a period back
			45 + (15 - 40), true},
		{"two steps ahead", 1, 1, twoPeriods, 2, 45 + (25 - 40), true},
		{"two periods averaged", 2, 1, append(twoPeriods, sample{8, 20}), 1,
			// 20 + mean of (25-15) and (20-10)
			20 + 10, true},
		{"smoothed level", 1, 0.5, []sample{{0, 0}, {1, 10}, {2, 10}, {3, 10}, {4, 10}, {5, 20}}, 1,
			// levels 0, 5, 7.5, 8.75, 9.375, 14.6875; 14.6875 + (10 - 5)
			14.6875 + 5, true},
		{"interpolated between samples", 1, 1, []sample{{0, 0}, {1, 10}, {3, 30}, {4, 40}, {5, 50}}, 1,
			// a period before 6h is 2h, halfway from 10 to 30
			50 + (20 - 10), true},
		{"gap across the season", 1, 1, []sample{{0, 0}, {0.5, 0}, {3.5, 30}, {4, 40}, {4.5, 45}}, 1,
			// a period before 5h is 1h, in a gap of 6 steps of half an hour
			0, false},
		{"a horizon of a period", 1, 1, twoPeriods, 4, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &seasonal{period: period, seasons: tc.seasons, w: tc.w}
			for _, x := range tc.samples {
				s.observe(hour(x.h), x.v)
			}
			got, ok := s.Predict(tc.h)
			if ok != tc.ok || ok && math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("Predict(%d) = %v, %v; want %v, %v", tc.h, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestSeasonalSeasoned checks that the seasonal centre counts two periods
// from its first sample, however many it keeps, and that samples out of
// order are not placed.
func TestSeasonalSeasoned(t *testing.T) {
	s := &seasonal{period: time.Hour, seasons: 1, w: 1}
	for i := range 24 {
		if s.seasoned() {
			t.Fatalf("seasoned after %d of 24 samples of 5 minutes", i)
		}
		s.observe(t0.Add(time.Duration(i)*5*time.Minute), float64(i))
	}
	s.observe(t0.Add(2*time.Hour), 24)
	if !s.seasoned() {
		t.Fatal("not seasoned after two periods")
	}
	if n := len(s.hist); n > 14 {
		t.Errorf("keeps %d samples, want at most a period and one", n)
	}
	n := len(s.hist)
	s.observe(t0.Add(time.Hour), 99)
	if len(s.hist) != n {
		t.Error("a sample out of order was placed in the season")
	}
}

// TestConformalSeasonalChallenger runs a ConformalPeak on 5-minute series
// of eight days and checks when the seasonal candidates are used: never
// before two days, most of the time on a series whose daily jumps no level
// or trend foresees, and hardly ever on series with no daily shape, where a
// seasonal forecast adds a past day's noise. (A smooth daily wave is left
// to the damped trends, which follow it as closely.)
func TestConformalSeasonalChallenger(t *testing.T) {
	const perDay = 288
	const n = 8 * perDay
	for _, tc := range []struct {
		name     string
		gen      func(r *rand.Rand, i int, prev float64) float64
		min, max float64 // the share of samples after day 3 that use a seasonal candidate
	}{
		{"daily steps", func(r *rand.Rand, i int, _ float64) float64 {
			// 20 at night, 80 from 9:00 to 18:00: the shape of NAB's
			// art_daily series, whose jumps a level cannot foresee
			v := 20.0
			if h := i % perDay; h >= 108 && h < 216 {
				v = 80
			}
			return v + 2*r.NormFloat64()
		}, 0.8, 1},
		{"daily batch", func(r *rand.Rand, i int, _ float64) float64 {
			// a job that triples the demand for half an hour at 2:00
			v := 100.0
			if h := i % perDay; h >= 24 && h < 30 {
				v = 300
			}
			return v + 5*r.NormFloat64()
		}, 0.8, 1},
		{"random walk", func(r *rand.Rand, i int, prev float64) float64 {
			if i == 0 {
				return 500
			}
			return max(1, prev+5*r.NormFloat64())
		}, 0, 0.05},
		{"white noise", func(r *rand.Rand, _ int, _ float64) float64 {
			return max(0, 100+10*r.NormFloat64())
		}, 0, 0.05},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, 7))
			c, err := NewConformalPeak(DefaultConformal(2))
			if err != nil {
				t.Fatal(err)
			}
			firstSeasonal := len(c.centres) - len(c.seasonal)
			var v float64
			var used, counted int
			for i := range n {
				v = tc.gen(r, i, v)
				c.Observe(t0.Add(time.Duration(i)*5*time.Minute), v)
				seasonal := c.best[atPeak]/nUnits >= firstSeasonal || c.best[atEnd]/nUnits >= firstSeasonal
				if seasonal && i < 2*perDay {
					t.Fatalf("a seasonal candidate used at sample %d, before two days", i)
				}
				if i >= 3*perDay {
					counted++
					if c.best[atPeak]/nUnits >= firstSeasonal {
						used++
					}
				}
			}
			share := float64(used) / float64(counted)
			t.Logf("seasonal share %.2f", share)
			if share < tc.min || share > tc.max {
				t.Errorf("a seasonal candidate used for %.2f of the peaks after day 3, want %.2f to %.2f", share, tc.min, tc.max)
			}
		})
	}
}

// TestConformalForeseesDailyJump checks what the seasonal candidate is
// for: on a series that jumps at the same time each day, the peak's
// 0.9-quantile issued just before the jump covers it once a few days are
// in, where a level (the forecast without seasons) stays at the night's.
func TestConformalForeseesDailyJump(t *testing.T) {
	const perDay = 288
	const jump = 108 // 9:00
	r := rand.New(rand.NewPCG(3, 3))
	c, err := NewConformalPeak(DefaultConformal(2))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 * perDay {
		v := 20.0
		if h := i % perDay; h >= jump && h < 216 {
			v = 80
		}
		c.Observe(t0.Add(time.Duration(i)*5*time.Minute), v+2*r.NormFloat64())
		if day, h := i/perDay, i%perDay; day >= 4 && h == jump-2 {
			// the horizon is the next two samples: the jump is the second
			_, peak, ok := c.Quantiles(0.9)
			if !ok || peak < 75 {
				t.Errorf("day %d, before the jump: peak 0.9-quantile %.1f, %v; want 75 or more", day, peak, ok)
			}
		}
	}
}

// TestSeasonalHistoryBounded: a centre fed samples far finer than its
// season keeps at most maxSeasonalSamples of them.
func TestSeasonalHistoryBounded(t *testing.T) {
	s := &seasonal{period: day, seasons: 5, w: 1}
	start := time.Unix(0, 0)
	for i := range maxSeasonalSamples + 10_000 {
		s.observe(start.Add(time.Duration(i)*time.Second), float64(i%100))
	}
	if n := len(s.hist); n > maxSeasonalSamples {
		t.Errorf("%d samples kept, want at most %d", n, maxSeasonalSamples)
	}
	if _, ok := s.Predict(1); ok {
		t.Error("a forecast with less than a day of samples kept")
	}
}
