package main

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/phoenixsre/phoenix/predict/forecast"
	"github.com/phoenixsre/phoenix/predict/nab"
)

func newEvalForecastCmd() *cobra.Command {
	var (
		data, model string
		horizon     int
		warmup      float64
		asJSON      bool
	)
	cmd := &cobra.Command{
		Use:   "forecast --data DIR --horizon N [--json]",
		Short: "Measure the forecasters: MASE against seasonal naive, and interval coverage",
		Long: `Replay every series under DIR (timestamp,value CSV files; the files of DIR/windows.json
when present) through a forecaster, one value at a time. After the warm-up, every forecast of
leads 1..N steps is scored: its MASE (mean absolute error over the in-sample one-step error of
seasonal naive, Hyndman and Koehler 2006) beside seasonal naive's own, and the share of
outcomes inside its conformal 80% and 95% intervals.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if data == "" || horizon < 1 {
				return usageErr("eval forecast needs --data DIR and --horizon N (steps, >= 1)")
			}
			if !(warmup > 0 && warmup < 1) {
				return usageErr("--warmup %v: want a share of each series between 0 and 1, such as 0.25", warmup)
			}
			newModel, err := forecastModel(model, horizon)
			if err != nil {
				return err
			}
			return runEvalForecast(cmd, os.DirFS(data), newModel, horizon, warmup, asJSON)
		},
	}
	f := cmd.Flags()
	f.StringVar(&data, "data", "", "directory of timestamp,value CSV series (NAB layout)")
	f.IntVar(&horizon, "horizon", 0, "forecast leads 1..N steps")
	f.StringVar(&model, "model", "holt-winters", "forecaster: holt-winters or lstm")
	f.Float64Var(&warmup, "warmup", 0.25, "share of each series only learnt from before scoring starts")
	f.BoolVar(&asJSON, "json", false, "print the result as one JSON object")
	return cmd
}

func forecastModel(name string, horizon int) (func() forecast.Model, error) {
	switch name {
	case "holt-winters", "hw":
		return func() forecast.Model { return forecast.NewHoltWinters(forecast.HoltWintersConfig{}) }, nil
	case "lstm":
		return func() forecast.Model { return forecast.NewLSTM(forecast.LSTMConfig{Horizon: horizon}) }, nil
	}
	return nil, usageErr("--model %q: want holt-winters or lstm", name)
}

// forecastReport is the --json output: the pooled figures at the top,
// the same per series.
type forecastReport struct {
	Model        string                         `json:"model"`
	Horizon      int                            `json:"horizon"`
	MASE         float64                        `json:"mase"`
	MASENaive    float64                        `json:"mase_seasonal_naive"`
	Coverage80   float64                        `json:"coverage_80"`
	Coverage95   float64                        `json:"coverage_95"`
	BetterThan   int                            `json:"series_better_than_naive"`
	Scored       int                            `json:"series_scored"`
	PointsPerSec float64                        `json:"points_per_second"`
	Series       map[string]forecast.Evaluation `json:"series"`
}

func runEvalForecast(cmd *cobra.Command, fsys fs.FS, newModel func() forecast.Model, horizon int, warmup float64, asJSON bool) error {
	names, err := nab.ListSeries(fsys)
	if err != nil {
		return fmt.Errorf("--data: %w", err)
	}
	rep := forecastReport{Horizon: horizon, Series: make(map[string]forecast.Evaluation, len(names))}
	rep.Model, _ = cmd.Flags().GetString("model")
	var evs []forecast.Evaluation
	start, points := time.Now(), 0
	for _, name := range names {
		if err := cmd.Context().Err(); err != nil {
			return err
		}
		xs, err := readValues(fsys, name)
		if err != nil {
			return err
		}
		points += len(xs)
		ev := forecast.Evaluate(xs, newModel(), horizon, int(warmup*float64(len(xs))))
		rep.Series[name] = ev
		evs = append(evs, ev)
		if ev.N > 0 && ev.MASENaive > 0 {
			rep.Scored++
			if ev.MASE < ev.MASENaive {
				rep.BetterThan++
			}
		}
	}
	rep.PointsPerSec = float64(points) / time.Since(start).Seconds()
	pool := forecast.Pool(evs)
	rep.MASE, rep.MASENaive, rep.Coverage80, rep.Coverage95 = pool.MASE, pool.MASENaive, pool.Coverage80, pool.Coverage95
	if asJSON {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printForecast(cmd.OutOrStdout(), rep, names)
	return nil
}

func readValues(fsys fs.FS, name string) ([]float64, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pts, err := nab.ReadSeries(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	xs := make([]float64, len(pts))
	for i, p := range pts {
		xs[i] = p.Value
	}
	return xs, nil
}

func printForecast(w io.Writer, rep forecastReport, names []string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "series\tseason\tMASE\tseasonal naive\t80% covered\t95% covered")
	for _, n := range names {
		ev := rep.Series[n]
		fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.3f\t%.1f%%\t%.1f%%\n", n, ev.Period, ev.MASE, ev.MASENaive, 100*ev.Coverage80, 100*ev.Coverage95)
	}
	fmt.Fprintf(tw, "all %d series\t\t%.3f\t%.3f\t%.1f%%\t%.1f%%\n", len(names), rep.MASE, rep.MASENaive, 100*rep.Coverage80, 100*rep.Coverage95)
	tw.Flush()
	fmt.Fprintf(w, "%s beats seasonal naive on %d of %d series with a non-zero error; %.0f points/s\n", rep.Model, rep.BetterThan, rep.Scored, rep.PointsPerSec)
}
