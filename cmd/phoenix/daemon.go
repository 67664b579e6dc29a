package main

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/phoenixsre/phoenix/config"
	"github.com/phoenixsre/phoenix/daemon"
)

func newRunCmd() *cobra.Command {
	var (
		cfgPath  string
		logLevel string
		check    bool
	)
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run the Phoenix daemon",
		Long: `Run the Phoenix daemon: scrape the components' metrics, predict failures, map
dependencies from traces, pre-warm replicas, replicate state, and switch traffic
through the proxies it puts in front of every component.

The configuration is YAML; examples/phoenix.yaml documents every setting. The daemon
stops gracefully on SIGINT or SIGTERM. Its state (events, allocations, the API token)
lives under state_dir and survives a crash: a restarted daemon resumes what was in
flight. Replicas keep running while the daemon is down.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgPath == "" {
				return usageErr("run needs --config FILE (see examples/phoenix.yaml)")
			}
			level, err := parseLevel(logLevel)
			if err != nil {
				return err
			}
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			if check {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: valid, %d components\n", cfgPath, len(cfg.Components))
				return nil
			}
			log := slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			d, err := daemon.New(cmd.Context(), cfg, daemon.Options{Logger: log})
			if err != nil {
				return err
			}
			return d.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&cfgPath, "config", "c", "", "path of the YAML configuration file (required)")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "least severe log level written to stderr: debug, info, warn or error")
	cmd.Flags().BoolVar(&check, "check", false, "validate the configuration, print what is wrong, and exit")
	return cmd
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToLower(s))); err != nil {
		return 0, usageErr("--log-level %q: write debug, info, warn or error", s)
	}
	return l, nil
}
