package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/prometheus/prompb"
	"golang.org/x/time/rate"
)

type rwOpts struct {
	series, batch, senders, rounds int
	rate                           float64
	duration                       time.Duration
	prometheus                     string
	jsonOut                        bool
}

// rwResult is one system's figures in one round.
type rwResult struct {
	System        string  `json:"system"`
	Round         int     `json:"round"`
	Accepted      int64   `json:"accepted_samples"`
	Seconds       float64 `json:"seconds"`
	SamplesPerSec float64 `json:"samples_per_sec"`
	Failed        int64   `json:"failed_requests"`
	FirstError    string  `json:"first_error,omitempty"`
	PeakRSS       int64   `json:"peak_rss_bytes"`
	FinalRSS      int64   `json:"final_rss_bytes"`
	CPUSeconds    float64 `json:"server_cpu_seconds"`
}

func rwCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("rw", flag.ContinueOnError)
	var o rwOpts
	fs.IntVar(&o.series, "series", 100_000, "distinct series (1,000 hosts of 100 series)")
	fs.IntVar(&o.batch, "batch", 2000, "samples per request (Prometheus's max_samples_per_send)")
	fs.IntVar(&o.senders, "senders", 4, "concurrent senders (Prometheus's shards), each owning a share of the series")
	fs.IntVar(&o.rounds, "rounds", 3, "interleaved rounds per system")
	fs.Float64Var(&o.rate, "rate", 0, "samples per second offered to each system, across senders; 0 sends as fast as each accepts (its throughput). A rate both sustain compares memory at equal load")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "load time per system and round")
	fs.StringVar(&o.prometheus, "prometheus", "prometheus", "the Prometheus server binary (Debian package prometheus)")
	fs.BoolVar(&o.jsonOut, "json", false, "print every round as JSON lines too")
	if err := fs.Parse(args); err != nil {
		return err
	}
	bin, err := exec.LookPath(o.prometheus)
	if err != nil {
		return fmt.Errorf("prometheus server not found (apt-get install prometheus): %w", err)
	}
	load := newLoad(o.series)
	var results []rwResult
	for round := range o.rounds {
		systems := []string{"prometheus", "phoenix"}
		if round%2 == 1 {
			slices.Reverse(systems)
		}
		for _, sys := range systems {
			r, err := rwRound(ctx, sys, bin, load, o)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round, sys, err)
			}
			r.Round = round
			results = append(results, r)
			if o.jsonOut {
				b, _ := json.Marshal(r)
				fmt.Println(string(b))
			}
		}
	}
	report(results, o)
	return nil
}

// rwRound starts one system, loads it for the duration and measures it.
func rwRound(ctx context.Context, sys, promBin string, load *loadGen, o rwOpts) (rwResult, error) {
	dir, err := os.MkdirTemp("", "rwbench-"+sys+"-")
	if err != nil {
		return rwResult{}, err
	}
	defer os.RemoveAll(dir)
	var p *proc
	var url string
	switch sys {
	case "prometheus":
		addr, err := freeAddr()
		if err != nil {
			return rwResult{}, err
		}
		cfg := filepath.Join(dir, "prometheus.yml")
		if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 15s\n"), 0o600); err != nil {
			return rwResult{}, err
		}
		// Debian's defaults otherwise, as an installation would run it.
		if p, err = startProc(sys, promBin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
			"--web.listen-address="+addr, "--web.enable-remote-write-receiver", "--log.level=error"); err != nil {
			return rwResult{}, err
		}
		url = "http://" + addr
		if err := waitHTTP(ctx, p, url+"/-/ready"); err != nil {
			p.stop()
			return rwResult{}, err
		}
	case "phoenix":
		if p, url, err = startSelf(sys, "serve", "-dir", filepath.Join(dir, "data")); err != nil {
			return rwResult{}, err
		}
	}
	defer p.stop()
	pid := p.cmd.Process.Pid
	cpu0, err := cpuTime(pid)
	if err != nil {
		return rwResult{}, err
	}
	start := time.Now()
	acked, failed, firstErr := load.run(ctx, url, o.senders, o.batch, o.rate, o.duration)
	secs := time.Since(start).Seconds()
	cpu1, err := cpuTime(pid)
	if err != nil {
		return rwResult{}, err
	}
	mem, err := readMemory(pid)
	if err != nil {
		return rwResult{}, err
	}
	r := rwResult{System: sys, Accepted: acked, Seconds: secs, SamplesPerSec: float64(acked) / secs, Failed: failed,
		PeakRSS: mem.peak, FinalRSS: mem.now, CPUSeconds: (cpu1 - cpu0).Seconds()}
	if firstErr != nil {
		r.FirstError = firstErr.Error()
	}
	return r, nil
}

// loadGen is the generated remote-write load: hosts of 100 series each, a
// few of them the signal metrics Phoenix maps to components, the rest
// other metrics, all with job, instance and component labels.
type loadGen struct {
	labels [][]prompb.Label
}

func newLoad(n int) *loadGen {
	g := &loadGen{labels: make([][]prompb.Label, n)}
	for i := range n {
		host, k := i/100, i%100
		name, extra := fmt.Sprintf("node_metric_%d", k), prompb.Label{}
		switch k {
		case 0:
			name = "process_resident_memory_bytes"
		case 1:
			name = "process_cpu_seconds_total"
		case 2, 3:
			name, extra = "http_requests_total", prompb.Label{Name: "code", Value: []string{"200", "500"}[k-2]}
		case 4:
			name = "http_request_errors_total"
		}
		ls := []prompb.Label{{Name: "__name__", Value: name}}
		if extra.Name != "" {
			ls = append(ls, extra)
		}
		ls = append(ls,
			prompb.Label{Name: "component", Value: "host-" + strconv.Itoa(host)},
			prompb.Label{Name: "instance", Value: fmt.Sprintf("10.0.%d.%d:9100", host/256, host%256)},
			prompb.Label{Name: "job", Value: "node"})
		g.labels[i] = ls
	}
	return g
}

// run sends the load for d with senders concurrent senders (at perSec
// samples per second in all, or as fast as acknowledged if 0), each owning a
// contiguous share of the series and sending them round after round, each
// round stamped with the current time (never ahead of it, increasing per
// series). It returns the samples in acknowledged requests.
func (g *loadGen) run(ctx context.Context, url string, senders, batch int, perSec float64, d time.Duration) (acked, failed int64, firstErr error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		ackN, failN atomic.Int64
		once        sync.Once
		wg          sync.WaitGroup
	)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	n := len(g.labels)
	for s := range senders {
		lo, hi := s*n/senders, (s+1)*n/senders
		wg.Go(func() {
			api, err := remoteapi.NewAPI(url, remoteapi.WithAPIHTTPClient(client), remoteapi.WithAPINoRetryOnRateLimit(),
				remoteapi.WithAPIBackoff(remoteapi.BackoffConfig{Min: 10 * time.Millisecond, Max: 10 * time.Millisecond, MaxRetries: 1}))
			if err != nil {
				once.Do(func() { firstErr = err })
				return
			}
			lim := rate.NewLimiter(rate.Inf, batch)
			if perSec > 0 {
				lim = rate.NewLimiter(rate.Limit(perSec/float64(senders)), batch)
			}
			req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 0, batch)}
			samples := make([]prompb.Sample, batch)
			var last int64
			for round := 0; ctx.Err() == nil; round++ {
				ts := max(last+1, time.Now().UnixMilli())
				last = ts
				for off := lo; off < hi && ctx.Err() == nil; off += batch {
					end := min(off+batch, hi)
					if lim.WaitN(ctx, end-off) != nil {
						break // the run is over
					}
					req.Timeseries = req.Timeseries[:0]
					for j := off; j < end; j++ {
						smp := &samples[j-off]
						smp.Timestamp, smp.Value = ts, float64(round*(1+j%7))
						req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: g.labels[j], Samples: samples[j-off : j-off+1]})
					}
					if _, err := api.Write(ctx, remoteapi.WriteV1MessageType, req); err != nil {
						if ctx.Err() == nil {
							failN.Add(1)
							once.Do(func() { firstErr = err })
						}
						continue
					}
					ackN.Add(int64(end - off))
				}
			}
		})
	}
	wg.Wait()
	return ackN.Load(), failN.Load(), firstErr
}

// report prints per-round figures and the medians with their ratios.
func report(rs []rwResult, o rwOpts) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	offered := "as fast as each system accepts"
	if o.rate > 0 {
		offered = fmt.Sprintf("%.0f samples/s offered to each", o.rate)
	}
	fmt.Printf("remote-write ingestion: %d series, %d samples per request, %d senders, %s per system and round, %s\n", o.series, o.batch, o.senders, o.duration, offered)
	fmt.Fprintln(tw, "round\tsystem\taccepted samples/s\tfailed requests\tpeak RSS MiB\tfinal RSS MiB\tserver CPU s per 1M samples\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%d\t%s\t%.0f\t%d\t%.1f\t%.1f\t%.2f\t\n", r.Round, r.System, r.SamplesPerSec, r.Failed, mib(r.PeakRSS), mib(r.FinalRSS), r.CPUSeconds/float64(max(1, r.Accepted))*1e6)
	}
	tw.Flush()
	med := func(sys string, f func(rwResult) float64) float64 {
		var vs []float64
		for _, r := range rs {
			if r.System == sys {
				vs = append(vs, f(r))
			}
		}
		slices.Sort(vs)
		if len(vs) == 0 {
			return 0
		}
		return vs[len(vs)/2]
	}
	rate := func(r rwResult) float64 { return r.SamplesPerSec }
	peak := func(r rwResult) float64 { return mib(r.PeakRSS) }
	cpu := func(r rwResult) float64 { return r.CPUSeconds / float64(max(1, r.Accepted)) * 1e6 }
	fmt.Println()
	fmt.Fprintln(tw, "median\tPrometheus\tPhoenix\tPhoenix/Prometheus\t")
	fmt.Fprintf(tw, "accepted samples/s\t%.0f\t%.0f\t%.2f\t\n", med("prometheus", rate), med("phoenix", rate), med("phoenix", rate)/med("prometheus", rate))
	fmt.Fprintf(tw, "peak RSS MiB\t%.1f\t%.1f\t%.2f\t\n", med("prometheus", peak), med("phoenix", peak), med("phoenix", peak)/med("prometheus", peak))
	fmt.Fprintf(tw, "server CPU s per 1M samples\t%.2f\t%.2f\t%.2f\t\n", med("prometheus", cpu), med("phoenix", cpu), med("phoenix", cpu)/med("prometheus", cpu))
	tw.Flush()
	for _, r := range rs {
		if r.FirstError != "" {
			fmt.Printf("round %d %s: first error: %s\n", r.Round, r.System, r.FirstError)
		}
	}
}
