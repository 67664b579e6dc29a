package traffic

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Confirmation decides whether a component's primary has failed, from
// several independent signals, so that one flaky signal does not move
// traffic: the proxy's health verdict, the errors its requests met, how long
// telemetry has been silent, and the predicted risk. It is a pure rule: the
// control loop gathers the Evidence and acts on the Verdict.
//
// A failure is confirmed when at least MinSignals signals agree. A risk at
// or above Preemptive confirms on its own, as a pre-emptive switch: the
// prediction is confident enough to move before the failure.
type Confirmation struct {
	MinSignals int           // signals that must agree, default 2
	Errors     int           // failed proxied requests in a row that count as a signal, default 3
	Silence    time.Duration // telemetry silence that counts as a signal, default 5s
	Risk       float64       // predicted probability of failure that counts as a signal, default 0.5
	Preemptive float64       // probability that confirms alone, pre-emptively, default 0.95; above 1 turns it off
}

// Confirmation defaults.
const (
	DefaultMinSignals = 2
	DefaultErrors     = 3
	DefaultSilence    = 5 * time.Second
	DefaultRisk       = 0.5
	DefaultPreemptive = 0.95
)

// WithDefaults returns c with its zero fields set to the defaults.
func (c Confirmation) WithDefaults() Confirmation {
	setDefault(&c.MinSignals, DefaultMinSignals)
	setDefault(&c.Errors, DefaultErrors)
	setDefault(&c.Silence, DefaultSilence)
	setDefault(&c.Risk, DefaultRisk)
	setDefault(&c.Preemptive, DefaultPreemptive)
	return c
}

// Validate reports every problem in c, each naming its field.
func (c Confirmation) Validate() error {
	var errs []error
	if c.MinSignals < 0 || c.MinSignals > 4 {
		errs = append(errs, fmt.Errorf("MinSignals %d: write 1 to 4 (there are four signals)", c.MinSignals))
	}
	if c.Errors < 0 {
		errs = append(errs, fmt.Errorf("Errors %d: must be at least 1", c.Errors))
	}
	if c.Silence < 0 {
		errs = append(errs, fmt.Errorf("Silence %s: must be positive", c.Silence))
	}
	if c.Risk < 0 || c.Risk > 1 {
		errs = append(errs, fmt.Errorf("Risk %g: write a probability between 0 and 1", c.Risk))
	}
	if c.Preemptive < 0 {
		errs = append(errs, fmt.Errorf("Preemptive %g: write a probability, or more than 1 to turn it off", c.Preemptive))
	}
	return errors.Join(errs...)
}

// Evidence is what is known about a component's serving backends at one
// moment. Status.Evidence fills the proxy's part.
type Evidence struct {
	Healthy      bool  // the proxy's health verdict on the active set
	FailedChecks int   // health checks failed in a row
	Errors       int64 // proxied requests failed in a row (connection errors, 5xx)
	// Silence is how long since the last successful telemetry scrape;
	// zero when unknown (it then counts for nothing).
	Silence time.Duration
	Risk    float64 // predicted probability of failure within the horizon
}

// Verdict is Confirm's answer.
type Verdict struct {
	Confirmed  bool     `json:"confirmed"`
	Preemptive bool     `json:"preemptive"` // confirmed on the prediction alone
	Signals    []string `json:"signals"`    // the signals that agreed
	Reason     string   `json:"reason"`
}

// Confirm applies the rule to e. c should have been through WithDefaults.
func (c Confirmation) Confirm(e Evidence) Verdict {
	var signals []string
	if !e.Healthy {
		signals = append(signals, fmt.Sprintf("health checks failing (%d in a row)", e.FailedChecks))
	}
	if e.Errors >= int64(c.Errors) {
		signals = append(signals, fmt.Sprintf("%d requests failed in a row", e.Errors))
	}
	if e.Silence > 0 && e.Silence >= c.Silence {
		signals = append(signals, fmt.Sprintf("telemetry silent for %s", e.Silence.Round(time.Millisecond)))
	}
	if e.Risk >= c.Risk {
		signals = append(signals, fmt.Sprintf("predicted risk %.2f", e.Risk))
	}
	v := Verdict{Signals: signals}
	switch {
	case len(signals) >= c.MinSignals:
		v.Confirmed = true
		v.Reason = fmt.Sprintf("failure confirmed by %d of the %d signals required: %s", len(signals), c.MinSignals, strings.Join(signals, "; "))
	case c.Preemptive <= 1 && e.Risk >= c.Preemptive:
		v.Confirmed, v.Preemptive = true, true
		v.Reason = fmt.Sprintf("pre-emptive: predicted risk %.2f is at or above %.2f", e.Risk, c.Preemptive)
	case len(signals) == 0:
		v.Reason = "no failure signal"
	default:
		v.Reason = fmt.Sprintf("suspected, not confirmed: %d of the %d signals required (%s)", len(signals), c.MinSignals, strings.Join(signals, "; "))
	}
	return v
}

// Evidence is the proxy's part of the evidence from this status, with the
// telemetry silence and the predicted risk the caller knows. The active set
// is healthy while any joined member is; its errors are the fewest of any
// joined member, so one bad replica among good ones is not a failure.
func (s Status) Evidence(silence time.Duration, risk float64) Evidence {
	e := Evidence{Silence: silence, Risk: risk, FailedChecks: s.Active.ConsecutiveFailures, Errors: s.Active.ConsecutiveErrors}
	first := true
	for _, b := range s.Pool {
		if !b.Joined {
			continue
		}
		e.Healthy = e.Healthy || b.Healthy
		if first || b.ConsecutiveErrors < e.Errors {
			e.Errors = b.ConsecutiveErrors
		}
		if first || b.ConsecutiveFailures < e.FailedChecks {
			e.FailedChecks = b.ConsecutiveFailures
		}
		first = false
	}
	if first {
		e.Healthy = s.Active.Healthy
	}
	return e
}
