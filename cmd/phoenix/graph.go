package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

func newGraphCmd() *cobra.Command {
	var (
		cf        clientFlags
		format    string
		component string
	)
	cmd := &cobra.Command{
		Use:   "graph",
		Short: "Print the live dependency graph of a running daemon, as JSON, DOT or Mermaid",
		Long: `Print the live dependency graph: every component, database, broker and
external service seen in spans or by Phoenix's proxies, and per edge its rate,
error rate and latency percentiles.

  phoenix graph --format dot | dot -Tsvg > graph.svg
  phoenix graph --format mermaid --component orders

With --component, only what that component needs (transitively) and who calls
it; in JSON the closure and dependents are listed too.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch format {
			case "json", "dot", "mermaid":
			default:
				return usageErr("--format %q: use json, dot or mermaid", format)
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			q := url.Values{"format": {format}}
			if component != "" {
				q.Set("component", component)
			}
			body, err := c.getText(cmd.Context(), "/api/v1/graph?"+q.Encode())
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(body)
			return err
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVarP(&format, "format", "f", "json", "output format: json, dot or mermaid")
	cmd.Flags().StringVar(&component, "component", "", "show only this component, what it needs and who calls it")
	return cmd
}

// getText fetches path and returns the answer as is.
func (c *client) getText(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reach the daemon at %s: %w (is it running?)", c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("daemon answered %s: %s", resp.Status, e.Error)
		}
		return nil, fmt.Errorf("daemon answered %s", resp.Status)
	}
	return body, nil
}
