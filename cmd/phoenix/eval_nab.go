package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newEvalNABCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "nab",
		Short: "(not built yet)",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("phoenix eval nab is not built yet")
		},
	}
}
