package forecast

import "math"

// HoltWintersConfig tunes a HoltWinters model; zero fields take defaults.
type HoltWintersConfig struct {
	// History is how many recent values are kept to find the season and
	// fit the smoothing constants (default 2016, a week of 5-minute points).
	History int
	// Refit is how many new values pass between fits (default 288).
	Refit int
	// MaxPeriod bounds the season searched for (default History/3).
	MaxPeriod int
	// MinFit is how many values the first fit waits for (default 48).
	MinFit int
}

func (c HoltWintersConfig) withDefaults() HoltWintersConfig {
	if c.History <= 0 {
		c.History = 2016
	}
	if c.Refit <= 0 {
		c.Refit = 288
	}
	if c.MaxPeriod <= 0 || c.MaxPeriod > c.History/3 {
		c.MaxPeriod = c.History / 3
	}
	if c.MinFit <= 0 {
		c.MinFit = 48
	}
	return c
}

// HoltWinters is additive Holt-Winters with a damped trend, in the error
// correction form of ETS(A,Ad,A) (Hyndman et al., Forecasting with
// Exponential Smoothing, 2008):
//
//	e = y - (l + φb + s[t-m])
//	l += φb + αe;  b = φb + βe;  s[t] = s[t-m] + γe
//
// The season m is found in the data (DetectPeriod) and the constants are
// chosen on a grid by one-step mean absolute error over the recent history,
// both again every Refit values; when no season is found, or the seasonal
// fit does no better, the model is damped Holt (the robust fallback). The
// error that updates the state is clipped at 3 robust scales (Huber's ψ,
// after Gelper, Fried and Croux, "Robust forecasting with exponential and
// Holt-Winters smoothing", 2010), so one outlier does not drag the level.
//
// Grid search rather than a numerical optimiser: the one-step error surface
// of exponential smoothing is flat and multimodal, a coarse grid finds its
// useful region in a bounded, predictable time, and the fit repeats as the
// series drifts anyway.
type HoltWinters struct {
	cfg   HoltWintersConfig
	hist  []float64
	since int
	p     hwParams
	st    hwState
	ready bool
}

type hwParams struct {
	alpha, beta, gamma, phi float64
	m                       int
}

type hwState struct {
	l, b   float64
	s      []float64 // ring of m seasonal terms; s[t%m] is the next one
	t      int
	scale  float64 // EWMA of |e|, for clipping
	warmed bool
}

var _ Model = (*HoltWinters)(nil)

// NewHoltWinters returns an empty model.
func NewHoltWinters(cfg HoltWintersConfig) *HoltWinters {
	return &HoltWinters{cfg: cfg.withDefaults()}
}

// Period is the season in use, 0 for none.
func (h *HoltWinters) Period() int { return h.p.m }

// Update adds v; non-finite values are skipped.
func (h *HoltWinters) Update(v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	h.hist = append(h.hist, v)
	if len(h.hist) > h.cfg.History {
		h.hist = h.hist[len(h.hist)-h.cfg.History:]
	}
	h.since++
	if (!h.ready && len(h.hist) >= h.cfg.MinFit) || (h.ready && h.since >= h.cfg.Refit) {
		h.fit()
		return
	}
	if h.ready {
		h.st.step(h.p, v)
	}
}

// Predict forecasts h steps ahead.
func (h *HoltWinters) Predict(k int) (float64, bool) {
	if !h.ready || k < 1 {
		return 0, false
	}
	v := h.st.predict(h.p, k)
	return v, !math.IsNaN(v) && !math.IsInf(v, 0)
}

func (h *HoltWinters) fit() {
	h.since = 0
	m := DetectPeriod(h.hist, h.cfg.MaxPeriod)
	best, bestErr := hwParams{}, math.Inf(1)
	var bestSt hwState
	for _, period := range []int{0, m} {
		if period == 0 && m > 0 && bestErr < math.Inf(1) {
			continue
		}
		if period > 0 && len(h.hist) < 2*period+2 {
			continue
		}
		for _, p := range grid(period) {
			st, err := replay(p, h.hist)
			if err < bestErr {
				best, bestErr, bestSt = p, err, st
			}
		}
	}
	if math.IsInf(bestErr, 1) {
		return
	}
	h.p, h.st, h.ready = best, bestSt, true
}

func grid(m int) []hwParams {
	var out []hwParams
	gammas := []float64{0}
	if m > 0 {
		gammas = []float64{0.05, 0.2, 0.5}
	}
	for _, a := range []float64{0.05, 0.2, 0.5, 0.9} {
		for _, bf := range []float64{0, 0.05, 0.3} {
			for _, gf := range gammas {
				for _, phi := range []float64{0.9, 0.98} {
					out = append(out, hwParams{alpha: a, beta: a * bf, gamma: (1 - a) * gf, phi: phi, m: m})
				}
			}
		}
	}
	return out
}

// replay initialises on the first values and runs p over xs, returning the
// final state and the mean absolute one-step error after the first season.
func replay(p hwParams, xs []float64) (hwState, float64) {
	var st hwState
	start := st.init(p, xs)
	var sum float64
	var n int
	for i := start; i < len(xs); i++ {
		f := st.predict(p, 1)
		if i >= start+max(p.m, 8) {
			sum += math.Abs(xs[i] - f)
			n++
		}
		st.step(p, xs[i])
	}
	if n == 0 || math.IsNaN(sum) {
		return st, math.Inf(1)
	}
	return st, sum / float64(n)
}

// init sets the state from the first values and returns how many it used.
func (st *hwState) init(p hwParams, xs []float64) int {
	if p.m == 0 {
		st.l = xs[0]
		if len(xs) > 1 {
			st.b = 0
		}
		st.scale = 0
		return 1
	}
	m := p.m
	var m1, m2 float64
	for i := range m {
		m1 += xs[i]
		m2 += xs[m+i]
	}
	m1, m2 = m1/float64(m), m2/float64(m)
	st.s = make([]float64, m)
	for i := range m {
		st.s[i] = (xs[i] - m1 + xs[m+i] - m2) / 2
	}
	st.b = (m2 - m1) / float64(m)
	st.l = m2 + st.b*float64(m-1)/2
	st.t = 0 // s[0] is the season of xs[2m]
	return 2 * m
}

func (st *hwState) season(p hwParams, k int) float64 {
	if p.m == 0 {
		return 0
	}
	return st.s[(st.t+k-1)%p.m]
}

func (st *hwState) predict(p hwParams, k int) float64 {
	damp, f := 0.0, 1.0
	for range k {
		f *= p.phi
		damp += f
	}
	return st.l + damp*st.b + st.season(p, k)
}

func (st *hwState) step(p hwParams, y float64) {
	e := y - st.predict(p, 1)
	if st.warmed && st.scale > 0 {
		c := 3 * st.scale
		e = math.Max(-c, math.Min(c, e))
	}
	if st.scale == 0 {
		st.scale = math.Abs(e)
	} else {
		st.scale = 0.95*st.scale + 0.05*math.Abs(e)
	}
	st.warmed = true
	l := st.l + p.phi*st.b + p.alpha*e
	st.b = p.phi*st.b + p.beta*e
	st.l = l
	if p.m > 0 {
		i := st.t % p.m
		st.s[i] += p.gamma * e
		st.t = (st.t + 1) % p.m
	}
}
