package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"
)

type failoverOpts struct {
	rate        int
	warm, after time.Duration
	logLevel    slog.Level
	timeline    bool
}

func failoverCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("failover", flag.ContinueOnError)
	faults := fs.String("fault", "kill,stop,cut", "faults to inject, comma-separated: kill (kill -9), stop (SIGSTOP), cut (network blackhole, needs root)")
	proxies := fs.String("proxy", "phoenix,haproxy", "proxies to run, comma-separated: phoenix, haproxy")
	var o failoverOpts
	fs.IntVar(&o.rate, "rate", 2000, "requests per second, open loop")
	fs.DurationVar(&o.warm, "warm", 3*time.Second, "load before the fault")
	fs.DurationVar(&o.after, "after", 2*time.Second, "load after the standby served its first request")
	verbose := fs.Bool("v", false, "log the proxy's decisions and print a timeline of each run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.logLevel = slog.LevelError
	if *verbose {
		o.logLevel, o.timeline = slog.LevelInfo, true
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "latency and rate over the requests due from 1s before the fault on; failures over the whole run")
	fmt.Fprintln(tw, "fault\tproxy\trequests\tfailed\trate/s\tfault→standby\tp50\tp99\tmax\tfirst error")
	for _, fault := range strings.Split(*faults, ",") {
		for _, kind := range strings.Split(*proxies, ",") {
			r, err := runFailover(ctx, fault, kind, o)
			if err != nil {
				return fmt.Errorf("%s with %s: %w", fault, kind, err)
			}
			first := ""
			if len(r.FirstErrors) > 0 {
				first = r.FirstErrors[0]
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\n", fault, kind, r.Requests, r.Failed, r.Rate,
				fmtDur(r.toStandby), fmtDur(r.P50), fmtDur(r.P99), fmtDur(r.Max), first)
			tw.Flush()
		}
	}
	return nil
}

func fmtDur(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return d.Round(100 * time.Microsecond).String()
}

type failoverResult struct {
	summary
	toStandby time.Duration
}

// faulty is a primary that can be broken and restored.
type faulty struct {
	proc *proc
	cut  *netCut // nil unless the primary lives behind a cuttable link
}

func (f *faulty) inject(fault string) error {
	switch fault {
	case "kill":
		return f.proc.signal(syscall.SIGKILL)
	case "stop":
		return f.proc.signal(syscall.SIGSTOP)
	case "cut":
		return f.cut.cut()
	}
	return fmt.Errorf("unknown fault %q: use kill, stop or cut", fault)
}

func runFailover(ctx context.Context, fault, kind string, o failoverOpts) (failoverResult, error) {
	raiseFileLimit()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wrap []string
	listen := "127.0.0.1:0"
	var nc *netCut
	if fault == "cut" {
		var err error
		if nc, err = newNetCut(); err != nil {
			return failoverResult{}, err
		}
		defer nc.close()
		wrap, listen = nc.wrap(), nc.backendAddr
	}
	primary, err := startSelf(ctx, wrap, "backend", "-name", "primary", "-listen", listen)
	if err != nil {
		return failoverResult{}, err
	}
	defer primary.kill()
	standby, err := startSelf(ctx, nil, "backend", "-name", "standby")
	if err != nil {
		return failoverResult{}, err
	}
	defer standby.kill()

	var addr string
	switch kind {
	case "phoenix":
		addr, err = startPhoenix(ctx, primary, standby, o)
	case "haproxy":
		addr, err = startHAProxyFailover(ctx, primary, standby)
	default:
		err = fmt.Errorf("unknown proxy %q: use phoenix or haproxy", kind)
	}
	if err != nil {
		return failoverResult{}, err
	}

	l := startLoad("http://"+addr, o.rate, 15*time.Second)
	if !sleepCtx(ctx, o.warm) {
		l.halt()
		return failoverResult{}, ctx.Err()
	}
	f := &faulty{proc: primary, cut: nc}
	faultAt := time.Now()
	if err := f.inject(fault); err != nil {
		l.halt()
		return failoverResult{}, err
	}
	var first time.Time
	deadline := time.Now().Add(15 * time.Second)
	for first.IsZero() && time.Now().Before(deadline) && sleepCtx(ctx, 10*time.Millisecond) {
		first = l.firstServed("standby", faultAt)
	}
	sleepCtx(ctx, o.after)
	l.halt()
	if o.timeline {
		fmt.Fprintf(os.Stderr, "%s with %s, fault at +0 (%s):\n", fault, kind, faultAt.Format("15:04:05.000"))
		l.timeline(os.Stderr, faultAt.Add(-o.warm), faultAt, 250*time.Millisecond)
	}
	res := failoverResult{summary: l.summarize(faultAt.Add(-time.Second)), toStandby: -1}
	if !first.IsZero() {
		res.toStandby = first.Sub(faultAt)
	}
	return res, nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// startPhoenix runs Phoenix's proxy in its own process, switching when
// traffic.Confirmation confirms the failure (see switchOnFailure).
func startPhoenix(ctx context.Context, primary, standby *proc, o failoverOpts) (string, error) {
	args := []string{"proxy", "-backend", "primary=" + primary.url().String(), "-standby", "standby=" + standby.url().String()}
	if o.logLevel < slog.LevelError {
		args = append(args, "-v")
	}
	p, err := startSelf(ctx, nil, args...)
	if err != nil {
		return "", err
	}
	go func() { <-ctx.Done(); p.kill() }()
	return p.addr, nil
}

// startHAProxyFailover is the baseline: the same checks (every 200 ms,
// every 50 ms while a server's state is changing, 150 ms timeout, down
// after 3, up after 2), the standby as a backup server, and every retry
// HAProxy offers.
func startHAProxyFailover(ctx context.Context, primary, standby *proc) (string, error) {
	addr, err := freePort()
	if err != nil {
		return "", err
	}
	cfg := fmt.Sprintf(`global
  maxconn 8000
  nbthread 2
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 10s
  timeout check 150ms
  retries 3
  option redispatch 1
  retry-on all-retryable-errors
  option http-keep-alive
frontend fe
  bind %s
  default_backend be
backend be
  http-reuse always
  option httpchk GET /healthz
  server primary %s check inter 200ms fastinter 50ms fall 3 rise 2
  server standby %s check inter 200ms fastinter 50ms fall 3 rise 2 backup
`, addr, primary.addr, standby.addr)
	return addr, startHAProxy(ctx, cfg, addr)
}

// netCut puts the primary in its own network namespace behind a veth pair,
// and cuts the link with nftables drop rules: packets vanish, as on a
// failed network, rather than being refused.
type netCut struct {
	ns, hostIf, table string
	backendAddr       string
}

var netCuts atomic.Int32

func newNetCut() (*netCut, error) {
	id := (os.Getpid()%1000)*10 + int(netCuts.Add(1))%10
	n := &netCut{ns: fmt.Sprintf("phxb%d", id), hostIf: fmt.Sprintf("phxb%dh", id), table: fmt.Sprintf("phxb%d", id), backendAddr: "10.211.7.2:8080"}
	steps := [][]string{
		{"ip", "netns", "add", n.ns},
		{"ip", "link", "add", n.hostIf, "type", "veth", "peer", "name", "phxbns", "netns", n.ns},
		{"ip", "addr", "add", "10.211.7.1/30", "dev", n.hostIf},
		{"ip", "link", "set", n.hostIf, "up"},
		{"ip", "-n", n.ns, "addr", "add", "10.211.7.2/30", "dev", "phxbns"},
		{"ip", "-n", n.ns, "link", "set", "phxbns", "up"},
		{"ip", "-n", n.ns, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			n.close()
			return nil, fmt.Errorf("network namespace (needs root and iproute2): %v: %v: %s", s, err, out)
		}
	}
	return n, nil
}

func (n *netCut) wrap() []string { return []string{"ip", "netns", "exec", n.ns} }

func (n *netCut) cut() error {
	rules := fmt.Sprintf(`table inet %s {
  chain out { type filter hook output priority 0; policy accept; ip daddr 10.211.7.2 drop; }
  chain in { type filter hook input priority 0; policy accept; ip saddr 10.211.7.2 drop; }
}
`, n.table)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft (apt-get install -y nftables): %v: %s", err, out)
	}
	return nil
}

func (n *netCut) close() {
	exec.Command("nft", "delete", "table", "inet", n.table).Run()
	exec.Command("ip", "link", "del", n.hostIf).Run()
	exec.Command("ip", "netns", "del", n.ns).Run()
}
