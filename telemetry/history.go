package telemetry

import (
	"math"
	"sort"
	"sync"
	"time"

	"github.com/phoenixsre/phoenix"
)

// Point is one value of a signal at one time.
type Point struct {
	T time.Time
	V float64
}

// Defaults of NewHistory.
const (
	DefaultRetention = time.Hour
	DefaultMaxPoints = 3600 // one hour at the default 1s interval
)

// History keeps the recent points of every (component, environment, signal)
// series in memory. Each series holds at most maxPoints points, none older
// than retention before its newest point: bounds follow the data's own
// timestamps, not the wall clock, so a series that stops receiving points
// keeps its last window until Forget. History is safe for concurrent use.
type History struct {
	retention time.Duration
	maxPoints int

	mu     sync.RWMutex
	series map[seriesKey][]Point // each sorted by T
}

type seriesKey struct {
	c   phoenix.ComponentID
	env phoenix.Environment
	s   phoenix.Signal
}

// NewHistory returns an empty History. A retention or maxPoints of zero or
// less takes DefaultRetention or DefaultMaxPoints.
func NewHistory(retention time.Duration, maxPoints int) *History {
	if retention <= 0 {
		retention = DefaultRetention
	}
	if maxPoints <= 0 {
		maxPoints = DefaultMaxPoints
	}
	return &History{retention: retention, maxPoints: maxPoints, series: make(map[seriesKey][]Point)}
}

var _ SignalWriter = (*History)(nil)

// Append records values at time at for t's component and environment.
// Non-finite values are dropped. A point older than a series' newest is
// inserted in time order; one older than the retention window is dropped.
// It never fails: the error is there to satisfy SignalWriter.
func (h *History) Append(t Target, at time.Time, values map[phoenix.Signal]float64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		k := seriesKey{c: t.Component, env: t.Environment, s: s}
		h.series[k] = h.appendPoint(h.series[k], Point{T: at, V: v})
	}
	return nil
}

func (h *History) appendPoint(pts []Point, p Point) []Point {
	n := len(pts)
	switch {
	case n == 0 || !p.T.Before(pts[n-1].T):
		pts = append(pts, p)
	case p.T.Before(pts[n-1].T.Add(-h.retention)):
		return pts
	default:
		// Out of order but within retention: keep the slice sorted.
		i := sort.Search(n, func(i int) bool { return pts[i].T.After(p.T) })
		pts = append(pts, Point{})
		copy(pts[i+1:], pts[i:])
		pts[i] = p
	}
	cut := h.expired(pts)
	if over := len(pts) - cut - h.maxPoints; over > 0 {
		cut += over
	}
	if cut == 0 {
		return pts
	}
	// Copy down rather than re-slice so the backing array does not creep
	// forward and grow without bound.
	kept := copy(pts, pts[cut:])
	clear(pts[kept:])
	return pts[:kept]
}

// expired is the number of leading points older than retention before the
// newest point.
func (h *History) expired(pts []Point) int {
	oldest := pts[len(pts)-1].T.Add(-h.retention)
	return sort.Search(len(pts), func(i int) bool { return !pts[i].T.Before(oldest) })
}

// Range returns a copy of the points of one series at or after since, oldest
// first; nil if there are none.
func (h *History) Range(c phoenix.ComponentID, env phoenix.Environment, s phoenix.Signal, since time.Time) []Point {
	h.mu.RLock()
	defer h.mu.RUnlock()
	pts := h.series[seriesKey{c: c, env: env, s: s}]
	i := sort.Search(len(pts), func(i int) bool { return !pts[i].T.Before(since) })
	if i == len(pts) {
		return nil
	}
	return append([]Point(nil), pts[i:]...)
}

// Forget drops every series of the component in the environment, as when its
// instance is replaced or it leaves the application.
func (h *History) Forget(c phoenix.ComponentID, env phoenix.Environment) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k := range h.series {
		if k.c == c && k.env == env {
			delete(h.series, k)
		}
	}
}
