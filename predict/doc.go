// Package predict turns each component's signal history into a Risk: the
// probability that it fails within a horizon, with a confidence interval,
// the expected lead time and the signals behind it.
//
// An Engine keeps one streaming Forecaster per (component, signal) and a set
// of limits per component; a signal "fails" when it reaches its limit. The
// default forecaster is LinearTrend, a least-squares line over a sliding
// window that restarts at a significant change of trend (changepoint.go), so
// that a leak which has just begun is forecast from its own points. Beside
// the trends, each component has an isolation forest over its behaviour
// (behaviour.go) whose calibrated likelihood moves the probability towards
// the trends' pessimistic bound. The step-based forecasters (Holt-Winters,
// LSTM, conformal intervals) are in predict/forecast, the detectors in
// predict/anomaly, and NAB's scoring in predict/nab.
package predict
