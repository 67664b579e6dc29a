package predict

import (
	"math"
	"time"

	"gonum.org/v1/gonum/stat/distuv"
)

// Forecast is a forecaster's view of a series at some lead time.
type Forecast struct {
	Mean float64 // point forecast
	// Lo and Hi bound a prediction interval at the forecaster's confidence
	// level: where the observed value should fall.
	Lo, Hi float64
	// Sigma is the scale of the forecast distribution, parameter
	// uncertainty included: the standard deviation of a normal, or the scale
	// of a Student t when DF > 0.
	Sigma float64
	// DF is the degrees of freedom of a Student t forecast distribution,
	// which a model with an estimated variance has; 0 means normal.
	DF float64
}

// Forecaster is a streaming model of one series.
type Forecaster interface {
	// Observe adds a point. Points must come in time order; a forecaster may
	// drop one older than its newest.
	Observe(t time.Time, v float64)
	// Forecast predicts the value ahead of the newest observed point; false
	// when the model has too little data to say anything.
	Forecast(ahead time.Duration) (Forecast, bool)
}

// TrendBounder is the optional ability of a forecaster with a trend to
// forecast with that trend held at the lower and upper bound of its
// confidence interval. Sigma then leaves out the trend's own uncertainty.
// The Engine uses it for the confidence interval of a probability.
type TrendBounder interface {
	TrendBounds(ahead time.Duration) (lower, upper Forecast, ok bool)
}

// Sizer is the optional ability to tell how many points a forecaster is
// fitted on; the Engine uses it to enforce MinPoints and explain why there
// is no forecast.
type Sizer interface {
	Len() int
}

var (
	_ Forecaster   = (*LinearTrend)(nil)
	_ TrendBounder = (*LinearTrend)(nil)
	_ Sizer        = (*LinearTrend)(nil)
)

// maxTrendPoints bounds a LinearTrend's memory whatever the point rate.
const maxTrendPoints = 4096

// LinearTrend is a local linear trend: an ordinary least-squares line fitted
// on the points of the last window, on their real (irregular) timestamps.
//
// Least squares rather than Holt's linear smoothing: the window is an exact,
// explainable span; the fit has no smoothing constants to tune per signal;
// and it gives the slope's standard error in closed form, which the
// probability's confidence interval needs. Its cost, a pass over the window
// per new point, is small for windows of seconds to minutes.
//
// A forecast at time x is Student t with n-2 degrees of freedom around the
// line, with scale² s²(1 + 1/n + (x-x̄)²/Sxx): residual noise plus the
// uncertainty of the level and of the slope, which grows with the lead time.
// That is the exact predictive distribution of a least-squares line whose
// noise variance is estimated; a normal would claim too much certainty from
// the handful of points a young series has. A LinearTrend is not safe for
// concurrent use.
type LinearTrend struct {
	window time.Duration
	conf   float64

	pts    []point // time order, within window of the newest
	crit   critical
	fit    fit
	fitted bool
	tq     struct { // cached Student t quantile for the slope interval
		df int
		q  float64
	}
}

type point struct {
	t time.Time
	v float64
}

// fit is a line through the window: mean level at mean time x̄ (seconds
// relative to the newest point, so x̄ <= 0) and slope per second.
type fit struct {
	ok          bool
	n           int
	xbar, level float64
	slope       float64
	s2          float64 // residual variance, df degrees of freedom
	sxx         float64 // Σ(x-x̄)², pooled within segments for a step
	df          int     // n-2 for a line, n-3 for a line with a step
	nLevel      int     // points the level is the mean of
}

// NewLinearTrend returns a linear trend fitted on the last window, with
// prediction intervals at the confidence level (0.9 if outside (0,1)).
func NewLinearTrend(window time.Duration, confidence float64) *LinearTrend {
	if !(confidence > 0 && confidence < 1) {
		confidence = DefaultConfidence
	}
	return &LinearTrend{window: window, conf: confidence}
}

// Observe adds a point. Non-finite values and points older than the newest
// are dropped; points equal in time are kept.
func (l *LinearTrend) Observe(t time.Time, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	if n := len(l.pts); n > 0 && t.Before(l.pts[n-1].t) {
		return
	}
	l.pts = append(l.pts, point{t: t, v: v})
	oldest := t.Add(-l.window)
	cut := 0
	for cut < len(l.pts) && l.pts[cut].t.Before(oldest) {
		cut++
	}
	cut = max(cut, len(l.pts)-maxTrendPoints)
	if cut > 0 {
		kept := copy(l.pts, l.pts[cut:])
		l.pts = l.pts[:kept]
	}
	l.fitted = false
}

// Len is the number of points in the window.
func (l *LinearTrend) Len() int { return len(l.pts) }

// Forecast predicts the value ahead of the newest point. It needs three
// points spread over time.
func (l *LinearTrend) Forecast(ahead time.Duration) (Forecast, bool) {
	f := l.current()
	if !f.ok {
		return Forecast{}, false
	}
	dx := ahead.Seconds() - f.xbar
	mean := f.level + f.slope*dx
	sigma := math.Sqrt(f.s2 * (1 + 1/float64(f.nLevel) + dx*dx/f.sxx))
	return l.interval(mean, sigma, f.df), true
}

// TrendBounds forecasts with the slope at the bounds of its confidence
// interval (Student t, n-2 degrees of freedom), leaving in Sigma the noise
// and the level's uncertainty only.
func (l *LinearTrend) TrendBounds(ahead time.Duration) (lower, upper Forecast, ok bool) {
	f := l.current()
	if !f.ok {
		return Forecast{}, Forecast{}, false
	}
	dx := ahead.Seconds() - f.xbar
	half := l.tQuantile(f.df) * math.Sqrt(f.s2/f.sxx)
	sigma := math.Sqrt(f.s2 * (1 + 1/float64(f.nLevel)))
	lower = l.interval(f.level+(f.slope-half)*dx, sigma, f.df)
	upper = l.interval(f.level+(f.slope+half)*dx, sigma, f.df)
	return lower, upper, true
}

func (l *LinearTrend) interval(mean, sigma float64, df int) Forecast {
	q := l.tQuantile(df)
	return Forecast{Mean: mean, Lo: mean - q*sigma, Hi: mean + q*sigma, Sigma: sigma, DF: float64(df)}
}

// tQuantile is the two-sided Student t quantile at the confidence level,
// cached because the degrees of freedom stay put once the window is full.
func (l *LinearTrend) tQuantile(df int) float64 {
	if l.tq.df != df {
		l.tq.df = df
		l.tq.q = distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(df)}.Quantile((1 + l.conf) / 2)
	}
	return l.tq.q
}

// current returns the fit of the window, computing it once per change.
func (l *LinearTrend) current() fit {
	if !l.fitted {
		if l.crit == nil {
			l.crit = critical{}
		}
		l.fit = fitWindow(l.crit, l.pts)
		l.fitted = true
	}
	return l.fit
}

// fitLine is two-pass least squares on times relative to the newest point,
// which keeps the sums well conditioned whatever the epoch. No fit (ok
// false) with fewer than three points or all at one time.
func fitLine(pts []point) fit {
	n := len(pts)
	if n < 3 {
		return fit{}
	}
	ref := pts[n-1].t
	var sx, sv float64
	for _, p := range pts {
		sx += p.t.Sub(ref).Seconds()
		sv += p.v
	}
	f := fit{n: n, xbar: sx / float64(n), level: sv / float64(n), df: n - 2, nLevel: n}
	var sxy float64
	for _, p := range pts {
		dx := p.t.Sub(ref).Seconds() - f.xbar
		f.sxx += dx * dx
		sxy += dx * (p.v - f.level)
	}
	if !(f.sxx > 0) {
		return fit{}
	}
	f.slope = sxy / f.sxx
	var sse float64
	for _, p := range pts {
		r := p.v - f.level - f.slope*(p.t.Sub(ref).Seconds()-f.xbar)
		sse += r * r
	}
	f.s2 = sse / float64(n-2)
	f.ok = isFinite(f.level) && isFinite(f.slope) && isFinite(f.s2)
	return f
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
