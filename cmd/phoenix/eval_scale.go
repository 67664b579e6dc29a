package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newEvalScaleCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "scale",
		Short: "(not built yet)",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("phoenix eval scale is not built yet")
		},
	}
}
