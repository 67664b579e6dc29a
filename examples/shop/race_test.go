//go:build race

package shop

// raceEnabled: the race detector's shadow memory inflates and pins
// resident memory, so tests that measure RSS cannot run under it.
const raceEnabled = true
