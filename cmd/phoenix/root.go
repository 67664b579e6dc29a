package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// exitError carries a specific exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// run builds the command tree and executes it. Exit codes: 0 success, 1 the
// work failed, 2 the command line was wrong.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := &cobra.Command{
		Use:   "phoenix",
		Short: "Predict which component is about to fail, pre-warm it elsewhere, switch before it falls",
		Long: `Phoenix watches every component of an application, predicts which one is about to
fail, pre-warms that component and what it depends on in a secondary environment,
copies its state there and moves its traffic when the failure comes (or just before,
when it is nearly certain), with no failed request and no lost write.

Start with "phoenix demo": it runs a real three-service application, a failure and
Phoenix's response on this machine, with nothing to set up.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetContext(ctx)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: 2, err: fmt.Errorf("%w\nsee '%s --help'", err, c.CommandPath())}
	})
	root.AddCommand(
		newRunCmd(),
		newDemoCmd(),
		newStatusCmd(),
		newEventsCmd(),
		newSwitchCmd(),
		newFailbackCmd(),
		newGraphCmd(),
		newShopCmd(),
		newEvalCmd(),
		newAgentCmd(),
		newDockerCmd(),
	)
	err := root.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "phoenix:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if isUsageError(err) {
		return 2
	}
	return 1
}

// isUsageError recognises cobra's own complaints about the command line.
func isUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires at least", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

func usageErr(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}
