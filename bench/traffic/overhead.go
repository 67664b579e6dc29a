package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

type overheadOpts struct {
	rounds         int
	duration       time.Duration
	conns, threads int
	rate           int
	rateDuration   time.Duration
	tcp            bool
}

func overheadCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("overhead", flag.ContinueOnError)
	var o overheadOpts
	fs.IntVar(&o.rounds, "rounds", 3, "interleaved rounds; medians are reported")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "wrk run length")
	fs.IntVar(&o.conns, "conns", 64, "wrk keep-alive connections")
	fs.IntVar(&o.threads, "threads", 2, "wrk threads")
	fs.IntVar(&o.rate, "rate", 2000, "requests per second of the fixed-rate latency run (0 skips it)")
	fs.DurationVar(&o.rateDuration, "rate-duration", 5*time.Second, "length of the fixed-rate run")
	fs.BoolVar(&o.tcp, "tcp", true, "also compare the TCP proxies (HAProxy mode tcp against Phoenix's TCP proxy), HTTP keep-alive through both")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		return fmt.Errorf("wrk is not installed: apt-get install -y wrk")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	backend, err := startSelf(ctx, nil, "backend", "-name", "b")
	if err != nil {
		return err
	}
	defer backend.kill()
	phoenix, err := startSelf(ctx, nil, "proxy", "-backend", "b=http://"+backend.addr)
	if err != nil {
		return err
	}
	defer phoenix.kill()
	phoenixTCP, err := startSelf(ctx, nil, "proxy", "-tcp", "-backend", "b=tcp://"+backend.addr)
	if err != nil {
		return err
	}
	defer phoenixTCP.kill()
	haproxy, err := startHAProxyPlain(ctx, backend.addr, "http")
	if err != nil {
		return err
	}
	haproxyTCP, err := startHAProxyPlain(ctx, backend.addr, "tcp")
	if err != nil {
		return err
	}
	targets := []struct{ name, addr string }{{"direct", backend.addr}, {"haproxy", haproxy}, {"phoenix", phoenix.addr}}
	if o.tcp {
		targets = append(targets, struct{ name, addr string }{"haproxy-tcp", haproxyTCP}, struct{ name, addr string }{"phoenix-tcp", phoenixTCP.addr})
	}
	runs := map[string][]measure{}
	for round := 1; round <= o.rounds; round++ {
		// Every other round runs the targets in the reverse order, so that
		// neither proxy is always measured right after the other: on a
		// shared machine a run's position in the round moves its result.
		order := slices.Clone(targets)
		if round%2 == 0 {
			slices.Reverse(order)
		}
		for _, t := range order {
			m, err := measureTarget(ctx, t.addr, o)
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			fmt.Fprintf(os.Stderr, "round %d %-8s %8.0f req/s  wrk p99 %-9s  p99 at %d/s %s\n", round, t.name, m.rps, m.p99, o.rate, m.rateP99)
			runs[t.name] = append(runs[t.name], m)
		}
	}
	report(runs, o)
	return nil
}

type measure struct {
	rps          float64
	p99, rateP99 time.Duration
}

func measureTarget(ctx context.Context, addr string, o overheadOpts) (measure, error) {
	out, err := exec.CommandContext(ctx, "wrk", "-t", strconv.Itoa(o.threads), "-c", strconv.Itoa(o.conns),
		"-d", o.duration.String(), "--latency", "http://"+addr+"/who").CombinedOutput()
	if err != nil {
		return measure{}, fmt.Errorf("wrk: %v: %s", err, out)
	}
	m, err := parseWrk(string(out))
	if err != nil {
		return measure{}, err
	}
	if o.rate > 0 {
		l := startLoad("http://"+addr, o.rate, 10*time.Second)
		warm := time.Now().Add(time.Second)
		sleepCtx(ctx, o.rateDuration+time.Second)
		l.halt()
		s := l.summarize(warm)
		if s.Failed > 0 {
			return measure{}, fmt.Errorf("%d of %d requests failed at %d/s: %v", s.Failed, s.Requests, o.rate, s.FirstErrors)
		}
		m.rateP99 = s.P99
	}
	return m, nil
}

var (
	wrkRPS = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkP99 = regexp.MustCompile(`\s99%\s+([0-9.]+)(us|ms|s)`)
)

// parseWrk reads the throughput and the 99th percentile latency from wrk's
// --latency report.
func parseWrk(out string) (measure, error) {
	rps, p99 := wrkRPS.FindStringSubmatch(out), wrkP99.FindStringSubmatch(out)
	if rps == nil || p99 == nil {
		return measure{}, fmt.Errorf("unexpected wrk output: %q", out)
	}
	if strings.Contains(out, "Non-2xx") || strings.Contains(out, "Socket errors") {
		return measure{}, fmt.Errorf("wrk saw errors: %s", out)
	}
	var m measure
	m.rps, _ = strconv.ParseFloat(rps[1], 64)
	v, _ := strconv.ParseFloat(p99[1], 64)
	unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[p99[2]]
	m.p99 = time.Duration(v * float64(unit))
	return m, nil
}

func median[T int64 | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func report(runs map[string][]measure, o overheadOpts) {
	med := func(name string) (rps float64, p99, rateP99 time.Duration) {
		var a []float64
		var b, c []time.Duration
		for _, m := range runs[name] {
			a, b, c = append(a, m.rps), append(b, m.p99), append(c, m.rateP99)
		}
		return median(a), median(b), median(c)
	}
	dRPS, dP99, dRate := med("direct")
	hRPS, hP99, hRate := med("haproxy")
	pRPS, pP99, pRate := med("phoenix")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "medians of %d rounds, wrk -t%d -c%d -d%s, keep-alive\n", o.rounds, o.threads, o.conns, o.duration)
	fmt.Fprintln(tw, "target\treq/s\twrk p99\tadded p99\tp99 at fixed rate\tadded")
	fmt.Fprintf(tw, "direct\t%.0f\t%s\t-\t%s\t-\n", dRPS, dP99, dRate)
	fmt.Fprintf(tw, "haproxy\t%.0f\t%s\t%s\t%s\t%s\n", hRPS, hP99, hP99-dP99, hRate, hRate-dRate)
	fmt.Fprintf(tw, "phoenix\t%.0f\t%s\t%s\t%s\t%s\n", pRPS, pP99, pP99-dP99, pRate, pRate-dRate)
	tw.Flush()
	if o.tcp {
		htRPS, htP99, htRate := med("haproxy-tcp")
		ptRPS, ptP99, ptRate := med("phoenix-tcp")
		fmt.Fprintf(tw, "haproxy-tcp\t%.0f\t%s\t%s\t%s\t%s\n", htRPS, htP99, htP99-dP99, htRate, htRate-dRate)
		fmt.Fprintf(tw, "phoenix-tcp\t%.0f\t%s\t%s\t%s\t%s\n", ptRPS, ptP99, ptP99-dP99, ptRate, ptRate-dRate)
		tw.Flush()
		fmt.Printf("tcp: throughput phoenix/haproxy = %.2f (per-round median %.2f); added p99 under saturation phoenix/haproxy = %s; at %d req/s = %s\n",
			ptRPS/htRPS, pairedRatio(runs["phoenix-tcp"], runs["haproxy-tcp"]), ratio(ptP99-dP99, htP99-dP99), o.rate, ratio(ptRate-dRate, htRate-dRate))
	}
	fmt.Printf("throughput phoenix/haproxy = %.2f (target >= 0.9); median of the per-round ratios %.2f\n", pRPS/hRPS, pairedRatio(runs["phoenix"], runs["haproxy"]))
	fmt.Printf("added p99 under saturation phoenix/haproxy = %s (target <= 1.2)\n", ratio(pP99-dP99, hP99-dP99))
	if o.rate > 0 {
		fmt.Printf("added p99 at %d req/s phoenix/haproxy = %s (target <= 1.2)\n", o.rate, ratio(pRate-dRate, hRate-dRate))
	}
}

// pairedRatio is the median over rounds of a's throughput over b's in the
// same round: runs next to each other share the machine's load of the moment.
func pairedRatio(a, b []measure) float64 {
	var rs []float64
	for i := range min(len(a), len(b)) {
		rs = append(rs, a[i].rps/b[i].rps)
	}
	if len(rs) == 0 {
		return 0
	}
	return median(rs)
}

// xForwarded is the HAProxy frontend's lines that add the X-Forwarded-*
// headers Phoenix's proxy adds (bench/traffic/cpu.sh has the same).
const xForwarded = `  option forwardfor
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-request set-header X-Forwarded-Proto http
`

// ratio is a/b, two added latencies, as text: none when b is not positive
// (the proxy's p99 below the direct one's, which happens under saturation,
// where wrk's own scheduling decides its p99), as no ratio means anything
// then.
func ratio(a, b time.Duration) string {
	if b <= 0 {
		return fmt.Sprintf("none (haproxy's added p99 is %s)", b)
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b))
}

// startHAProxyPlain is HAProxy as a plain reverse proxy (mode http: keep-alive
// on both sides, its default) or TCP proxy, with the same health check
// interval as Phoenix's proxy. As a reverse proxy it adds the
// X-Forwarded-For, -Host and -Proto headers Phoenix's proxy adds, so that
// the backend gets the same requests from both (three more headers for
// net/http to parse cost the backend 2-3 µs a request here, which without
// them would be counted against Phoenix).
func startHAProxyPlain(ctx context.Context, backend, mode string) (string, error) {
	addr, err := freePort()
	if err != nil {
		return "", err
	}
	forwarded := ""
	if mode == "http" {
		forwarded = xForwarded
	}
	cfg := fmt.Sprintf(`global
  maxconn 8000
  nbthread 2
defaults
  mode %s
  timeout connect 2s
  timeout client 30s
  timeout server 30s
frontend fe
  bind %s
%s  default_backend be
backend be
  server b %s check inter 200ms fall 3 rise 2
`, mode, addr, forwarded, backend)
	return addr, startHAProxy(ctx, cfg, addr)
}
