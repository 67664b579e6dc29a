// Command replicate benchmarks Phoenix's state transfer against its
// baselines, side by side in one run, on a generated data directory:
//
//   - snapshot throughput against "tar -C src -cf - . | tar -C dst -xf -";
//   - an incremental round after 1% of the directory changed, against
//     Debian's rsync to an rsync daemon over loopback: bytes on the wire
//     (counted the same way for both, by a TCP proxy in front of each
//     receiver) and wall time.
//
// Phoenix runs as real "phoenix agent" processes (a source agent pushing to
// a target agent); rsync as "rsync --daemon" and its client. Run it from
// the repository root:
//
//	go run ./bench/replicate --size 1GiB
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "agent" {
		os.Exit(agentMain(ctx, os.Args[2:]))
	}
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	work    string
	size    int64
	phoenix string
	runs    int
	keep    bool
	skipInc bool
	changes int
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replicate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var size string
	fs.StringVar(&o.work, "work", "", "directory for the data (default: a new one under $TMPDIR)")
	fs.StringVar(&size, "size", "1GiB", "size of the generated data directory")
	fs.StringVar(&o.phoenix, "phoenix", "", "phoenix binary to run the agents with (default: this program, which runs the same replicate.Agent as \"phoenix agent\")")
	fs.IntVar(&o.runs, "runs", 3, "snapshot runs of each contender; the best counts")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory")
	fs.BoolVar(&o.skipInc, "snapshot-only", false, "run the snapshot comparison only, not the incremental one")
	fs.IntVar(&o.changes, "changes", 3, "incremental comparisons, each after a new 1% change (2 to 7): the first with Phoenix's chunk cache cold, the rest warm; the medians of the warm ones are reported")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	n, err := parseSize(size)
	if err != nil {
		fmt.Fprintln(stderr, "replicate bench:", err)
		return 2
	}
	o.size = n
	if o.changes < 2 || o.changes > 7 {
		fmt.Fprintf(stderr, "replicate bench: -changes %d: write 2 to 7 (the generated tree has index files for 7 changes)\n", o.changes)
		return 2
	}
	if err := bench(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "replicate bench:", err)
		return 1
	}
	return 0
}

func bench(ctx context.Context, o options, stdout, stderr io.Writer) error {
	for _, tool := range []string{"rsync", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (apt-get install %s)", tool, tool)
		}
	}
	if o.work == "" {
		dir, err := os.MkdirTemp("", "phoenix-replicate-bench-")
		if err != nil {
			return err
		}
		o.work = dir
	}
	if !o.keep {
		defer os.RemoveAll(o.work)
	}
	if o.phoenix == "" {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		o.phoenix = self
	}
	src := filepath.Join(o.work, "src")
	fmt.Fprintf(stderr, "generating %s of data in %s...\n", human(o.size), src)
	start := time.Now()
	if err := generate(src, o.size); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "generated in %s\n", time.Since(start).Round(time.Millisecond))
	// Write the generated data back first, so no contender pays for it.
	if _, err := shell(ctx, "sync"); err != nil {
		return err
	}

	env, err := startEnv(ctx, o, stderr)
	if err != nil {
		return err
	}
	defer env.stop()

	snap, err := benchSnapshot(ctx, o, env, src, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, snap)
	if o.skipInc {
		return nil
	}
	inc, err := benchIncremental(ctx, o, env, src, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, inc)
	return nil
}
