package anomaly

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/phoenixsre/phoenix/predict/nab"
)

// SyntheticCorpus generates the labelled training corpus the fixed default
// threshold is chosen on, so that it is never chosen on the data it is
// scored on. Each of its n series is 4000 five-minute points of a daily
// cycle, a random walk or white noise, at a random level and scale, with
// zero to three injected anomalies of the kinds operations data shows (a
// spike, a level shift, a variance burst, a flat line, a trend, a denser
// train of bursts), each labelled with a NAB window: 10% of the file
// divided among its anomalies, centred on the onset.
func SyntheticCorpus(n int, seed uint64) []SyntheticSeries {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	out := make([]SyntheticSeries, n)
	for i := range out {
		out[i] = synthSeries(rng, fmt.Sprintf("synthetic/series_%02d.csv", i))
	}
	return out
}

// SyntheticSeries is one generated file with its windows.
type SyntheticSeries struct {
	Name    string
	Points  []nab.Point
	Windows []nab.Window
}

func synthSeries(rng *rand.Rand, name string) SyntheticSeries {
	const n = 4000
	start := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	level, scale := rng.Float64()*100, 1+rng.Float64()*20
	noise := scale * (0.05 + 0.3*rng.Float64())
	kind := rng.IntN(3)
	xs := make([]float64, n)
	walk := 0.0
	for i := range xs {
		switch kind {
		case 0:
			xs[i] = level + scale*math.Sin(2*math.Pi*float64(i)/288)
		case 1:
			walk += 0.05 * scale * rng.NormFloat64()
			walk *= 0.995
			xs[i] = level + walk
		default:
			xs[i] = level
		}
		xs[i] += noise * rng.NormFloat64()
	}
	k := rng.IntN(4)
	var onsets []int
	for a := range k {
		// onsets after the probationary 15%, spread so windows do not meet
		lo := 750 + a*(n-750)/max(k, 1)
		hi := 750 + (a+1)*(n-750)/max(k, 1)
		at := lo + (hi-lo)/4 + rng.IntN(max((hi-lo)/2, 1))
		onsets = append(onsets, at)
		inject(rng, xs, at, scale, noise)
	}
	s := SyntheticSeries{Name: name}
	for i, v := range xs {
		s.Points = append(s.Points, nab.Point{Time: start.Add(time.Duration(i) * 5 * time.Minute), Value: v})
	}
	if k > 0 {
		half := n / 10 / k / 2
		for _, at := range onsets {
			s.Windows = append(s.Windows, nab.Window{Start: s.Points[max(at-half, 0)].Time, End: s.Points[min(at+half, n-1)].Time})
		}
	}
	return s
}

func inject(rng *rand.Rand, xs []float64, at int, scale, noise float64) {
	size := scale * (0.5 + 1.5*rng.Float64())
	if rng.IntN(2) == 0 {
		size = -size
	}
	switch rng.IntN(6) {
	case 0: // spike
		xs[at] += 3 * size
	case 1: // level shift
		for i := at; i < len(xs); i++ {
			xs[i] += size
		}
	case 2: // variance burst
		for i := at; i < min(at+60, len(xs)); i++ {
			xs[i] += 4 * noise * rng.NormFloat64()
		}
	case 3: // flat line
		for i := at; i < min(at+100, len(xs)); i++ {
			xs[i] = xs[at]
		}
	case 4: // trend
		for i := at; i < len(xs); i++ {
			xs[i] += size * math.Min(float64(i-at)/100, 2)
		}
	default: // denser bursts
		for i := at; i < min(at+200, len(xs)); i += 10 {
			xs[i] += 2 * math.Abs(size)
		}
	}
}
