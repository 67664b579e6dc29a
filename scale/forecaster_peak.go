package scale

import (
	"math"
	"time"

	"github.com/phoenixsre/phoenix/predict"
	"gonum.org/v1/gonum/stat/distuv"
)

var _ PeakForecaster = (*ForecasterPeak)(nil)

// ForecasterPeak adapts one of the engine's forecasters (predict.Forecaster)
// to a PeakForecaster: the quantile at the end of the horizon is its
// forecast distribution's, and the quantile of the peak is taken as the
// highest of its quantiles at each step. That is a bound on the peak at a
// level below p when the steps' errors are not perfectly correlated;
// ConformalPeak calibrates the peak itself.
type ForecasterPeak struct {
	F predict.Forecaster
	// Step is the time between samples, Steps the horizon in samples.
	Step  time.Duration
	Steps int
}

// Observe feeds the forecaster.
func (f *ForecasterPeak) Observe(at time.Time, v float64) { f.F.Observe(at, v) }

// Quantiles reads the forecasts 1..Steps samples ahead (normal, or Student
// t when the forecast has degrees of freedom).
func (f *ForecasterPeak) Quantiles(p float64) (end, peak float64, ok bool) {
	if !(p > 0 && p < 1) {
		return 0, 0, false
	}
	peak = math.Inf(-1)
	for h := 1; h <= max(f.Steps, 1); h++ {
		fc, ok := f.F.Forecast(time.Duration(h) * f.Step)
		if !ok {
			return 0, 0, false
		}
		z := distuv.UnitNormal.Quantile(p)
		if fc.DF > 0 {
			z = distuv.StudentsT{Mu: 0, Sigma: 1, Nu: fc.DF}.Quantile(p)
		}
		q := fc.Mean + z*fc.Sigma
		if math.IsNaN(q) || math.IsInf(q, 0) {
			return 0, 0, false
		}
		end, peak = q, max(peak, q)
	}
	return end, peak, true
}
