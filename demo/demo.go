package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/config"
	"github.com/phoenixsre/phoenix/control"
	"github.com/phoenixsre/phoenix/daemon"
	"github.com/phoenixsre/phoenix/provider"
	"github.com/phoenixsre/phoenix/provider/process"
)

// Scenarios the demo can play.
var Scenarios = []string{"leak", "crash", "false-alarm"}

// killOnPrewarm, appended to "leak", is a scenario for tests: the primary
// is killed from outside as soon as the replica is ready.
const killOnPrewarm = "+kill-on-prewarm"

// Options configure a demo run.
type Options struct {
	Scenario string
	// Executable is the phoenix binary; the shop's services are started
	// from it (phoenix shop ...).
	Executable string
	// Timeline receives the readable timeline.
	Timeline io.Writer
	// WorkDir holds the run's files; empty means a temporary directory,
	// removed at the end unless Keep.
	WorkDir string
	Keep    bool
	// Rate is the load in requests per second; default 200.
	Rate int
	// Provider runs both environments: "process" (the default) or
	// "docker" (the shop and the replicas as containers on two networks).
	Provider string
	// Warmup is how long steady traffic runs, watched, before the fault;
	// default 5s. A long one shows what protection costs over time.
	Warmup time.Duration
	// budget caps the secondary's instance-hours per day (tests).
	budget float64
	// wrapProvider, if set, is given the secondary's process provider and
	// returns the one Phoenix uses (tests: a provider that refuses).
	wrapProvider func(provider.Provider) provider.Provider
}

// Run plays one scenario from start to end and returns its summary. The
// shop runs as real processes in a "primary" environment, Phoenix runs
// in-process with its proxies in front of every service, and a load
// generator sends traffic through them the whole time.
func Run(ctx context.Context, o Options) (sum Summary, err error) {
	if !validScenario(strings.TrimSuffix(o.Scenario, killOnPrewarm)) {
		return sum, fmt.Errorf("unknown scenario %q: choose one of %s", o.Scenario, strings.Join(Scenarios, ", "))
	}
	if o.Rate <= 0 {
		o.Rate = 200
	}
	if o.Warmup <= 0 {
		o.Warmup = 5 * time.Second
	}
	switch o.Provider {
	case "":
		o.Provider = "process"
	case "process", "docker":
	default:
		return sum, fmt.Errorf("unknown provider %q: choose process or docker", o.Provider)
	}
	if o.Timeline == nil {
		o.Timeline = io.Discard
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second+o.Warmup)
	defer cancel()

	work := o.WorkDir
	if work == "" {
		if work, err = os.MkdirTemp("", "phoenix-demo-"); err != nil {
			return sum, fmt.Errorf("work directory: %w", err)
		}
		if !o.Keep {
			defer os.RemoveAll(work)
		}
	}
	r := &run{o: o, work: work, tl: newTimeline(o.Timeline), sum: Summary{Scenario: o.Scenario}, ports: &portSet{}}
	r.began = time.Now()
	r.sum.StartedAt = r.began
	defer r.teardown()
	if err := r.setup(ctx); err != nil {
		return r.sum, err
	}
	if err := r.play(ctx); err != nil {
		return r.sum, err
	}
	return r.finish(ctx)
}

func validScenario(s string) bool {
	for _, v := range Scenarios {
		if v == s {
			return true
		}
	}
	return false
}

// run is one demo in progress.
type run struct {
	o     Options
	work  string
	tl    *timeline
	sum   Summary
	ports *portSet

	adminToken string
	d          *daemon.Daemon
	cfg        config.Config
	stopDaemon context.CancelFunc
	daemonDone chan error
	primary    primaryEnv
	docker     *dockerEnv // set on the docker provider
	services   map[string]shopService
	load       *loadGen
	stopLoad   context.CancelFunc
	loadDone   chan struct{}
	began      time.Time
	protected  time.Time // when the daemon started watching
	events     *eventWatch
}

func (r *run) setup(ctx context.Context) error {
	r.tl.start(r.began)
	r.adminToken = randomToken()
	var err error
	switch r.o.Provider {
	case "docker":
		r.tl.say("phoenix", "docker: checking the engine and making the image (the first run builds a static phoenix)")
		dk, err := newDockerEnv(ctx, r.o.Executable, r.work)
		if err != nil {
			return err
		}
		r.primary, r.docker = dk, dk
	default:
		r.primary = processEnv{exe: r.o.Executable, work: r.work, ports: r.ports}
	}
	// The proxies and the OTLP receiver listen where the services can reach
	// them; their ports are reserved now, because the services are started
	// (and told where to call) before the daemon binds them.
	ports, err := r.ports.free(r.primary.host(), 4)
	if err != nil {
		return err
	}
	proxy := map[string]string{"gateway": ports[0], "orders": ports[1], "inventory": ports[2]}
	stateDir := filepath.Join(r.work, "state")
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}
	// The daemon's token is made here so that the services' OTLP exporters
	// and the replicas' commands can carry it.
	token := randomToken()
	if err := os.WriteFile(filepath.Join(stateDir, "token"), []byte(token+"\n"), 0o600); err != nil {
		return err
	}
	var ordersDir string
	r.services, ordersDir, err = startShop(ctx, r.primary, shopEnv{proxy: proxy, otlp: ports[3], token: token, adminToken: r.adminToken},
		func(format string, args ...any) { r.tl.say("shop", format, args...) })
	if err != nil {
		return err
	}
	data := configData{
		StateDir: stateDir, OrdersDir: ordersDir, AdminToken: r.adminToken, Token: token,
		API: "127.0.0.1:0", OTLP: ports[3], Proxy: proxy, ReleaseAfter: "5s", Primary: map[string]string{}, Budget: r.o.budget,
	}
	for name, s := range r.services {
		data.Primary[name] = s.addr()
	}
	if r.docker != nil {
		data.Docker = &dockerConfig{Image: r.docker.image, Network: r.docker.secondary, Namespace: r.docker.ns + "-s",
			MilliCPU: containerSize.MilliCPU, Memory: containerSize.MemoryBytes}
	}
	cfgPath := filepath.Join(r.work, "phoenix.yaml")
	if err := writeConfig(cfgPath, data); err != nil {
		return err
	}
	if r.cfg, err = config.Load(cfgPath); err != nil {
		return fmt.Errorf("demo config: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(r.work, "phoenix.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	dopts := daemon.Options{
		Logger:     slog.New(slog.NewJSONHandler(logf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Executable: r.o.Executable,
	}
	if r.o.wrapProvider != nil && r.docker != nil {
		return errors.New("wrapProvider wraps the process provider; it cannot be used with docker")
	}
	if r.o.wrapProvider != nil {
		p, err := process.New(process.Config{Root: r.cfg.Secondary.Process.Root, Host: r.cfg.Secondary.Process.Host,
			Logger: dopts.Logger.With("part", "provider")})
		if err != nil {
			return err
		}
		dopts.Provider = r.o.wrapProvider(p)
	}
	r.d, err = daemon.New(ctx, r.cfg, dopts)
	if err != nil {
		return fmt.Errorf("start phoenix: %w", err)
	}
	dctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	r.stopDaemon, r.daemonDone = stop, make(chan error, 1)
	go func() { r.daemonDone <- r.d.Run(dctx) }()
	r.protected = time.Now()
	r.events = watchEvents(dctx, r.d.Store(), r.tl)
	r.tl.say("phoenix", "daemon up (%s provider): API %s, OTLP %s, proxies gateway %s, orders %s, inventory %s (config %s, log %s)",
		r.cfg.Secondary.Provider, r.d.APIAddr(), r.d.OTLPAddr(), r.d.ProxyAddr("gateway"), r.d.ProxyAddr("orders"), r.d.ProxyAddr("inventory"),
		cfgPath, filepath.Join(r.work, "phoenix.log"))

	// Traffic starts once the proxies have seen every primary healthy, as
	// it would reach a Phoenix put in front of a running application:
	// requests sent before are held until then, and the latency of those
	// holds, seen in the shop's metrics, is no part of the scenario.
	start := time.Now()
	for healthy := false; !healthy && time.Since(start) < 10*time.Second; {
		healthy = true
		for _, cs := range r.d.Controller().Status().Components {
			healthy = healthy && cs.Healthy
		}
		if !healthy {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	r.load = newLoadGen("http://"+r.d.ProxyAddr("gateway"), r.o.Rate, 16)
	lctx, lstop := context.WithCancel(context.WithoutCancel(ctx))
	r.stopLoad, r.loadDone = lstop, make(chan struct{})
	go func() { defer close(r.loadDone); r.load.run(lctx) }()
	r.tl.say("load", "sending %d requests/s through the gateway's proxy (half writes of new keys, half reads checked against what was written; no retries)", r.o.Rate)
	return nil
}

// play runs the scenario's script.
func (r *run) play(ctx context.Context) error {
	// Let the engine learn the baseline and the mapper see the traces.
	if err := r.waitFor(ctx, r.o.Warmup+time.Second, func() bool {
		return len(r.d.Graph().Closure("gateway")) >= 2 && time.Since(r.protected) > r.o.Warmup
	}); err != nil && !errors.Is(err, errTimeout) {
		return err
	}
	r.tl.say("phoenix", "dependency graph from traces: gateway needs %v", r.d.Graph().Closure("gateway"))
	orders := r.services["orders"]
	switch r.o.Scenario {
	case "leak" + killOnPrewarm:
		// The failure comes sooner than forecast: a slow leak is predicted,
		// and the primary is killed from outside once the replica is ready.
		r.tl.say("fault", "orders@primary starts leaking memory at 4 MiB/s")
		if err := fault(ctx, orders, r.adminToken, `{"kind":"leak","bytes_per_second":4194304}`); err != nil {
			return err
		}
		if err := r.waitFor(ctx, 60*time.Second, r.events.prewarmed); err != nil {
			return fmt.Errorf("no replica was pre-warmed: %w", err)
		}
		r.tl.say("fault", "orders@primary is killed with SIGKILL before the leak kills it")
		if err := orders.kill(ctx); err != nil {
			return err
		}
		return r.awaitFailureAndSwitch(ctx, orders, 10*time.Second)
	case "leak":
		r.tl.say("fault", "orders@primary starts leaking memory at 8 MiB/s; it is killed when it passes its 160 MiB limit")
		if err := fault(ctx, orders, r.adminToken, `{"kind":"leak","bytes_per_second":8388608}`); err != nil {
			return err
		}
		return r.awaitFailureAndSwitch(ctx, orders, 40*time.Second)
	case "crash":
		r.tl.say("fault", "orders@primary is killed with SIGKILL, with no warning")
		if err := fault(ctx, orders, r.adminToken, `{"kind":"crash"}`); err != nil && !orders.exited() {
			return err
		}
		return r.awaitFailureAndSwitch(ctx, orders, 5*time.Second)
	case "false-alarm":
		// 4 MiB/s for 8 s takes orders from about 60 to 95 MB of its 168:
		// near enough to the limit to be predicted and pre-warmed, far enough
		// that a busy host, whose garbage collector lags, does not carry it
		// within a switch's reach (5 MiB/s for 9 s did, at a load average
		// of 5).
		r.tl.say("fault", "orders@primary's memory climbs at 4 MiB/s for 8 s, then the leak stops and the memory is freed")
		if err := fault(ctx, orders, r.adminToken, `{"kind":"leak","bytes_per_second":4194304}`); err != nil {
			return err
		}
		if err := r.sleep(ctx, 8*time.Second); err != nil {
			return err
		}
		if err := fault(ctx, orders, r.adminToken, `{"kind":"clear"}`); err != nil {
			return err
		}
		r.tl.say("fault", "orders@primary recovered: leak stopped, memory freed")
		// Settled: the replica was released, or, if none was made (or its
		// pre-warm failed), no allocation has been open for a while.
		recovered := time.Now()
		return r.waitFor(ctx, 40*time.Second, func() bool {
			return r.events.released() || (!r.events.prewarmed() && time.Since(recovered) > 10*time.Second && !r.allocationOpen())
		})
	}
	return nil
}

// allocationOpen reports whether any allocation is still in progress.
func (r *run) allocationOpen() bool {
	as, err := r.d.Store().Allocations()
	if err != nil {
		return true // unknown: keep waiting
	}
	return slices.ContainsFunc(as, func(a phoenix.Allocation) bool { return !a.Phase.Done() })
}

// awaitFailureAndSwitch waits for the faulty service to die, notes when,
// and waits for Phoenix to have switched its traffic.
func (r *run) awaitFailureAndSwitch(ctx context.Context, s shopService, within time.Duration) error {
	if err := r.waitFor(ctx, within, s.exited); err != nil {
		return fmt.Errorf("%s did not die: %w", s.name(), err)
	}
	r.noteFailure(s)
	return r.waitFor(ctx, 20*time.Second, r.events.switched)
}

func (r *run) noteFailure(s shopService) {
	at := s.exitTime()
	r.sum.FailedAt = &at
	r.tl.sayAt(at, "fault", "orders@primary died (%s)", s.exitReason())
}

// finish lets traffic run on the new route for a moment, stops it, reads
// every acknowledged key back, and fills in the summary.
func (r *run) finish(ctx context.Context) (Summary, error) {
	if err := r.sleep(ctx, 3*time.Second); err != nil {
		return r.sum, err
	}
	r.stopLoad()
	<-r.loadDone
	end := time.Now()
	r.tl.say("load", "stopped: %d requests, %d failed", r.load.total.Load(), r.load.failed.Load())
	written, lost, err := r.load.verify(ctx)
	if err != nil {
		return r.sum, fmt.Errorf("read back: %w", err)
	}
	r.tl.say("audit", "read back all %d acknowledged keys through the gateway: %d missing or wrong", written, lost)
	for _, e := range r.d.Graph().Edges() {
		r.sum.Edges = append(r.sum.Edges, fmt.Sprintf("%s->%s (%s)", e.From, e.To, strings.Join(e.Sources, ", ")))
	}
	r.tl.say("phoenix", "dependency graph, with where each edge was learnt: %s", strings.Join(r.sum.Edges, "; "))

	s := &r.sum
	ev := r.events.snapshot()
	s.PredictedAt, s.PrewarmedAt, s.SwitchedAt, s.ReleasedAt, s.DetectedAt = ev.predicted, ev.prewarmed, ev.switched, ev.released, ev.detected
	s.Switched = ev.switched != nil
	s.SwitchedPreemptively = ev.preemptive
	if s.FailedAt != nil && s.PrewarmedAt != nil {
		lt := s.FailedAt.Sub(*s.PrewarmedAt).Seconds()
		s.LeadTimeS = &lt
	}
	s.RequestsTotal = r.load.total.Load()
	s.RequestsFailed = r.load.failed.Load()
	s.FailureReasons = r.load.failureReasons()
	s.KeysWritten, s.KeysLost = written, lost
	allocs, err := r.d.Store().Allocations()
	if err != nil {
		return *s, err
	}
	for _, a := range allocs {
		s.SecondaryInstanceSeconds += control.InstanceSeconds(a, end)
	}
	// A hot standby would have run beside every component for as long as
	// Phoenix protected them.
	s.HotStandbyInstanceSeconds = float64(len(r.cfg.Components)) * end.Sub(r.protected).Seconds()
	s.DurationS = end.Sub(r.began).Seconds()
	s.check()
	return *s, nil
}

var errTimeout = errors.New("timed out")

func (r *run) waitFor(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	status := time.NewTicker(2 * time.Second)
	defer status.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("%w after %s", errTimeout, d)
		case <-status.C:
			r.sayRisk()
		case <-tick.C:
		}
	}
	return nil
}

func (r *run) sleep(ctx context.Context, d time.Duration) error {
	err := r.waitFor(ctx, d, func() bool { return false })
	if errors.Is(err, errTimeout) {
		return nil
	}
	return err
}

// sayRisk prints the orders component's risk, so the reader sees the
// prediction build.
func (r *run) sayRisk() {
	for _, c := range r.d.Controller().Status().Components {
		if c.Name != "orders" {
			continue
		}
		detail := "no signal yet"
		if len(c.Risk.Signals) > 0 {
			detail = c.Risk.Signals[0].Reason
		}
		r.tl.say("risk", "orders P(fail within %s) = %.2f [%.2f, %.2f]; %s; traffic: %d requests, %d failed",
			c.Risk.Horizon, c.Risk.Probability, c.Risk.Lower, c.Risk.Upper, detail, r.load.total.Load(), r.load.failed.Load())
	}
}

// teardown stops everything the run started, whatever happened: the load,
// the daemon (before the services, or it would see them stop as failures
// and act on them), the primary services, and the replicas the daemon left
// running (they outlive a daemon by design, so the demo releases them
// itself).
func (r *run) teardown() {
	if r.stopLoad != nil {
		r.stopLoad()
		<-r.loadDone
	}
	if r.stopDaemon != nil {
		r.stopDaemon()
		<-r.daemonDone
	}
	stopAll(r.services)
	if r.docker != nil {
		r.docker.close()
	} else if r.cfg.StateDir != "" {
		releaseSecondary(r.cfg.Secondary.Process.Root)
	}
}

// releaseSecondary stops every instance the process provider has under
// root: replicas outlive a daemon by design, so the demo releases them
// itself at the end.
func releaseSecondary(root string) {
	prov, err := process.New(process.Config{Root: root})
	if err != nil {
		return
	}
	ents, _ := os.ReadDir(root)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, e := range ents {
		if e.IsDir() {
			_ = prov.Release(ctx, e.Name())
		}
	}
}

func randomToken() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// portSet finds free ports for a run, never the same one twice: a port is
// found free by binding it, and is released before its user binds it
// again, and meanwhile the kernel may hand it out once more (a service was
// once given the port found for a proxy, which then could not bind it).
type portSet struct {
	mu   sync.Mutex
	used map[string]bool
}

// free returns n ports on host that are free now and new to the set. On a
// nil set it only finds free ports.
func (s *portSet) free(host string, n int) ([]string, error) {
	if s == nil {
		s = &portSet{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used == nil {
		s.used = map[string]bool{}
	}
	var out []string
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for tries := 0; len(out) < n; tries++ {
		if tries == 100*n {
			return nil, fmt.Errorf("find %d free ports on %s: the kernel kept giving ports already used by this run", n, host)
		}
		// Held until all are found, so that this call gets n distinct ones.
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		if addr := l.Addr().String(); !s.used[addr] {
			s.used[addr] = true
			out = append(out, addr)
		}
	}
	return out, nil
}

type configData struct {
	StateDir   string
	OrdersDir  string            // the primary orders' data directory
	Primary    map[string]string // component -> host:port
	Proxy      map[string]string // component -> host:port
	API        string
	OTLP       string
	AdminToken string
	Token      string
	// ReleaseAfter is thresholds.release_after, e.g. "5s".
	ReleaseAfter string
	Docker       *dockerConfig // nil: the process provider
	// Budget is secondary.budget.instance_hours_per_day (0: no cap).
	Budget float64
}

// dockerConfig is the secondary environment on the docker provider.
type dockerConfig struct {
	Image, Network, Namespace string
	MilliCPU, Memory          int64
}

// configTemplate is the demo's Phoenix config: a real YAML file, loaded
// through the same path as `phoenix run --config`, and left in the work
// directory (with --keep) for the reader.
var configTemplate = template.Must(template.New("phoenix.yaml").Parse(`# Phoenix configuration written by "phoenix demo".
state_dir: {{.StateDir}}
api:
  listen: {{.API}}
receivers:
  otlp_http:
    listen: {{.OTLP}}
telemetry:
  scrape_interval: 500ms
  scrape_timeout: 400ms
  metrics:
    disk: shop_disk_used_bytes
secondary:
{{- with .Docker}}
  provider: docker
  docker:
    image: {{.Image}}
    network: {{.Network}}
    namespace: {{.Namespace}}
    offer:
      size: {milli_cpu: {{.MilliCPU}}, memory: {{.Memory}}}
{{- end}}
  budget:
    instance_hours_per_day: {{.Budget}}
predict:
  horizon: 30s
  window: 10s
  min_points: 10
thresholds:
  prewarm: 0.5
  switch: 0.95
  switch_within: 5s
  release: 0.2
  release_after: {{.ReleaseAfter}}
traffic:
  health_interval: 300ms
  health_timeout: 300ms
  unhealthy_after: 3
  hold_timeout: 15s
components:
  - name: gateway
    proxy: {{index .Proxy "gateway"}}
    primary:
      url: http://{{index .Primary "gateway"}}
    limits:
      memory: 512MiB
      latency_p99: 2s
    depends_on: [orders]
    replica:
      command: ["{phoenix}", "shop", "gateway", "--listen", "{addr}", "--orders", "{url:orders}", "--environment", "secondary", "--otlp", "http://{{.OTLP}}"]
      env: &replica_env
        SHOP_ADMIN_TOKEN: {{.AdminToken}}
        OTEL_EXPORTER_OTLP_HEADERS: Authorization=Bearer%20{{.Token}}
        OTEL_BSP_SCHEDULE_DELAY: "500"
  - name: orders
    proxy: {{index .Proxy "orders"}}
    primary:
      url: http://{{index .Primary "orders"}}
    limits:
      memory: 160MiB
      disk: 1GiB
      latency_p99: 2s
      error_rate: 0.2
    replica:
      command: ["{phoenix}", "shop", "orders", "--listen", "{addr}", "--data", "{data_dir}", "--inventory", "{url:inventory}", "--follow", "--environment", "secondary", "--otlp", "http://{{.OTLP}}"]
      env: *replica_env
    state:
      method: incremental
      dir: {{.OrdersDir}}
      promote: POST /admin/promote
      headers:
        Authorization: Bearer {{.AdminToken}}
  - name: inventory
    proxy: {{index .Proxy "inventory"}}
    primary:
      url: http://{{index .Primary "inventory"}}
    limits:
      memory: 512MiB
      latency_p99: 2s
    replica:
      command: ["{phoenix}", "shop", "inventory", "--listen", "{addr}", "--environment", "secondary", "--otlp", "http://{{.OTLP}}"]
      env: *replica_env
`))

func writeConfig(path string, d configData) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write demo config: %w", err)
	}
	if err := configTemplate.Execute(f, d); err != nil {
		f.Close()
		return fmt.Errorf("write demo config: %w", err)
	}
	return f.Close()
}
