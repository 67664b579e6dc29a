// Package predict turns each component's signal history into a Risk: the
// probability that it fails within a horizon, with a confidence interval,
// the expected lead time and the signals behind it.
//
// An Engine keeps one streaming Forecaster per (component, signal) and a set
// of limits per component; a signal "fails" when it reaches its limit. The
// foundation forecaster is LinearTrend, a least-squares line over a sliding
// window; later forecasters (Holt-Winters, LSTM) plug in through the
// Forecaster interface, and anomaly detectors beside it.
package predict
