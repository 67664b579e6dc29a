package predict

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/phoenixsre/phoenix"
)

// The reasons are read by people on the dashboard and in the event log:
// values in the signal's natural unit, durations to a tenth of a second.

func noData(sig phoenix.Signal) string {
	return fmt.Sprintf("%s: no data yet", sig)
}

func stale(sig phoenix.Signal, age time.Duration) string {
	return fmt.Sprintf("%s: no data for %s", sig, age.Round(100*time.Millisecond))
}

func overLimit(sig phoenix.Signal, v, limit float64) string {
	return fmt.Sprintf("%s %s is at or over its limit %s", sig, formatValue(sig, v), formatValue(sig, limit))
}

func tooFewPoints(sig phoenix.Signal, v float64, n, need int, window time.Duration) string {
	return fmt.Sprintf("%s %s: %d points in the last %s, a forecast needs %d", sig, formatValue(sig, v), n, window, need)
}

func noForecast(sig phoenix.Signal, v float64) string {
	return fmt.Sprintf("%s %s: no forecast yet (a trend needs at least 3 points at different times)", sig, formatValue(sig, v))
}

// trendReason explains a forecast: "memory 96.2 MB rising 5.1 MB/s, reaches
// 150 MB in 10.6 s" or "... 150 MB not reached within 30s (p=2.1%)".
func trendReason(sig phoenix.Signal, v, limit, perSecond float64, ev signalEval, horizon time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", sig, formatValue(sig, v))
	switch {
	case math.Abs(perSecond)*horizon.Seconds() < 1e-3*math.Max(math.Abs(limit), math.Abs(v)) || !isFinite(perSecond):
		b.WriteString(" steady")
	case perSecond > 0:
		fmt.Fprintf(&b, " rising %s", formatRate(sig, perSecond))
	default:
		fmt.Fprintf(&b, " falling %s", formatRate(sig, -perSecond))
	}
	if ev.crosses {
		fmt.Fprintf(&b, ", reaches %s in %.1f s", formatValue(sig, limit), ev.risk.CrossIn.Seconds())
	} else {
		fmt.Fprintf(&b, ", %s not reached within %s (p=%s)", formatValue(sig, limit), horizon, formatPercent(ev.risk.Probability))
	}
	return b.String()
}

// formatValue writes v in the signal's unit.
func formatValue(sig phoenix.Signal, v float64) string {
	switch sig {
	case phoenix.SignalMemory, phoenix.SignalDisk:
		return formatBytes(v)
	case phoenix.SignalCPU:
		return num(v) + " cores"
	case phoenix.SignalLatency:
		if math.Abs(v) < 1 {
			return num(v*1000) + " ms"
		}
		return num(v) + " s"
	case phoenix.SignalErrors:
		return formatPercent(v)
	case phoenix.SignalRate:
		return num(v) + " req/s"
	}
	return num(v)
}

// formatRate writes a rate of change per second.
func formatRate(sig phoenix.Signal, perSecond float64) string {
	if sig == phoenix.SignalRate {
		return num(perSecond) + " req/s per s"
	}
	return formatValue(sig, perSecond) + "/s"
}

func formatBytes(v float64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	i := 0
	for math.Abs(v) >= 1000 && i < len(units)-1 {
		v /= 1000
		i++
	}
	return num(v) + " " + units[i]
}

func formatPercent(p float64) string {
	if p > 0 && p < 0.001 {
		return "<0.1%"
	}
	return num(p*100) + "%"
}

// num writes about three significant digits, in exponent form only for
// magnitudes below 0.01.
func num(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100 || a == 0:
		return fmt.Sprintf("%.0f", v)
	case a >= 1:
		return fmt.Sprintf("%.1f", v)
	case a >= 0.01:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.2g", v)
	}
}
