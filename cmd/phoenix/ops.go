package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/phoenixsre/phoenix"
)

// newOperatorCmd makes "switch" and "failback": one request to the daemon's
// API, which decides and acts in its own loop and logs why.
func newOperatorCmd(use, short, long, route string) *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   use + " COMPONENT",
		Short: short,
		Long:  long,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := phoenix.ComponentID(args[0])
			if err := name.Validate(); err != nil {
				return usageErr("%v", err)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			var ans map[string]string
			if err := c.do(cmd.Context(), "POST", "/api/v1/components/"+string(name)+"/"+route, &ans); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s; follow it with \"phoenix events -f\"\n", name, ans["status"])
			return nil
		},
	}
	cf.register(cmd)
	return cmd
}

func newSwitchCmd() *cobra.Command {
	return newOperatorCmd("switch", "Move a component's traffic to its pre-warmed replica now",
		`Ask the daemon to switch COMPONENT to its pre-warmed replica now, as it would on a
confirmed failure: hold new requests, drain, bring the replica's state level and promote
it, then move the traffic. Refused (409) when no replica is pre-warmed.`, "switch")
}

func newFailbackCmd() *cobra.Command {
	return newOperatorCmd("failback", "Move a component's traffic back to its original primary",
		`Ask the daemon to move COMPONENT's traffic back to its original primary after a switch:
the replica's state is copied back and the primary promoted (a stateful primary must run
as a follower of its data directory), then the replicas are released. Needs
traffic.failback.enabled in the daemon's config.`, "failback")
}
