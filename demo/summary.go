package demo

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/store"
)

// Summary is what a demo run measured. Times are null when the moment did
// not happen (no prediction before a crash, no release after a switch).
type Summary struct {
	Scenario string `json:"scenario"`
	// StartedAt is when the run began; the timeline counts from it.
	StartedAt   time.Time  `json:"started_at"`
	PredictedAt *time.Time `json:"predicted_at"`
	PrewarmedAt *time.Time `json:"prewarmed_at"`
	// FailedAt is when the primary process died, as its parent saw it.
	FailedAt *time.Time `json:"failed_at"`
	// DetectedAt is when Phoenix confirmed the failure (health checks).
	DetectedAt *time.Time `json:"detected_at"`
	SwitchedAt *time.Time `json:"switched_at"`
	ReleasedAt *time.Time `json:"released_at"`
	// LeadTimeS is FailedAt - PrewarmedAt: how long the replica was ready
	// before it was needed.
	LeadTimeS            *float64 `json:"lead_time_s"`
	Switched             bool     `json:"switched"`
	SwitchedPreemptively bool     `json:"switched_preemptively"`
	RequestsTotal        int64    `json:"requests_total"`
	RequestsFailed       int64    `json:"requests_failed"`
	// FailureReasons counts failed requests by what the client saw.
	FailureReasons map[string]int `json:"failure_reasons,omitempty"`
	KeysWritten    int64          `json:"keys_written"`
	KeysLost       int64          `json:"keys_lost"`
	// SecondaryInstanceSeconds is what pre-warming cost: the lifetimes of
	// every replica Phoenix started.
	SecondaryInstanceSeconds float64 `json:"secondary_instance_seconds"`
	// HotStandbyInstanceSeconds is what a hot standby of every component
	// would have cost over the same run.
	HotStandbyInstanceSeconds float64 `json:"hot_standby_instance_seconds"`
	DurationS                 float64 `json:"duration_s"`
	// Edges is the dependency graph at the end, "from->to (sources)".
	Edges           []string `json:"edges,omitempty"`
	ExpectationsMet bool     `json:"expectations_met"`
	Unmet           []string `json:"unmet,omitempty"`
}

// check compares the run with what its scenario promises.
func (s *Summary) check() {
	var unmet []string
	want := func(ok bool, what string) {
		if !ok {
			unmet = append(unmet, what)
		}
	}
	want(s.KeysLost == 0, "no acknowledged write lost")
	switch s.Scenario {
	case "leak", "leak" + killOnPrewarm:
		want(s.RequestsFailed == 0, "no failed request")
		want(s.Switched, "traffic switched to the replica")
		want(s.PrewarmedAt != nil && s.FailedAt != nil && s.PrewarmedAt.Before(*s.FailedAt), "replica pre-warmed before the failure")
	case "crash":
		want(s.Switched, "traffic switched to the replica")
	case "false-alarm":
		want(s.RequestsFailed == 0, "no failed request")
		want(!s.Switched, "no switch")
		want(s.PredictedAt != nil, "the climb was seen as a risk")
		want(s.PrewarmedAt == nil || s.ReleasedAt != nil, "replica released after the risk passed")
	}
	s.Unmet = unmet
	s.ExpectationsMet = len(unmet) == 0
}

// Print writes the summary for people.
func (s Summary) Print(w io.Writer) {
	ts := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return fmt.Sprintf("%+6.2fs  (%s)", t.Sub(s.StartedAt).Seconds(), t.Format(time.RFC3339Nano))
	}
	fmt.Fprintf(w, "\nSummary of scenario %q\n", s.Scenario)
	fmt.Fprintf(w, "  predicted      %s\n  pre-warmed     %s\n  failed         %s\n  detected       %s\n  switched       %s%s\n  released       %s\n",
		ts(s.PredictedAt), ts(s.PrewarmedAt), ts(s.FailedAt), ts(s.DetectedAt), ts(s.SwitchedAt),
		map[bool]string{true: " (pre-emptive)", false: ""}[s.SwitchedPreemptively], ts(s.ReleasedAt))
	if s.LeadTimeS != nil {
		if *s.LeadTimeS >= 0 {
			fmt.Fprintf(w, "  lead time      %.1f s (the replica was ready before the failure)\n", *s.LeadTimeS)
		} else {
			fmt.Fprintf(w, "  lead time      %.1f s (no warning: the replica was built after the failure)\n", *s.LeadTimeS)
		}
	}
	fmt.Fprintf(w, "  requests       %d sent, %d failed\n", s.RequestsTotal, s.RequestsFailed)
	reasons := make([]string, 0, len(s.FailureReasons))
	for r, n := range s.FailureReasons {
		reasons = append(reasons, fmt.Sprintf("%s x%d", r, n))
	}
	sort.Strings(reasons)
	if len(reasons) > 0 {
		fmt.Fprintf(w, "                 (%s)\n", strings.Join(reasons, ", "))
	}
	fmt.Fprintf(w, "  keys           %d written and acknowledged, %d lost\n", s.KeysWritten, s.KeysLost)
	pct := 0.0
	if s.HotStandbyInstanceSeconds > 0 {
		pct = 100 * s.SecondaryInstanceSeconds / s.HotStandbyInstanceSeconds
	}
	fmt.Fprintf(w, "  cost           %.1f instance-seconds in the secondary, vs %.1f for a hot standby of every component (%.0f%%)\n",
		s.SecondaryInstanceSeconds, s.HotStandbyInstanceSeconds, pct)
	if s.ExpectationsMet {
		fmt.Fprintf(w, "  verdict        as promised\n")
	} else {
		fmt.Fprintf(w, "  verdict        NOT MET: %s\n", strings.Join(s.Unmet, "; "))
	}
}

// timeline prints what happened, stamped with the time since the start.
type timeline struct {
	mu    sync.Mutex
	w     io.Writer
	began time.Time
}

func newTimeline(w io.Writer) *timeline { return &timeline{w: w} }

func (t *timeline) start(at time.Time) { t.began = at }

func (t *timeline) say(who, format string, args ...any) {
	t.sayAt(time.Now(), who, format, args...)
}

func (t *timeline) sayAt(at time.Time, who, format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, "[%6.2fs] %-9s %s\n", at.Sub(t.began).Seconds(), who, fmt.Sprintf(format, args...))
}

// eventWatch follows the daemon's event log, prints each event on the
// timeline and remembers when the moments the summary needs happened.
type eventWatch struct {
	mu sync.Mutex
	t  eventTimes
}

func watchEvents(ctx context.Context, st *store.Store, tl *timeline) *eventWatch {
	w := &eventWatch{}
	go func() {
		var after uint64
		for {
			evs, err := st.Wait(ctx, after, 100)
			if err != nil {
				return
			}
			for _, e := range evs {
				after = e.Seq
				w.note(e)
				if e.Kind != phoenix.EventStarted {
					tl.sayAt(e.Time, string(e.Kind), "%s", e.Message)
				}
			}
		}
	}()
	return w
}

func (w *eventWatch) note(e phoenix.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at := e.Time
	first := func(p **time.Time) {
		if *p == nil {
			*p = &at
		}
	}
	switch e.Kind {
	case phoenix.EventPredicted:
		first(&w.t.predicted)
	case phoenix.EventPrewarmed:
		first(&w.t.prewarmed)
	case phoenix.EventSwitched:
		first(&w.t.switched)
		w.t.preemptive = e.Fields["preemptive"] == "true"
	case phoenix.EventReleased:
		first(&w.t.released)
	case phoenix.EventFailed:
		first(&w.t.detected)
	}
}

type eventTimes struct {
	predicted, prewarmed, switched, released, detected *time.Time
	preemptive                                         bool
}

func (w *eventWatch) snapshot() eventTimes {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.t
}

func (w *eventWatch) switched() bool  { return w.snapshot().switched != nil }
func (w *eventWatch) prewarmed() bool { return w.snapshot().prewarmed != nil }
func (w *eventWatch) released() bool  { return w.snapshot().released != nil }
