// Package nab scores anomaly detectors the way the Numenta Anomaly Benchmark
// (NAB v1.1, its Sweeper) does: labelled anomaly windows reward the earliest
// detection inside them, detections outside cost according to their distance
// after the preceding window, missed windows cost a fixed amount, and the
// corpus total is normalised so that detecting nothing scores 0 and detecting
// every window at its first row scores 100. It reads NAB's data, window and
// result files, writes result files, and finds the threshold that maximises
// a corpus's score per profile (Optimize). See Score for the exact rules and
// how each was settled against NAB's published numbers.
package nab
