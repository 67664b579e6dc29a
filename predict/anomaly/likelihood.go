package anomaly

// Calibrator turns raw anomaly scores (larger is stranger) into calibrated
// likelihoods: 1 - P(a baseline score >= s), the baseline being the scores
// of the last n points the detector called normal. Ranks give the
// probability within the baseline's range and a generalised Pareto tail
// beyond it (see upperTail), so that 0.999 means one baseline point in a
// thousand scores as high, whatever the detector's raw scale.
type Calibrator struct {
	tail *upperTail
}

// NewCalibrator keeps the last n baseline scores (n <= 0 means 1000).
func NewCalibrator(n int) *Calibrator {
	if n <= 0 {
		n = 1000
	}
	return &Calibrator{tail: newUpperTail(n, 0.05, 16)}
}

// Add records a baseline score.
func (c *Calibrator) Add(s float64) {
	if s == s { // not NaN
		c.tail.Add(s)
	}
}

// Len is the number of baseline scores held.
func (c *Calibrator) Len() int { return c.tail.w.Len() }

// Likelihood is 1 - P(baseline score >= s), 0 with no baseline.
func (c *Calibrator) Likelihood(s float64) float64 {
	if c.tail.w.Len() == 0 || s != s {
		return 0
	}
	return 1 - c.tail.P(s)
}
