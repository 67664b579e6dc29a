package predict

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/phoenixsre/phoenix"
)

// Limits are the values at or above which a signal counts as failed, in the
// signal's unit (phoenix.SignalMemory 150e6 bytes, SignalLatency 0.5 s,
// SignalErrors 0.05). Every standard signal fails high.
type Limits map[phoenix.Signal]float64

// Config tunes an Engine. Zero values take the defaults below.
type Config struct {
	// Horizon: the Risk is P(some limit is reached within Horizon); default 30s.
	Horizon time.Duration
	// Window: the history a forecast is fitted on; default 60s. A series
	// with no point in the last Window gives no forecast.
	Window time.Duration
	// MinPoints: fewer points in the Window give no forecast and probability
	// 0; default 5. The linear trend needs at least 3.
	MinPoints int
	// Confidence: level of the forecasts' prediction intervals and of the
	// probability's confidence interval; default 0.9.
	Confidence float64
	// NewForecaster makes the forecaster of each new series; nil means
	// NewLinearTrend(Window, Confidence).
	NewForecaster func() Forecaster
}

// Defaults of Config.
const (
	DefaultHorizon    = 30 * time.Second
	DefaultWindow     = 60 * time.Second
	DefaultMinPoints  = 5
	DefaultConfidence = 0.9
)

// Validate reports every field that cannot be used as given. Zero values
// are valid (they mean the default).
func (c Config) Validate() error {
	var errs []error
	if c.Horizon < 0 {
		errs = append(errs, fmt.Errorf("predict horizon %s: must be positive (or 0 for %s)", c.Horizon, DefaultHorizon))
	}
	if c.Window < 0 {
		errs = append(errs, fmt.Errorf("predict window %s: must be positive (or 0 for %s)", c.Window, DefaultWindow))
	}
	if c.MinPoints < 0 || (c.MinPoints > 0 && c.MinPoints < 3 && c.NewForecaster == nil) {
		errs = append(errs, fmt.Errorf("predict min points %d: the linear trend needs at least 3 (or 0 for %d)", c.MinPoints, DefaultMinPoints))
	}
	if c.Confidence != 0 && !(c.Confidence > 0 && c.Confidence < 1) {
		errs = append(errs, fmt.Errorf("predict confidence %v: must be between 0 and 1 exclusive, such as 0.9 (or 0 for %v)", c.Confidence, DefaultConfidence))
	}
	return errors.Join(errs...)
}

// withDefaults replaces zero and invalid fields by their defaults, so an
// Engine built from an unvalidated Config still behaves.
func (c Config) withDefaults() Config {
	if c.Horizon <= 0 {
		c.Horizon = DefaultHorizon
	}
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.MinPoints <= 0 {
		c.MinPoints = DefaultMinPoints
	}
	if !(c.Confidence > 0 && c.Confidence < 1) || math.IsNaN(c.Confidence) {
		c.Confidence = DefaultConfidence
	}
	if c.NewForecaster == nil {
		window, confidence := c.Window, c.Confidence
		c.NewForecaster = func() Forecaster { return NewLinearTrend(window, confidence) }
	}
	return c
}
