package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/phoenixsre/phoenix/predict/anomaly"
	"github.com/phoenixsre/phoenix/predict/nab"
)

// nabDetector is the name Phoenix's results go under, as NAB names its
// detectors' result directories.
const nabDetector = "phoenix"

func newEvalNABCmd() *cobra.Command {
	var (
		data, windowsFile, out string
		asJSON                 bool
	)
	cmd := &cobra.Command{
		Use:   "nab --data DIR [--windows FILE] [--out RESULTS] [--json]",
		Short: "Score the streaming anomaly detector on the Numenta Anomaly Benchmark",
		Long: `Stream every series of a NAB data directory through Phoenix's anomaly detector,
one point at a time, with no look-ahead (no file minimum or maximum, no second pass).

The series are the files of DIR/windows.json, or every .csv under DIR if it has none.
With --out, NAB result files are written to RESULTS/phoenix/<category>/phoenix_<file>.csv.
Given the labelled windows (--windows, default DIR/windows.json when present), it prints
the NAB score for the standard, reward-low-FP and reward-low-FN profiles twice: at the
threshold NAB's optimiser picks on the labels, and at Phoenix's fixed default threshold.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if data == "" {
				return usageErr("eval nab needs --data DIR (a NAB data directory)")
			}
			return runEvalNAB(cmd, data, windowsFile, out, asJSON)
		},
	}
	f := cmd.Flags()
	f.StringVar(&data, "data", "", "NAB data directory (category folders of timestamp,value CSV files)")
	f.StringVar(&windowsFile, "windows", "", "labelled anomaly windows (NAB's combined_windows.json); default DIR/windows.json if present")
	f.StringVar(&out, "out", "", "write NAB result files under this directory")
	f.BoolVar(&asJSON, "json", false, "print the scores as one JSON object")
	return cmd
}

// nabReport is the --json output.
type nabReport struct {
	Detector       string              `json:"detector"`
	Files          int                 `json:"files"`
	Points         int                 `json:"points"`
	Windows        int                 `json:"windows"`
	FixedThreshold float64             `json:"fixed_threshold"`
	LabelOptimised map[string]nabScore `json:"label_optimised,omitempty"`
	Fixed          map[string]nabScore `json:"fixed,omitempty"`
	PointsPerSec   float64             `json:"points_per_second"`
}

type nabScore struct {
	Score     float64 `json:"score"`
	Threshold float64 `json:"threshold"`
	TP        int     `json:"tp"`
	FN        int     `json:"fn"`
	FP        int     `json:"fp"`
}

func runEvalNAB(cmd *cobra.Command, data, windowsFile, out string, asJSON bool) error {
	fsys := os.DirFS(data)
	if windowsFile == "" {
		if _, err := os.Stat(filepath.Join(data, "windows.json")); err == nil {
			windowsFile = filepath.Join(data, "windows.json")
		}
	}
	var windows nab.Windows
	if windowsFile != "" {
		f, err := os.Open(windowsFile)
		if err != nil {
			return fmt.Errorf("--windows: %w", err)
		}
		windows, err = nab.ReadWindows(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("--windows %s: %w", windowsFile, err)
		}
	} else {
		names, err := nab.ListSeries(fsys)
		if err != nil {
			return fmt.Errorf("--data %s: %w", data, err)
		}
		windows = make(nab.Windows, len(names))
		for _, n := range names {
			windows[n] = nil
		}
	}
	cfg := nab.RunConfig{NewDetector: func(string) nab.Detector { return novelty{anomaly.NewNovelty(anomaly.NoveltyConfig{})} }}
	if out != "" {
		cfg.Result = func(name string, rows []nab.ScoredPoint) error {
			return writeNABResult(filepath.Join(out, filepath.FromSlash(nab.ResultPath(nabDetector, name))), rows)
		}
	}
	start := time.Now()
	corpus, err := nab.Run(cmd.Context(), fsys, windows, cfg)
	if err != nil {
		return err
	}
	rep := nabReport{Detector: nabDetector, Files: len(corpus), FixedThreshold: anomaly.DefaultThreshold}
	for _, f := range corpus {
		rep.Points += len(f.Times)
		rep.Windows += len(f.Windows)
	}
	rep.PointsPerSec = float64(rep.Points) / time.Since(start).Seconds()
	if rep.Windows > 0 {
		rep.LabelOptimised, rep.Fixed = map[string]nabScore{}, map[string]nabScore{}
		for _, p := range nab.Profiles() {
			o, err := nab.Optimize(corpus, p)
			if err != nil {
				return err
			}
			rep.LabelOptimised[p.Name] = scoreOf(o)
			if o, err = nab.Score(corpus, p, anomaly.DefaultThreshold); err != nil {
				return err
			}
			rep.Fixed[p.Name] = scoreOf(o)
		}
	}
	if asJSON {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printNAB(cmd.OutOrStdout(), rep, out)
	return nil
}

func scoreOf(o nab.Outcome) nabScore {
	return nabScore{Score: o.Score, Threshold: o.Threshold, TP: o.TP, FN: o.FN, FP: o.FP}
}

func printNAB(w io.Writer, rep nabReport, out string) {
	fmt.Fprintf(w, "%d files, %d points, %d labelled windows, %.0f points/s\n", rep.Files, rep.Points, rep.Windows, rep.PointsPerSec)
	if out != "" {
		fmt.Fprintf(w, "results in %s\n", filepath.Join(out, nabDetector))
	}
	if rep.Windows == 0 {
		fmt.Fprintln(w, "no labelled windows: nothing to score")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "profile\tlabel-optimised\tthreshold\tTP/FN/FP\tfixed default\tthreshold\tTP/FN/FP")
	for _, p := range nab.Profiles() {
		o, f := rep.LabelOptimised[p.Name], rep.Fixed[p.Name]
		fmt.Fprintf(tw, "%s\t%.2f\t%.4g\t%d/%d/%d\t%.2f\t%.4g\t%d/%d/%d\n", p.Name, o.Score, o.Threshold, o.TP, o.FN, o.FP, f.Score, f.Threshold, f.TP, f.FN, f.FP)
	}
	tw.Flush()
}

func writeNABResult(path string, rows []nab.ScoredPoint) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := nab.WriteResults(f, rows); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// novelty adapts the detector to NAB's point type.
type novelty struct{ d *anomaly.Novelty }

func (n novelty) Score(p nab.Point) float64 { return n.d.Score(p.Time, p.Value) }
