package replicate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Hooks are commands the component's owner supplies, as argv lists. In
// their arguments {src} and {dst} stand for the source and destination
// (directory or agent URL) and {mode} for "full" or "incremental".
type Hooks struct {
	// Pre runs before a transfer: quiesce the component (flush, pause
	// writes, checkpoint). A failure stops the transfer.
	Pre []string
	// Command is the hook method's transfer itself, e.g. a database's own
	// replication tool. The snapshot and incremental methods ignore it.
	Command []string
	// Post runs after the transfer, also a failed one: resume the
	// component. Its failure is reported with the transfer's.
	Post []string
	// Env is added to the commands' environment (KEY=value).
	Env []string
	// Timeout bounds each command; 0 means DefaultHookTimeout.
	Timeout time.Duration
}

// DefaultHookTimeout bounds a hook command that sets no Timeout.
const DefaultHookTimeout = 5 * time.Minute

// maxHookOutput is how much of a failed command's output an error quotes.
const maxHookOutput = 2 << 10

// run runs the argv with the placeholders replaced. An empty argv does
// nothing.
func (h Hooks) run(ctx context.Context, what string, argv []string, vars map[string]string) error {
	if len(argv) == 0 {
		return nil
	}
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = DefaultHookTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := make([]string, len(argv))
	for i, a := range argv {
		for k, v := range vars {
			a = strings.ReplaceAll(a, "{"+k+"}", v)
		}
		args[i] = a
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), h.Env...)
	cmd.WaitDelay = time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err == nil {
		return nil
	}
	msg := bytes.TrimSpace(out.Bytes())
	if len(msg) > maxHookOutput {
		msg = append(msg[:maxHookOutput:maxHookOutput], "..."...)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after %s: %w", timeout, err)
	}
	return fmt.Errorf("%s hook %q: %w; output: %s", what, args[0], err, msg)
}

// around runs Pre, then fn, then Post (also when fn failed).
func (h Hooks) around(ctx context.Context, vars map[string]string, fn func() (Stats, error)) (Stats, error) {
	if err := h.run(ctx, "pre", h.Pre, vars); err != nil {
		return Stats{}, err
	}
	st, err := fn()
	// Resume the component even if ctx ended: it must not stay paused.
	if perr := h.run(context.WithoutCancel(ctx), "post", h.Post, vars); perr != nil {
		err = errors.Join(err, perr)
	}
	return st, err
}
