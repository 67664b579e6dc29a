// Command bound splits the distance between the predictive policy and the
// issue's target into what forecasting the demand's level could win and
// what it could not. Beside the HPA (the baseline) and Phoenix's predictive
// policy, it replays two simple policies that provision a fixed margin over
// a level:
//
//   - oracle(w): the level is the mean of the w samples centred on each
//     interval the decision serves, the future half included: a perfect
//     forecast of the level, short of the noise about it. A ratio it cannot
//     bring under 0.5 says the series leaves too little to forecast for any
//     policy that provisions a margin over a level.
//   - trailing(w): the mean of the last w samples measured, which any
//     policy knows.
//
// With -floor, both (and online, below) never go below the replicas the last
// measured sample needs, as the predictive policy never does ("never below
// what the reactive rule asks"): the oracle then says whether that floor
// leaves the target within reach of any margin over a level.
//
// Each margin is chosen in hindsight, by bisection over whole replays, as
// the largest whose replica-hours are no more than the HPA's: one constant
// fitted to the series, which no online policy is given, so trailing(w) is
// not a policy Phoenix could ship as is but a measure of what a level and a
// margin are worth on the series. online(w) is trailing(w) with the margin
// set as it goes instead, by a plain integral controller against a shadow
// HPA (the predictive policy's budget, without its quantiles): the
// distance between the two is what hindsight is worth.
//
// Run from the repository root, one line per series:
//
//	go run ./bench/scale/bound [-target 0.8] [-windows 7,25] [-floor] TRACE...
//
// Every replay goes through scale.Replay with the capacity model "phoenix
// eval scale" derives from the trace's first day.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/phoenixsre/phoenix/scale"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bound:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bound", flag.ContinueOnError)
	target := fs.Float64("target", scale.DefaultTarget, "the HPA's target utilisation, as in phoenix eval scale --target")
	windows := fs.String("windows", "7,25", "comma-separated lengths, in samples, of the centred (oracle) and trailing means taken as the level")
	floor := fs.Bool("floor", false, "keep the oracle, trailing and online policies at or above the replicas the last measured demand needs, as the predictive policy is")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ws, err := parseWindows(*windows)
	if err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("name one or more NAB-format traces (timestamp,value)")
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "series\thpa under\tpredictive/hpa")
	for _, w := range ws {
		fmt.Fprintf(tw, "\toracle(%d)/hpa\ttrailing(%d)/hpa\tonline(%d)/hpa (hours)", w, w, w)
	}
	fmt.Fprintln(tw, "\t(under-provisioned time, at replica-hours <= the HPA's)")
	for _, path := range fs.Args() {
		row, err := bound(ctx, path, *target, ws, *floor)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		fmt.Fprintln(tw, row)
		fmt.Fprintf(os.Stderr, "%s done\n", path)
	}
	return tw.Flush()
}

func parseWindows(s string) ([]int, error) {
	var ws []int
	for f := range strings.SplitSeq(s, ",") {
		w, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || w < 1 || w%2 == 0 {
			return nil, fmt.Errorf("windows: %q is not an odd number of samples, 1 or more", f)
		}
		ws = append(ws, w)
	}
	return ws, nil
}

// bound replays the HPA, the predictive policy and the oracle at each
// window on one trace, and formats their under-provisioned time as ratios
// to the HPA's.
func bound(ctx context.Context, path string, target float64, windows []int, floor bool) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	trace, err := scale.ParseTrace(f)
	f.Close()
	if err != nil {
		return "", err
	}
	model, err := scale.DeriveModel(trace)
	if err != nil {
		return "", err
	}
	cfg := scale.EvalConfig{Model: model, Target: target}
	rc := scale.ReplayConfigFor(model)
	replay := func(name string) (scale.Result, error) {
		p, err := scale.EvalPolicy(name, cfg)
		if err != nil {
			return scale.Result{}, err
		}
		return scale.Replay(ctx, trace, rc, p)
	}
	hpa, err := replay(scale.PolicyHPA)
	if err != nil {
		return "", err
	}
	pred, err := replay(scale.PolicyPredictive)
	if err != nil {
		return "", err
	}
	ratio := func(r scale.Result) string {
		if hpa.UnderprovisionedFraction == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", r.UnderprovisionedFraction/hpa.UnderprovisionedFraction)
	}
	row := fmt.Sprintf("%s\t%.4f\t%s", strings.TrimSuffix(filepath.Base(path), ".csv"), hpa.UnderprovisionedFraction, ratio(pred))
	for _, w := range windows {
		for _, trailing := range []bool{false, true} {
			o := &oracle{trace: trace, level: centredMeans(trace, w), trailing: trailing, floor: floor, capacity: rc.PerReplica, startup: rc.Startup}
			if trailing {
				o.level = trailingMeans(trace, w)
			}
			best, err := bestMargin(ctx, trace, rc, o, hpa.ReplicaHours)
			if err != nil {
				return "", err
			}
			row += "\t" + ratio(best)
		}
		shadow, err := scale.EvalPolicy(scale.PolicyHPA, cfg)
		if err != nil {
			return "", err
		}
		on, err := scale.Replay(ctx, trace, rc, &online{trace: trace, level: trailingMeans(trace, w), floor: floor,
			capacity: rc.PerReplica, interval: rc.Interval, shadow: shadow, logMargin: math.Log(1 / target)})
		if err != nil {
			return "", err
		}
		row += fmt.Sprintf("\t%s (%.3f)", ratio(on), on.ReplicaHours/hpa.ReplicaHours)
	}
	return row, nil
}

// bestMargin bisects for the largest margin whose oracle replay uses no
// more replica-hours than budget, and returns that replay.
func bestMargin(ctx context.Context, trace []scale.Sample, rc scale.ReplayConfig, o *oracle, budget float64) (scale.Result, error) {
	lo, hi := 0.0, 4.0
	var best scale.Result
	found := false
	for range 24 {
		m := (lo + hi) / 2
		o.margin = m
		r, err := scale.Replay(ctx, trace, rc, o)
		if err != nil {
			return scale.Result{}, err
		}
		if r.ReplicaHours <= budget {
			lo, best, found = m, r, true
		} else {
			hi = m
		}
	}
	if !found {
		return scale.Result{}, errors.New("no margin keeps the oracle within the HPA's replica-hours")
	}
	return best, nil
}

// centredMeans is, for each sample, the mean of the window samples centred
// on it (fewer at the ends).
func centredMeans(trace []scale.Sample, window int) []float64 {
	half := window / 2
	out := make([]float64, len(trace))
	for i := range trace {
		lo, hi := max(0, i-half), min(len(trace), i+half+1)
		var sum float64
		for _, s := range trace[lo:hi] {
			sum += s.Value
		}
		out[i] = sum / float64(hi-lo)
	}
	return out
}

// trailingMeans is, for each sample, the mean of the window samples that
// end with it: the level a policy that is not told the future knows once
// that sample is measured.
func trailingMeans(trace []scale.Sample, window int) []float64 {
	out := make([]float64, len(trace))
	var sum float64
	for i, s := range trace {
		sum += s.Value
		if i >= window {
			sum -= trace[i-window].Value
		}
		out[i] = sum / float64(min(i+1, window))
	}
	return out
}

// oracle provisions margin × the level of the demand over the intervals its
// decision affects: from the next sample (what it removes now is gone
// then) to the one a replica ordered now first serves.
type oracle struct {
	trace []scale.Sample
	// level is the level of each sample's demand; when trailing, the level
	// known once it is measured, and the oracle takes the last measured
	// one's for every interval ahead.
	level    []float64
	trailing bool
	// floor keeps the oracle at or above the replicas the last measured
	// demand needs, the reactive floor of the predictive policy.
	floor    bool
	margin   float64
	capacity float64
	startup  time.Duration
}

func (o *oracle) Decide(s scale.Snapshot) scale.Decision {
	// The samples from the next one to the first that a replica ordered
	// now serves: the count decided now is in force over them.
	if o.trailing {
		n := trailingReplicas(o.trace, o.level, s.Now, o.margin, o.capacity, o.floor)
		return scale.Decision{Replicas: n, Proposal: n, Reason: "Trailing"}
	}
	i := nextSample(o.trace, s.Now)
	peak := 0.0
	for j := i; j < len(o.trace); j++ {
		peak = math.Max(peak, o.level[j])
		if o.trace[j].At.After(s.Now.Add(o.startup)) {
			break // the first sample a replica ordered now serves
		}
	}
	n := replicasFor(peak*o.margin, o.capacity)
	if o.floor && i > 0 {
		n = max(n, replicasFor(o.trace[i-1].Value, o.capacity))
	}
	return scale.Decision{Replicas: n, Proposal: n, Reason: "Oracle"}
}

// nextSample is the index of the first sample after now: those before it
// are measured by then.
func nextSample(trace []scale.Sample, now time.Time) int {
	i, found := slices.BinarySearchFunc(trace, now, func(x scale.Sample, t time.Time) int { return x.At.Compare(t) })
	if found {
		i++
	}
	return i
}

// replicasFor is the count that serves demand at capacity each, at least 1.
func replicasFor(demand, capacity float64) int {
	return max(1, int(math.Ceil(demand/capacity-1e-9)))
}

// trailingReplicas is what a policy provisioning margin × the trailing
// level of the last sample measured by now asks for, and with floor never
// fewer than that sample's demand needs.
func trailingReplicas(trace []scale.Sample, level []float64, now time.Time, margin, capacity float64, floor bool) int {
	last := max(nextSample(trace, now)-1, 0)
	n := replicasFor(level[last]*margin, capacity)
	if floor {
		n = max(n, replicasFor(trace[last].Value, capacity))
	}
	return n
}

// online is trailing(w) with its margin set as it goes, not in hindsight:
// an integral controller moves the margin's logarithm down while the
// policy runs more replicas than a shadow HPA fed the same demand, and up
// while it runs fewer.
type online struct {
	trace     []scale.Sample
	level     []float64 // trailing means
	floor     bool
	capacity  float64
	interval  time.Duration
	shadow    scale.Policy
	shadowN   int
	logMargin float64
	mean      float64 // running mean of the shadow's count
	n         int     // the count decided last
	last      time.Time
}

// onlineGain is the controller's gain per interval, for a difference of
// one mean shadow count.
const onlineGain = 0.1

func (o *online) Decide(s scale.Snapshot) scale.Decision {
	if o.last.IsZero() {
		o.shadowN, o.n, o.mean = s.Replicas, s.Replicas, float64(s.Replicas)
	} else {
		// At most one interval: across a gap in the trace nothing was
		// measured or decided, and the replay counts no replica-hours.
		dt := min(s.Now.Sub(o.last).Seconds()/o.interval.Seconds(), 1)
		o.logMargin -= onlineGain * dt * float64(o.n-o.shadowN) / max(o.mean, 1)
		o.mean += min(dt/288, 1) * (float64(o.shadowN) - o.mean)
	}
	o.last = s.Now
	pods := make([]scale.Pod, o.shadowN)
	for i := range pods {
		pods[i] = scale.Pod{Name: strconv.Itoa(i), Phase: scale.PodRunning, Ready: true}
	}
	o.shadowN = o.shadow.Decide(scale.Snapshot{Now: s.Now, Replicas: o.shadowN, StatusReplicas: o.shadowN, Pods: pods, External: s.External}).Replicas
	n := trailingReplicas(o.trace, o.level, s.Now, math.Exp(o.logMargin), o.capacity, o.floor)
	o.n = n
	return scale.Decision{Replicas: n, Proposal: n, Reason: "Online"}
}
