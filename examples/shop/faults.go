package shop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

// faultTick is how often the fault driver grows the leak and the filler
// files and checks the memory limit.
const faultTick = 50 * time.Millisecond

// faults holds the active faults of one service. Run drives the ones that
// act over time (leak, disk, the memory limit); inject applies the ones
// that act on requests (latency, errors).
//
// Two locks keep requests away from the heavy work: mu guards the specs and
// levels and is only held briefly, so inject and status never wait for an
// allocation or a write; work serialises the driver's allocations and
// writes with apply, so a clear never races a step.
type faults struct {
	log         *slog.Logger
	now         func() time.Time
	random      func() float64 // uniform in [0, 1)
	dataDir     string         // filler files go to dataDir/fill; "" refuses the disk fault
	memoryLimit int64          // resident bytes; 0 means none
	rss         func() (int64, error)
	kill        func() // SIGKILLs the process

	mu      sync.Mutex
	leak    *growFault
	disk    *growFault
	latency *rampFault
	errs    *rampFault
	leaked  int64  // bytes held by chunks
	filled  int64  // bytes written to filler files
	diskErr string // the last filler write error

	work     sync.Mutex
	chunks   [][]byte
	fillFile *os.File
	fillLen  int64 // bytes in fillFile
	fillN    int   // filler files created
}

// rampFault is a latency or error fault: a level that grows linearly from
// its start up to a ceiling.
type rampFault struct {
	spec  faultSpec
	since time.Time
}

// growFault is a leak or disk fault: bytes that grow at a rate from base,
// what earlier faults of the kind left behind.
type growFault struct {
	spec  faultSpec
	since time.Time
	base  int64
}

// target is how many bytes the fault should hold at now.
func (g *growFault) target(now time.Time) int64 {
	return g.base + int64(ramp(float64(g.spec.BytesPerSecond), math.Inf(1), now.Sub(g.since)))
}

// maxStep bounds the bytes one tick allocates or writes, so that a stalled
// process catches up over a few ticks instead of in one burst.
const maxStep = 128 << 20

// faultStatus is one entry of GET /admin/fault.
type faultStatus struct {
	faultSpec
	Since time.Time `json:"since"`
	// Level is the fault's current size: bytes leaked or written, the
	// added delay in ms, or the error probability.
	Level float64 `json:"level"`
	Error string  `json:"error,omitempty"`
}

// ramp is the level of a fault growing by perSecond from zero, capped at
// limit, after elapsed.
func ramp(perSecond, limit float64, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return min(limit, perSecond*elapsed.Seconds())
}

// Run drives the faults every faultTick until ctx ends, then releases the
// leak and closes the filler file (the files stay, as a full disk would).
func (f *faults) Run(ctx context.Context) error {
	t := time.NewTicker(faultTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			f.work.Lock()
			f.chunks = nil
			f.closeFill()
			f.work.Unlock()
			return nil
		case <-t.C:
			f.step()
			f.checkMemory()
		}
	}
}

// step grows the leak and the filler files toward their targets.
func (f *faults) step() {
	f.work.Lock()
	defer f.work.Unlock()
	now := f.now()
	f.mu.Lock()
	leak, disk, leaked, filled := f.leak, f.disk, f.leaked, f.filled
	f.mu.Unlock()
	if leak != nil {
		f.grow(min(leak.target(now), leaked+maxStep))
	}
	if disk != nil {
		f.fill(min(disk.target(now), filled+maxStep))
	}
}

// grow allocates and touches memory up to target bytes, so resident
// memory really grows (untouched pages would not count). Callers hold work.
func (f *faults) grow(target int64) {
	const chunk = 4 << 20
	pageSize := os.Getpagesize()
	for {
		f.mu.Lock()
		have := f.leaked
		f.mu.Unlock()
		if have >= target {
			return
		}
		b := make([]byte, min(chunk, target-have))
		for i := 0; i < len(b); i += pageSize {
			b[i] = 1
		}
		f.chunks = append(f.chunks, b)
		f.mu.Lock()
		f.leaked += int64(len(b))
		f.mu.Unlock()
	}
}

// fill writes filler bytes under dataDir/fill up to target bytes, in files
// of at most 64 MiB. A write error (a full disk) is recorded and logged
// once; the next tick tries again. Callers hold work.
func (f *faults) fill(target int64) {
	const fileMax, block = 64 << 20, 1 << 20
	buf := make([]byte, block)
	for i := range buf {
		buf[i] = byte(i) | 1 // not zeros, which some filesystems store sparsely
	}
	for {
		f.mu.Lock()
		have := f.filled
		f.mu.Unlock()
		if have >= target {
			f.noteDisk(nil)
			return
		}
		if f.fillFile == nil || f.fillLen >= fileMax {
			if err := f.nextFill(); err != nil {
				f.noteDisk(err)
				return
			}
		}
		n, err := f.fillFile.Write(buf[:min(block, target-have, fileMax-f.fillLen)])
		f.fillLen += int64(n)
		f.mu.Lock()
		f.filled += int64(n)
		f.mu.Unlock()
		if err != nil {
			f.noteDisk(fmt.Errorf("write filler: %w", err))
			return
		}
	}
}

// nextFill opens the next filler file. Callers hold work.
func (f *faults) nextFill() error {
	f.closeFill()
	dir := filepath.Join(f.dataDir, "fill")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create filler directory: %w", err)
	}
	f.fillN++
	file, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("fill-%06d", f.fillN)), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("create filler file: %w", err)
	}
	f.fillFile, f.fillLen = file, 0
	return nil
}

func (f *faults) closeFill() {
	if f.fillFile != nil {
		_ = f.fillFile.Close()
		f.fillFile = nil
	}
}

// noteDisk records the disk fault's write error, logging each new one.
func (f *faults) noteDisk(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	f.mu.Lock()
	prev := f.diskErr
	f.diskErr = msg
	f.mu.Unlock()
	if msg != "" && msg != prev {
		f.log.Warn("disk fault cannot write", "err", msg)
	}
}

// checkMemory kills the process, as the kernel's OOM killer would, once
// its resident memory exceeds the limit.
func (f *faults) checkMemory() {
	if f.memoryLimit <= 0 {
		return
	}
	rss, err := f.rss()
	if err != nil {
		f.log.Warn("cannot read resident memory", "err", err)
		return
	}
	if rss > f.memoryLimit {
		f.log.Error("memory limit exceeded: killing the process with SIGKILL", "resident_bytes", rss, "limit_bytes", f.memoryLimit)
		f.kill()
	}
}

// errNoDataDir refuses the disk fault on a service started without --data.
var errNoDataDir = errors.New("disk fault: this service has no data directory; start it with --data DIR")

// apply starts a fault, or clears them all. Starting a kind that is
// active replaces its rate and start; a leak or disk fault keeps what it
// already holds and grows from there. Crash is the caller's to carry out,
// after answering.
func (f *faults) apply(spec faultSpec) error {
	f.work.Lock()
	defer f.work.Unlock()
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	switch spec.Kind {
	case faultLeak:
		f.leak = &growFault{spec: spec, since: now, base: f.leaked}
	case faultLatency:
		f.latency = &rampFault{spec: spec, since: now}
	case faultErrors:
		f.errs = &rampFault{spec: spec, since: now}
	case faultDisk:
		if f.dataDir == "" {
			return errNoDataDir
		}
		f.disk = &growFault{spec: spec, since: now, base: f.filled}
	case faultClear:
		f.clear()
	}
	return nil
}

// clear stops every fault, frees the leak and removes the filler files.
// Callers hold work and mu.
func (f *faults) clear() {
	f.latency, f.errs, f.leak, f.disk = nil, nil, nil, nil
	hadLeak := f.chunks != nil
	f.chunks, f.leaked = nil, 0
	if hadLeak {
		// Collect the leak and hand its pages back so RSS really falls.
		runtime.GC()
		debug.FreeOSMemory()
	}
	f.closeFill()
	f.filled, f.fillN, f.diskErr = 0, 0, ""
	if f.dataDir != "" {
		if err := os.RemoveAll(filepath.Join(f.dataDir, "fill")); err != nil {
			f.log.Warn("cannot remove filler files", "err", err)
		}
	}
}

// status lists the active faults with their current levels.
func (f *faults) status() []faultStatus {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []faultStatus{}
	if g := f.leak; g != nil {
		out = append(out, faultStatus{faultSpec: g.spec, Since: g.since, Level: float64(f.leaked)})
	}
	if r := f.latency; r != nil {
		out = append(out, faultStatus{faultSpec: r.spec, Since: r.since, Level: ramp(r.spec.MsPerSecond, r.spec.MaxMs, now.Sub(r.since))})
	}
	if r := f.errs; r != nil {
		out = append(out, faultStatus{faultSpec: r.spec, Since: r.since, Level: ramp(r.spec.PerSecond, r.spec.Max, now.Sub(r.since))})
	}
	if g := f.disk; g != nil {
		out = append(out, faultStatus{faultSpec: g.spec, Since: g.since, Level: float64(f.filled), Error: f.diskErr})
	}
	return out
}

// levels returns the delay and the error probability to inject now.
func (f *faults) levels() (time.Duration, float64) {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	var delay time.Duration
	var p float64
	if r := f.latency; r != nil {
		delay = time.Duration(ramp(r.spec.MsPerSecond, r.spec.MaxMs, now.Sub(r.since)) * float64(time.Millisecond))
	}
	if r := f.errs; r != nil {
		p = ramp(r.spec.PerSecond, r.spec.Max, now.Sub(r.since))
	}
	return delay, p
}

// inject delays and fails requests as the latency and errors faults say.
func (f *faults) inject(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		delay, p := f.levels()
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if p > 0 && f.random() < p {
			http.Error(w, "injected fault: errors", http.StatusInternalServerError)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// newFaults builds the fault set of a running process: it reads its own
// resident memory and SIGKILLs itself.
func newFaults(logger *slog.Logger, dataDir string, memoryLimit int64) *faults {
	return &faults{
		log:         logger,
		now:         time.Now,
		random:      rand.Float64,
		dataDir:     dataDir,
		memoryLimit: memoryLimit,
		rss:         selfRSS,
		kill:        killSelf,
	}
}
