package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/predict"
	"github.com/phoenixsre/phoenix/telemetry"
)

// farmCmd serves /metrics/{i} for i < -components, each a Prometheus Go
// client registry with 20 series: resident memory, CPU seconds, requests
// by code (2), errors, disk use, and a latency histogram on the default
// buckets (11 + +Inf, _sum, _count). Values move every second; one
// component in ten leaks memory. It prints "ready URL" once listening.
func farmCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("farm", flag.ContinueOnError)
	n := fs.Int("components", 1000, "components to expose")
	if err := fs.Parse(args); err != nil {
		return err
	}
	type comp struct {
		mem, disk prometheus.Gauge
		cpu, errs prometheus.Counter
		reqs      *prometheus.CounterVec
		lat       prometheus.Histogram
		h         http.Handler
		mu        sync.Mutex // a scrape sees a whole second's update or none
	}
	comps := make([]*comp, *n)
	for i := range comps {
		reg := prometheus.NewRegistry()
		c := &comp{
			mem:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "process_resident_memory_bytes", Help: "Resident memory."}),
			disk: prometheus.NewGauge(prometheus.GaugeOpts{Name: "shop_disk_used_bytes", Help: "Disk use."}),
			cpu:  prometheus.NewCounter(prometheus.CounterOpts{Name: "process_cpu_seconds_total", Help: "CPU."}),
			errs: prometheus.NewCounter(prometheus.CounterOpts{Name: "http_request_errors_total", Help: "Errors."}),
			reqs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "http_requests_total", Help: "Requests."}, []string{"code"}),
			lat:  prometheus.NewHistogram(prometheus.HistogramOpts{Name: "http_request_duration_seconds", Help: "Latency.", Buckets: prometheus.DefBuckets}),
		}
		reg.MustRegister(c.mem, c.disk, c.cpu, c.errs, c.reqs, c.lat)
		c.mem.Set(100e6)
		c.reqs.WithLabelValues("200")
		c.reqs.WithLabelValues("500")
		c.h = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
		comps[i] = c
	}
	go func() {
		rng := rand.New(rand.NewPCG(1, 2))
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for range tick.C {
			for i, c := range comps {
				c.mu.Lock()
				if i%10 == 0 {
					c.mem.Add(1e6) // leaking
				} else {
					c.mem.Add(1e5 * (rng.Float64() - 0.5))
				}
				c.disk.Set(1e9 + float64(i))
				c.cpu.Add(0.05 * rng.Float64())
				c.reqs.WithLabelValues("200").Add(100)
				c.reqs.WithLabelValues("500").Add(1)
				c.errs.Add(1)
				for range 5 {
					c.lat.Observe(0.05 * rng.ExpFloat64())
				}
				c.mu.Unlock()
			}
		}
	}()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics/{id}", func(w http.ResponseWriter, r *http.Request) {
		i, err := strconv.Atoi(r.PathValue("id"))
		if err != nil || i < 0 || i >= len(comps) {
			http.NotFound(w, r)
			return
		}
		comps[i].mu.Lock()
		defer comps[i].mu.Unlock()
		comps[i].h.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("ready http://%s\n", ln.Addr())
	<-ctx.Done()
	return srv.Close()
}

func latencyCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("latency", flag.ContinueOnError)
	n := fs.Int("components", 1000, "components scraped")
	interval := fs.Duration("interval", 10*time.Second, "scrape interval")
	warmup := fs.Duration("warmup", 20*time.Second, "time before measuring")
	duration := fs.Duration("duration", 60*time.Second, "measured time")
	if err := fs.Parse(args); err != nil {
		return err
	}
	farm, url, err := startSelf("farm", "farm", "-components", strconv.Itoa(*n))
	if err != nil {
		return err
	}
	defer farm.stop()
	dir, err := os.MkdirTemp("", "latbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	store, err := telemetry.OpenStore(telemetry.StoreConfig{Dir: dir})
	if err != nil {
		return err
	}
	defer store.Close()
	engine := predict.NewEngine(predict.Config{Window: 2 * time.Minute, Horizon: 5 * time.Minute})
	targets := make([]telemetry.Target, *n)
	for i := range targets {
		id := phoenix.ComponentID(fmt.Sprintf("c%04d", i))
		targets[i] = telemetry.Target{Component: id, Environment: phoenix.Primary, URL: fmt.Sprintf("%s/metrics/%d", url, i)}
		engine.SetLimits(id, predict.Limits{phoenix.SignalMemory: 500e6, phoenix.SignalLatency: 1, phoenix.SignalErrors: 0.05})
	}
	var (
		mu        sync.Mutex
		measuring bool
		lats      []time.Duration
		atRisk    = map[phoenix.ComponentID]bool{}
	)
	signals := telemetry.DefaultSignalMap()
	signals.Disk = "shop_disk_used_bytes"
	scraper := telemetry.NewScraper(telemetry.Config{
		Interval: *interval, Timeout: 5 * time.Second, Signals: signals, Storage: store,
		OnSample: func(s telemetry.Sample) {
			engine.Observe(s.Target.Component, s.Time, s.Values)
			r := engine.Risk(s.Target.Component, time.Now())
			d := time.Since(s.Time) // from the start of the scrape that fetched the sample
			mu.Lock()
			if measuring {
				lats = append(lats, d)
				if r.Probability > 0.5 {
					atRisk[s.Target.Component] = true
				}
			}
			mu.Unlock()
		},
	}, store)
	scraper.SetTargets(targets)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- scraper.Run(rctx) }()
	defer func() { cancel(); <-done }()

	select {
	case <-time.After(*warmup):
	case <-ctx.Done():
		return ctx.Err()
	}
	mu.Lock()
	measuring = true
	mu.Unlock()
	cpu0, t0 := selfCPU(), time.Now()
	select {
	case <-time.After(*duration):
	case <-ctx.Done():
		return ctx.Err()
	}
	cpu1, wall := selfCPU(), time.Since(t0)
	mu.Lock()
	measuring = false
	got := slices.Clone(lats)
	leaking, others := 0, 0
	for c := range atRisk {
		if n, _ := strconv.Atoi(string(c[1:])); n%10 == 0 {
			leaking++
		} else {
			others++
		}
	}
	mu.Unlock()
	if len(got) == 0 {
		return fmt.Errorf("no sample in the measured window")
	}
	slices.Sort(got)
	q := func(p float64) time.Duration { return got[min(len(got)-1, int(p*float64(len(got))))] }
	up := 0
	for _, h := range scraper.Health() {
		if h.Up {
			up++
		}
	}
	mem, _ := readMemory(os.Getpid())
	fmt.Printf("scrape start -> component risk updated: %d components x 20 series every %s, measured over %s after %s of warm-up\n", *n, *interval, wall.Round(time.Second), *warmup)
	fmt.Printf("  samples %d (%d targets up); components with a risk over 0.5: %d of the %d leaking memory, %d of the %d others\n",
		len(got), up, leaking, (*n+9)/10, others, *n-(*n+9)/10)
	fmt.Printf("  latency p50 %s  p90 %s  p99 %s  max %s\n", q(0.5).Round(time.Microsecond), q(0.9).Round(time.Microsecond), q(0.99).Round(time.Microsecond), got[len(got)-1].Round(time.Microsecond))
	fmt.Printf("  collector + store + engine CPU: %.3f cores (%.2f s over %.0f s); RSS %.1f MiB (peak %.1f)\n",
		(cpu1-cpu0).Seconds()/wall.Seconds(), (cpu1 - cpu0).Seconds(), wall.Seconds(), mib(mem.now), mib(mem.peak))
	return nil
}

// selfCPU is the user and system CPU this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
