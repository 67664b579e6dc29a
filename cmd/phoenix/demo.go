package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/phoenixsre/phoenix/demo"
)

func newDemoCmd() *cobra.Command {
	var (
		scenario string
		asJSON   bool
		keep     bool
		workDir  string
		rate     int
		prov     string
		warmup   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "demo [--scenario leak|crash|false-alarm] [--json]",
		Short: "Run a real application, a failure, and Phoenix's response, on this machine",
		Long: `Run the whole Phoenix loop on this machine with nothing to set up: the example shop
(gateway -> orders -> inventory, three processes; orders keeps its data on disk) in a
"primary" environment, Phoenix in front of it, a load generator writing and reading
keys through the gateway, and one failure scenario:

  leak         orders leaks memory until it is killed at its limit; Phoenix should
               predict it, pre-warm a replica with its state, and switch in time
  crash        orders is killed with no warning; Phoenix can only react
  false-alarm  orders' memory climbs towards its limit and recovers; Phoenix may
               pre-warm, must release the replica, and must not switch

It prints a timeline as it goes and a summary at the end: failed requests, lost
keys (every acknowledged write is read back), lead time, and what pre-warming cost
against a hot standby. The exit code is 1 if the scenario's promises were not met.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find own executable: %w", err)
			}
			if warmup < time.Second || warmup > 24*time.Hour {
				return usageErr("--warmup %s: write a duration from 1s to 24h, e.g. 10m", warmup)
			}
			if rate < 1 || rate > 5000 {
				return usageErr("--rate %d: write a rate from 1 to 5000 requests per second", rate)
			}
			tl := cmd.OutOrStdout()
			if asJSON {
				tl = cmd.ErrOrStderr()
			}
			sum, err := demo.Run(cmd.Context(), demo.Options{
				Scenario: scenario, Executable: exe, Timeline: tl, WorkDir: workDir, Keep: keep, Rate: rate, Provider: prov, Warmup: warmup,
			})
			if err != nil {
				if strings.HasPrefix(err.Error(), "unknown scenario") || strings.HasPrefix(err.Error(), "unknown provider") {
					return usageErr("%v", err)
				}
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(sum); err != nil {
					return err
				}
			} else {
				sum.Print(cmd.OutOrStdout())
			}
			if !sum.ExpectationsMet {
				return &exitError{code: 1, err: fmt.Errorf("scenario %s: not met: %s", scenario, strings.Join(sum.Unmet, "; "))}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&scenario, "scenario", "leak", "what fails: leak, crash or false-alarm")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as one JSON object on stdout (the timeline goes to stderr)")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the run's directory (config, logs, data) instead of removing it")
	cmd.Flags().StringVar(&workDir, "dir", "", "directory for the run's files (default: a new temporary directory)")
	cmd.Flags().IntVar(&rate, "rate", 200, "requests per second the load generator sends")
	cmd.Flags().DurationVar(&warmup, "warmup", 5*time.Second, `how long steady traffic runs, watched by Phoenix, before the fault (a long one, e.g. 10m,
shows what pre-warming costs against a hot standby over time)`)
	cmd.Flags().StringVar(&prov, "provider", "process", `where both environments run: "process" (local processes) or "docker" (containers on two
Docker networks; needs a running Docker engine, and the source tree if this phoenix is not
statically linked)`)
	return cmd
}
