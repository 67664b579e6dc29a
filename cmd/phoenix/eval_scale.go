package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/phoenixsre/phoenix/scale"
)

func newEvalScaleCmd() *cobra.Command {
	var (
		trace, startup, policy string
		capacity, target, risk float64
		asJSON                 bool
	)
	cmd := &cobra.Command{
		Use:   "scale --trace FILE [--capacity N] [--startup S] [--policy hpa|predictive] [--json]",
		Short: "Replay a demand series against the scaling policies",
		Long: `Replay a demand series (NAB CSV: timestamp,value, the value being requests per
interval) against a capacity model: each replica serves N requests per interval, and a
new replica serves S after it is ordered. The policy decides every 15 s, as the
Kubernetes HPA controller does, from the last measured interval, with no look-ahead.

It reports the share of intervals whose demand exceeded the capacity ready during them,
the replica-hours used (from order to removal), the replica-hours beyond what the demand
needed, and the number of scaling actions.

Policies:
  hpa         the Kubernetes HPA: an External AverageValue target of --target x N per
              replica, tolerance 0.1, Kubernetes' default behavior (scale up by
              max(4 pods, 100%) per 15 s, scale down to the highest recommendation of
              the last 5 minutes), at least 1 replica
  predictive  the same HPA as a fallback and a budget; provisions for a conformal
              quantile of the demand over the start-up time, never below ceil(demand / N),
              at the level (up to 1 - --risk) where a replica buys the coverage a price
              per replica asks; the price is set so that it runs no more replicas than
              the HPA, and while it has run more, it runs at most the HPA's count
  all         both, one after the other (with --json, one object per line)

Defaults derived from the trace's first day only (at least 12 samples):
  --capacity  the median demand of those samples / 10, so that typical demand needs
              10 replicas (their mean if the median is 0); a first day all 0 says
              nothing of the demand's size, so the capacity then looks ahead to the
              trace's first 12 values above 0 (their median / 10; 1 if there are none)
  --startup   one interval: the median spacing of those samples`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if trace == "" {
				return usageErr("eval scale needs --trace FILE (timestamp,value CSV)")
			}
			var policies []string
			switch policy {
			case scale.PolicyHPA, scale.PolicyPredictive:
				policies = []string{policy}
			case "all":
				policies = []string{scale.PolicyHPA, scale.PolicyPredictive}
			default:
				return usageErr("--policy %q: write hpa, predictive or all", policy)
			}
			if cmd.Flags().Changed("capacity") && !(capacity > 0) {
				return usageErr("--capacity %v: write the requests one replica serves per interval, above 0", capacity)
			}
			var start time.Duration
			if startup != "" {
				d, err := parseStartup(startup)
				if err != nil {
					return usageErr("%v", err)
				}
				start = d
			}
			return runEvalScale(cmd, evalScaleArgs{
				trace: trace, capacity: capacity, startup: start, startupSet: startup != "",
				target: target, risk: risk, policies: policies, asJSON: asJSON,
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&trace, "trace", "", "demand series: a timestamp,value CSV (NAB's format)")
	f.Float64Var(&capacity, "capacity", 0, "requests one replica serves per interval (default: derived from the trace)")
	f.StringVar(&startup, "startup", "", "time from ordering a replica to its serving: a duration (90s, 5m) or seconds (default: one interval)")
	f.StringVar(&policy, "policy", scale.PolicyPredictive, "hpa, predictive or all")
	f.Float64Var(&target, "target", scale.DefaultTarget, "the HPA's target utilisation of a replica's capacity, 0 to 1")
	f.Float64Var(&risk, "risk", scale.DefaultRisk, "the predictive policy's lowest risk of demand above capacity")
	f.BoolVar(&asJSON, "json", false, "print the result as one JSON object")
	return cmd
}

// parseStartup reads a duration ("5m") or a number of seconds ("300").
func parseStartup(s string) (time.Duration, error) {
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		if !(secs >= 0) || secs > 30*24*3600 {
			return 0, fmt.Errorf("--startup %s: write 0 to 2592000 seconds", s)
		}
		return time.Duration(secs * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("--startup %q: write a duration such as 90s or 5m, or seconds", s)
	}
	return d, nil
}

type evalScaleArgs struct {
	trace        string
	capacity     float64
	startup      time.Duration
	startupSet   bool
	target, risk float64
	policies     []string
	asJSON       bool
}

func runEvalScale(cmd *cobra.Command, a evalScaleArgs) error {
	f, err := os.Open(a.trace)
	if err != nil {
		return fmt.Errorf("eval scale: %w", err)
	}
	samples, err := scale.ParseTrace(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("eval scale: %s: %w", a.trace, err)
	}
	model, derived, err := evalModel(samples, a)
	if err != nil {
		return usageErr("eval scale: %s: %v", a.trace, err)
	}
	out := cmd.OutOrStdout()
	for i, name := range a.policies {
		p, err := scale.EvalPolicy(name, scale.EvalConfig{Model: model, Target: a.target, Risk: a.risk})
		if err != nil {
			return usageErr("eval scale: %v", err)
		}
		res, err := scale.Replay(cmd.Context(), samples, scale.ReplayConfigFor(model), p)
		if err != nil {
			return fmt.Errorf("eval scale: %w", err)
		}
		res.Policy = name
		if i == 0 && res.CeilingSamples > 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "eval scale: warning: %s: %d samples need more than the replay's ceiling of replicas at full capacity; every policy is capped and under-provisioned there alike (give --capacity to lower the count)\n", a.trace, res.CeilingSamples)
		}
		if a.asJSON {
			if err := json.NewEncoder(out).Encode(res); err != nil {
				return err
			}
			continue
		}
		if i == 0 {
			printScaleHeader(out, a.trace, samples, model, derived)
		}
		printScaleResult(out, res)
	}
	return nil
}

// evalModel is the capacity model: the flags, and the trace's derived
// defaults for what they leave out. derived names the fields it derived.
func evalModel(samples []scale.Sample, a evalScaleArgs) (scale.Model, []string, error) {
	m, err := scale.DeriveModel(samples)
	var derived []string
	switch {
	case err != nil && (a.capacity == 0 || !a.startupSet || len(samples) < 2):
		return scale.Model{}, nil, err
	case err != nil:
		m = scale.Model{Interval: samples[1].At.Sub(samples[0].At)}
	}
	if a.capacity > 0 {
		m.PerReplica = a.capacity
	} else {
		derived = append(derived, "capacity")
	}
	if a.startupSet {
		m.Startup = a.startup
	} else {
		derived = append(derived, "startup")
	}
	if err := m.Validate(); err != nil {
		return scale.Model{}, nil, err
	}
	return m, derived, nil
}

func printScaleHeader(w io.Writer, path string, samples []scale.Sample, m scale.Model, derived []string) {
	from, to := samples[0].At, samples[len(samples)-1].At
	fmt.Fprintf(w, "trace     %s: %d samples, %s to %s\n", path, len(samples), from.Format(time.DateTime), to.Format(time.DateTime))
	fmt.Fprintf(w, "model     capacity %.4g per replica per interval, startup %v, interval %v", m.PerReplica, m.Startup, m.Interval)
	if len(derived) > 0 {
		fmt.Fprintf(w, " (%s derived from the trace's start)", strings.Join(derived, " and "))
	}
	fmt.Fprintln(w)
}

func printScaleResult(w io.Writer, r scale.Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\npolicy\t%s\n", r.Policy)
	fmt.Fprintf(tw, "under-provisioned\t%.2f%% of intervals\n", 100*r.UnderprovisionedFraction)
	fmt.Fprintf(tw, "replica-hours\t%.1f\n", r.ReplicaHours)
	fmt.Fprintf(tw, "over-provisioned\t%.1f replica-hours\n", r.OverprovisionedReplicaHours)
	fmt.Fprintf(tw, "scaling actions\t%d\n", r.ScalingActions)
	if r.CeilingSamples > 0 {
		fmt.Fprintf(tw, "at the ceiling\t%d samples needed more replicas than the ceiling\n", r.CeilingSamples)
	}
	tw.Flush()
}
