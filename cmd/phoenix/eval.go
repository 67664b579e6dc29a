package main

import "github.com/spf13/cobra"

func newEvalCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Measure Phoenix's models on recorded data (anomaly detection, forecasts, scaling)",
		Long: `Measure Phoenix's models offline, on recorded series, with the same code the daemon runs:
  nab       the anomaly detector on the Numenta Anomaly Benchmark, scored by NAB's rules
  forecast  the forecasters' accuracy (MASE) and the coverage of their intervals
  scale     the scaling policies replayed against a demand series`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newEvalNABCmd(), newEvalForecastCmd(), newEvalScaleCmd())
	return cmd
}
