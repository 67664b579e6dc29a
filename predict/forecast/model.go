package forecast

// Model is a streaming point forecaster of one regularly sampled series.
type Model interface {
	// Update adds the next observation.
	Update(v float64)
	// Predict forecasts h >= 1 steps after the newest observation; ok is
	// false while the model has too little data.
	Predict(h int) (v float64, ok bool)
}

// SeasonalNaive forecasts the value one season before the target (the
// newest value when Period is 1 or less): the benchmark of MASE.
type SeasonalNaive struct {
	Period int
	hist   []float64 // the last Period values
}

var _ Model = (*SeasonalNaive)(nil)

// Update adds v.
func (s *SeasonalNaive) Update(v float64) {
	m := max(s.Period, 1)
	s.hist = append(s.hist, v)
	if len(s.hist) > m {
		s.hist = s.hist[len(s.hist)-m:]
	}
}

// Predict returns y[t+h-m*ceil(h/m)].
func (s *SeasonalNaive) Predict(h int) (float64, bool) {
	m := max(s.Period, 1)
	if len(s.hist) < m || h < 1 {
		return 0, false
	}
	k := (h - 1) % m // steps into the season of the target
	return s.hist[k], true
}
