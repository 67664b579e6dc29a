// Package forecast holds Phoenix's streaming forecasters of one regularly
// sampled series: additive Holt-Winters with its season found in the data
// (HoltWinters), a small LSTM trained on the series' own history (LSTM),
// and the conformal calibration that turns any of them into prediction
// intervals with the coverage they claim (Conformal). Evaluate replays a
// series through a forecaster and measures it against seasonal naive (MASE)
// and by the share of outcomes inside its intervals.
//
// Models count steps, not seconds: the caller feeds one value per sampling
// interval. Every model learns only from what it has been given.
package forecast
