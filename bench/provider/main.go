// Command provider measures provision-to-ready time of a replica on the
// process and docker providers: from the Provision call to the first 200 on
// the instance's /healthz. Each is compared, in the same run and
// interleaved with it, with its baseline: the plain start of the same
// program (exec, then the same readiness poll) for process, and the plain
// start of the same image (what "docker run -d" does through the API:
// create, start, no limits, no bind mount, the default bridge) for docker.
//
//	go run ./bench/provider -runs 21
//	go run ./bench/provider -runs 21 -workload shop   # phoenix shop inventory
//
// It prints the medians, the 90th percentiles and each provider's ratio to
// its baseline, as a table and (with -json) as one JSON object.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/phoenixsre/phoenix/provider"
	"github.com/phoenixsre/phoenix/provider/docker"
	"github.com/phoenixsre/phoenix/provider/process"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench/provider:", err)
		os.Exit(1)
	}
}

type options struct {
	runs     int
	module   string
	workload string
	jsonOut  bool
	noDocker bool
}

// workload is the program measured: its binary and its argv after argv[0]
// for a listen address and a data directory.
type workload struct {
	bin  string
	args func(addr, dataDir string) []string
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var o options
	fs := flag.NewFlagSet("provider", flag.ContinueOnError)
	fs.IntVar(&o.runs, "runs", 21, "measurements per case (odd: the median is one of them)")
	fs.StringVar(&o.module, "module", ".", "the phoenix module's directory (to build the test server)")
	fs.StringVar(&o.workload, "workload", "testserver", "what runs: testserver (a minimal HTTP server) or shop (phoenix shop inventory, built statically from -module)")
	fs.BoolVar(&o.jsonOut, "json", false, "print one JSON object instead of the table")
	fs.BoolVar(&o.noDocker, "no-docker", false, "measure the process provider only")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.runs < 1 {
		return errors.New("-runs must be at least 1")
	}
	work, err := os.MkdirTemp("", "phoenix-bench-provider-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	var w workload
	switch o.workload {
	case "testserver":
		w.bin = filepath.Join(work, "testserver")
		w.args = func(addr, dataDir string) []string { return []string{addr, dataDir} }
		err = docker.BuildBinary(ctx, o.module, "./provider/docker/testdata/testserver", w.bin)
	case "shop":
		w.bin = filepath.Join(work, "phoenix")
		w.args = func(addr, _ string) []string { return []string{"shop", "inventory", "--listen", addr} }
		err = docker.BuildBinary(ctx, o.module, "./cmd/phoenix", w.bin)
	default:
		return fmt.Errorf("-workload %q: use testserver or shop", o.workload)
	}
	if err != nil {
		return err
	}

	results := map[string][]time.Duration{}
	cases, cleanup, err := setup(ctx, o, w, work)
	defer cleanup()
	if err != nil {
		return err
	}
	// Warm up each case once (page cache, image layers), then interleave
	// the cases run by run so that drift in the machine's load hits all.
	for _, c := range cases {
		if _, err := c.measure(ctx, -1); err != nil {
			return fmt.Errorf("%s: warm-up: %w", c.name, err)
		}
	}
	for i := range o.runs {
		for _, c := range cases {
			d, err := c.measure(ctx, i)
			if err != nil {
				return fmt.Errorf("%s run %d: %w", c.name, i, err)
			}
			results[c.name] = append(results[c.name], d)
		}
	}
	return report(out, o, cases, results)
}

// benchCase is one way of starting the program, measured to readiness.
type benchCase struct {
	name     string
	baseline string // the case this one is compared with; "" for a baseline
	measure  func(ctx context.Context, i int) (time.Duration, error)
}

func setup(ctx context.Context, o options, w workload, work string) ([]benchCase, func(), error) {
	var cleanups []func()
	cleanup := func() {
		for _, f := range slices.Backward(cleanups) {
			f()
		}
	}
	proc, err := process.New(process.Config{Root: filepath.Join(work, "process")})
	if err != nil {
		return nil, cleanup, err
	}
	cases := []benchCase{
		{name: "process start (baseline)", measure: func(ctx context.Context, i int) (time.Duration, error) {
			return plainProcess(ctx, w, work)
		}},
		{name: "process provider", baseline: "process start (baseline)", measure: func(ctx context.Context, i int) (time.Duration, error) {
			return viaProvider(ctx, proc, append([]string{w.bin}, w.args("{addr}", "{data_dir}")...), i)
		}},
	}
	if o.noDocker {
		return cases, cleanup, nil
	}
	cli, err := docker.NewClient()
	if err != nil {
		return nil, cleanup, err
	}
	if err := docker.Ping(ctx, cli); err != nil {
		return nil, cleanup, fmt.Errorf("%w (or run with -no-docker)", err)
	}
	img, err := docker.EnsureImage(ctx, cli, w.bin, "phoenix-bench")
	if err != nil {
		return nil, cleanup, err
	}
	ns := "phxbench-" + strconv.Itoa(os.Getpid())
	dp, err := docker.New(docker.Config{Client: cli, Image: img.Ref, Namespace: ns, Network: ns + "-net",
		Root: filepath.Join(work, "docker"), StopTimeout: time.Second})
	if err != nil {
		return nil, cleanup, err
	}
	cleanups = append(cleanups, func() {
		c, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = dp.ReleaseAll(c)
		_ = docker.RemoveNetwork(c, cli, ns+"-net")
	})
	cases = append(cases,
		benchCase{name: "docker run (baseline)", measure: func(ctx context.Context, i int) (time.Duration, error) {
			return plainContainer(ctx, cli, img.Ref, w.args("0.0.0.0:8080", "/tmp"))
		}},
		benchCase{name: "docker provider", baseline: "docker run (baseline)", measure: func(ctx context.Context, i int) (time.Duration, error) {
			return viaProvider(ctx, dp, append([]string{docker.ImageExecutable}, w.args("{addr}", "{data_dir}")...), i)
		}},
	)
	return cases, cleanup, nil
}

// viaProvider provisions an instance, waits for it to answer, then
// releases it (not timed).
func viaProvider(ctx context.Context, p provider.Provider, argv []string, i int) (time.Duration, error) {
	spec := provider.Spec{ID: fmt.Sprintf("bench-%d", i+1), Component: "bench", Command: argv}
	start := time.Now()
	inst, err := p.Provision(ctx, spec)
	if err != nil {
		return 0, err
	}
	defer func() { _ = p.Release(context.WithoutCancel(ctx), spec.ID) }()
	if err := ready(ctx, inst.Addr); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// plainProcess starts the program as a child with a port picked the same
// way, and waits for it to answer.
func plainProcess(ctx context.Context, w workload, work string) (time.Duration, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	addr := l.Addr().String()
	l.Close()
	start := time.Now()
	cmd := exec.Command(w.bin, w.args(addr, work)...)
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := ready(ctx, addr); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// plainContainer does what "docker run -d IMAGE ARGS..." does through the
// API, and waits for the container's address to answer.
func plainContainer(ctx context.Context, cli *client.Client, image string, args []string) (time.Duration, error) {
	start := time.Now()
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{Image: image, Cmd: args, Labels: map[string]string{docker.LabelNamespace: "phxbench-plain"}},
	})
	if err != nil {
		return 0, err
	}
	defer func() {
		_, _ = cli.ContainerRemove(context.WithoutCancel(ctx), created.ID, client.ContainerRemoveOptions{Force: true})
	}()
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return 0, err
	}
	got, err := cli.ContainerInspect(ctx, created.ID, client.ContainerInspectOptions{})
	if err != nil {
		return 0, err
	}
	ip := got.Container.NetworkSettings.Networks["bridge"]
	if ip == nil || !ip.IPAddress.IsValid() {
		return 0, errors.New("the plain container has no address on the default bridge")
	}
	if err := ready(ctx, net.JoinHostPort(ip.IPAddress.String(), "8080")); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// ready polls GET /healthz every 5ms until it answers 200 (30s at most).
func ready(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s never answered: %w", addr, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

type row struct {
	Case        string  `json:"case"`
	Runs        int     `json:"runs"`
	MedianMS    float64 `json:"median_ms"`
	P90MS       float64 `json:"p90_ms"`
	MinMS       float64 `json:"min_ms"`
	Baseline    string  `json:"baseline,omitempty"`
	RatioToBase float64 `json:"ratio_to_baseline,omitempty"`
}

func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1)+0.5)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func report(out io.Writer, o options, cases []benchCase, results map[string][]time.Duration) error {
	var rows []row
	for _, c := range cases {
		ds := results[c.name]
		r := row{Case: c.name, Runs: len(ds), MedianMS: ms(quantile(ds, 0.5)), P90MS: ms(quantile(ds, 0.9)), MinMS: ms(quantile(ds, 0)), Baseline: c.baseline}
		if c.baseline != "" {
			r.RatioToBase = float64(quantile(ds, 0.5)) / float64(quantile(results[c.baseline], 0.5))
		}
		rows = append(rows, r)
	}
	if o.jsonOut {
		return json.NewEncoder(out).Encode(map[string]any{"workload": o.workload, "runs": o.runs, "results": rows})
	}
	fmt.Fprintf(out, "provision-to-ready of %s, %d runs each, interleaved\n\n", o.workload, o.runs)
	fmt.Fprintf(out, "%-26s %10s %10s %10s  %s\n", "case", "median ms", "p90 ms", "min ms", "median / baseline")
	for _, r := range rows {
		ratio := ""
		if r.Baseline != "" {
			ratio = fmt.Sprintf("%.2fx %s", r.RatioToBase, r.Baseline)
		}
		fmt.Fprintf(out, "%-26s %10.1f %10.1f %10.1f  %s\n", r.Case, r.MedianMS, r.P90MS, r.MinMS, ratio)
	}
	return nil
}
