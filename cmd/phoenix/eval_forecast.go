package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newEvalForecastCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "forecast",
		Short: "(not built yet)",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("phoenix eval forecast is not built yet")
		},
	}
}
