package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/phoenixsre/phoenix/examples/shop"
)

func newShopCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "shop gateway|orders|inventory [flags]",
		Short: "Run one service of the example shop application (the demo starts them this way)",
		Long: `Run one service of the example shop application: gateway (the HTTP entry), orders
(stateful, keeps its data on disk) or inventory. "phoenix shop SERVICE --help" lists
each service's flags. The demo starts the shop's processes with this command, so that
one binary is all a fresh machine needs.`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := shop.Main(cmd.Context(), args, cmd.OutOrStdout(), cmd.ErrOrStderr()); code != 0 {
				return &exitError{code: code, err: fmt.Errorf("shop exited with status %d", code)}
			}
			return nil
		},
	}
}
