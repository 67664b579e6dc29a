// Package anomaly holds Phoenix's anomaly detectors and the calibration
// that turns their raw scores into likelihoods.
//
// Novelty is the streaming univariate detector (the one "phoenix eval nab"
// scores): how far a value, its moving mean, or the moving mean of its
// change since the same time a day before, lies from every one seen, in
// units of the range seen. IsolationForest scores a component's
// multivariate feature vectors against its baseline, and Calibrator maps
// any raw score to 1 - P(a baseline score at least as high), with a
// generalised Pareto tail past the baseline's largest score.
package anomaly
