package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/control"
)

func newStatusCmd() *cobra.Command {
	var (
		cf     clientFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each component's risk, route and replica, from a running daemon",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			var st control.Status
			if err := c.get(cmd.Context(), "/api/v1/status", &st); err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(cmd.OutOrStdout(), st)
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the daemon's status as JSON")
	return cmd
}

func printStatus(w io.Writer, st control.Status) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tRISK\tCI\tLEAD\tACTIVE\tHEALTHY\tSTANDBY\tALLOCATION\tTOP SIGNAL")
	for _, c := range st.Components {
		lead := "-"
		if c.Risk.LeadTime > 0 {
			lead = c.Risk.LeadTime.Round(100 * time.Millisecond).String()
		}
		alloc := "-"
		if c.Allocation != nil {
			alloc = fmt.Sprintf("%s (%s)", c.Allocation.ID, c.Allocation.Phase)
		}
		standby := c.Standby
		if standby == "" {
			standby = "-"
		}
		top := "-"
		if len(c.Risk.Signals) > 0 {
			top = c.Risk.Signals[0].Reason
		}
		fmt.Fprintf(tw, "%s\t%.2f\t[%.2f, %.2f]\t%s\t%s\t%v\t%s\t%s\t%s\n", c.Name, c.Risk.Probability, c.Risk.Lower, c.Risk.Upper,
			lead, c.Active, c.Healthy, standby, alloc, top)
	}
	tw.Flush()
}

func newEventsCmd() *cobra.Command {
	var (
		cf     clientFlags
		asJSON bool
		after  uint64
		follow bool
	)
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Print the daemon's event log: every decision and its reason",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			enc := json.NewEncoder(out)
			for {
				path := fmt.Sprintf("/api/v1/events?after=%d", after)
				if follow {
					path += "&wait=30s"
				}
				var evs []phoenix.Event
				if err := c.get(cmd.Context(), path, &evs); err != nil {
					if cmd.Context().Err() != nil {
						return nil
					}
					return err
				}
				for _, e := range evs {
					after = e.Seq
					if asJSON {
						if err := enc.Encode(e); err != nil {
							return err
						}
						continue
					}
					comp := string(e.Component)
					if comp == "" {
						comp = "-"
					}
					fmt.Fprintf(out, "%6d  %s  %-18s %-10s %s\n", e.Seq, e.Time.Local().Format("2006-01-02 15:04:05.000"), e.Kind, comp, e.Message)
				}
				if !follow {
					return nil
				}
			}
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per event")
	cmd.Flags().Uint64Var(&after, "after", 0, "print only events after this sequence number")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep waiting for new events, like tail -f")
	return cmd
}
