package process

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/provider"
)

// Name is the provider's name in configs and instance records.
const Name = "process"

// markerEnv is set in every instance's environment; its value names the
// provider root and the instance, so that an instance whose record was lost
// in a crash is still found (and not started twice).
const markerEnv = "PHOENIX_INSTANCE"

var idPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// Config configures a Provider.
type Config struct {
	// Root holds one directory per instance: its record, data and log.
	Root string
	// Host is the address instances listen on; default 127.0.0.1.
	Host string
	// StopTimeout is how long Release waits after SIGTERM before SIGKILL;
	// default 5s.
	StopTimeout time.Duration
	Logger      *slog.Logger
}

// Provider runs instances as local processes. Each gets its own port, data
// directory and process group. Instances outlive the daemon (they are not
// killed when it dies) and are adopted again by a new Provider on the same
// root: their records are on disk, and the process is recognised by its PID
// and start time, so a recycled PID is never mistaken for it.
type Provider struct {
	cfg Config
	log *slog.Logger

	locks provider.IDLocks
}

var _ provider.Provider = (*Provider)(nil)

// New returns a process provider rooted at cfg.Root.
func New(cfg Config) (*Provider, error) {
	if cfg.Root == "" {
		return nil, errors.New("process provider: root directory is required")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("process provider: %w", err)
	}
	cfg.Root = root
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("process provider: create root: %w", err)
	}
	return &Provider{cfg: cfg, log: cfg.Logger}, nil
}

// record is what the provider persists per instance.
type record struct {
	ID        string              `json:"id"`
	Component phoenix.ComponentID `json:"component"`
	Argv      []string            `json:"argv"`
	Env       []string            `json:"env"`
	Addr      string              `json:"addr"`
	PID       int                 `json:"pid"`
	// StartTicks is field 22 of /proc/PID/stat: the process's start time in
	// clock ticks since boot. PID and StartTicks together name one process.
	StartTicks uint64    `json:"start_ticks"`
	Started    time.Time `json:"started"`
}

func (p *Provider) dir(id string) string        { return filepath.Join(p.cfg.Root, id) }
func (p *Provider) recordPath(id string) string { return filepath.Join(p.dir(id), "instance.json") }
func (p *Provider) marker(id string) string     { return p.cfg.Root + "/" + id }

// Offers returns the one offer a machine has: itself.
func (p *Provider) Offers(ctx context.Context) ([]provider.Offer, error) {
	mem, err := memAvailable()
	if err != nil {
		return nil, fmt.Errorf("offers: %w", err)
	}
	return []provider.Offer{{
		ID:          "local",
		Provider:    Name,
		Zone:        "local",
		Size:        phoenix.Resources{MilliCPU: int64(runtime.NumCPU()) * 1000, MemoryBytes: mem},
		Performance: 1,
		Free:        64,
	}}, nil
}

// Provision starts the instance, or returns it if it already runs.
func (p *Provider) Provision(ctx context.Context, spec provider.Spec) (provider.Instance, error) {
	if !idPattern.MatchString(spec.ID) {
		return provider.Instance{}, fmt.Errorf("provision: instance id %q: use 1-128 letters, digits, '_', '.', '-': %w", spec.ID, provider.ErrInvalidSpec)
	}
	if len(spec.Command) == 0 {
		return provider.Instance{}, fmt.Errorf("provision %s: empty command: %w", spec.ID, provider.ErrInvalidSpec)
	}
	defer p.locks.Lock(spec.ID)()

	rec, err := p.readRecord(spec.ID)
	switch {
	case err == nil:
		if rec.PID == 0 {
			// A crash came between writing the intent and recording the PID:
			// the process may be running; find it by its marker.
			if pid, ticks, ok := findByMarker(p.marker(spec.ID)); ok {
				rec.PID, rec.StartTicks = pid, ticks
				if err := p.writeRecord(rec); err != nil {
					return provider.Instance{}, fmt.Errorf("provision %s: %w", spec.ID, err)
				}
			}
		}
		if rec.PID != 0 && alive(rec.PID, rec.StartTicks) {
			p.log.Info("instance already running, adopted", "id", spec.ID, "pid", rec.PID)
			return p.instance(rec, provider.StateRunning), nil
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return provider.Instance{}, fmt.Errorf("provision %s: %w", spec.ID, err)
	}
	return p.start(ctx, spec, rec.Addr)
}

func (p *Provider) start(ctx context.Context, spec provider.Spec, addr string) (provider.Instance, error) {
	dataDir := filepath.Join(p.dir(spec.ID), "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return provider.Instance{}, fmt.Errorf("provision %s: %w", spec.ID, err)
	}
	if addr == "" || !portFree(addr) {
		var err error
		if addr, err = freeAddr(p.cfg.Host); err != nil {
			return provider.Instance{}, fmt.Errorf("provision %s: %w", spec.ID, err)
		}
	}
	_, port, _ := net.SplitHostPort(addr)
	fill := strings.NewReplacer("{addr}", addr, "{port}", port, "{data_dir}", dataDir).Replace
	argv := make([]string, len(spec.Command))
	for i, a := range spec.Command {
		argv[i] = fill(a)
	}
	env := []string{markerEnv + "=" + p.marker(spec.ID)}
	for k, v := range spec.Env {
		env = append(env, k+"="+fill(v))
	}
	rec := record{ID: spec.ID, Component: spec.Component, Argv: argv, Env: env, Addr: addr}
	// The intent is on disk before the process exists, so a crash between
	// the two leaves a record to find the process by.
	if err := p.writeRecord(rec); err != nil {
		return provider.Instance{}, fmt.Errorf("provision %s: %w", spec.ID, err)
	}

	logf, err := os.OpenFile(filepath.Join(p.dir(spec.ID), "output.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return provider.Instance{}, fmt.Errorf("provision %s: %w", spec.ID, err)
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = p.dir(spec.ID)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: Release stops the whole group, and the daemon's
	// death (even kill -9) does not take the instance with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return provider.Instance{}, fmt.Errorf("provision %s: start %s: %w", spec.ID, argv[0], err)
	}
	go cmd.Wait() // reap; the record, not this goroutine, is the source of truth

	rec.PID = cmd.Process.Pid
	rec.Started = time.Now()
	rec.StartTicks, _ = startTicks(rec.PID)
	if err := p.writeRecord(rec); err != nil {
		_ = syscall.Kill(-rec.PID, syscall.SIGKILL)
		return provider.Instance{}, fmt.Errorf("provision %s: %w", spec.ID, err)
	}
	p.log.Info("instance started", "id", spec.ID, "pid", rec.PID, "addr", addr)
	return p.instance(rec, provider.StateRunning), nil
}

// Status reports the instance's record and whether its process lives.
func (p *Provider) Status(ctx context.Context, id string) (provider.Instance, error) {
	if !idPattern.MatchString(id) {
		return provider.Instance{}, fmt.Errorf("status %q: %w", id, provider.ErrNotFound)
	}
	rec, err := p.readRecord(id)
	if errors.Is(err, fs.ErrNotExist) {
		return provider.Instance{}, fmt.Errorf("status %s: %w", id, provider.ErrNotFound)
	}
	if err != nil {
		return provider.Instance{}, fmt.Errorf("status %s: %w", id, err)
	}
	state := provider.StateExited
	if rec.PID != 0 && alive(rec.PID, rec.StartTicks) {
		state = provider.StateRunning
	}
	return p.instance(rec, state), nil
}

// Release stops the instance's process group (SIGTERM, then SIGKILL after
// StopTimeout) and removes its directory.
func (p *Provider) Release(ctx context.Context, id string) error {
	if !idPattern.MatchString(id) {
		return nil
	}
	defer p.locks.Lock(id)()
	rec, err := p.readRecord(id)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("release %s: %w", id, err)
	}
	if rec.PID == 0 {
		if pid, ticks, ok := findByMarker(p.marker(id)); ok {
			rec.PID, rec.StartTicks = pid, ticks
		}
	}
	if rec.PID != 0 && alive(rec.PID, rec.StartTicks) {
		if err := p.stop(ctx, rec); err != nil {
			return fmt.Errorf("release %s: %w", id, err)
		}
	}
	if err := os.RemoveAll(p.dir(id)); err != nil {
		return fmt.Errorf("release %s: %w", id, err)
	}
	p.log.Info("instance released", "id", id, "pid", rec.PID)
	return nil
}

func (p *Provider) stop(ctx context.Context, rec record) error {
	_ = syscall.Kill(-rec.PID, syscall.SIGTERM)
	deadline := time.NewTimer(p.cfg.StopTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for alive(rec.PID, rec.StartTicks) {
		select {
		case <-tick.C:
		case <-deadline.C:
			_ = syscall.Kill(-rec.PID, syscall.SIGKILL)
			_ = syscall.Kill(rec.PID, syscall.SIGKILL)
			deadline.Reset(p.cfg.StopTimeout)
		case <-ctx.Done():
			_ = syscall.Kill(-rec.PID, syscall.SIGKILL)
			return ctx.Err()
		}
	}
	return nil
}

func (p *Provider) instance(rec record, state provider.State) provider.Instance {
	return provider.Instance{
		ID:        rec.ID,
		Component: rec.Component,
		Provider:  Name,
		Addr:      rec.Addr,
		DataDir:   filepath.Join(p.dir(rec.ID), "data"),
		State:     state,
		Started:   rec.Started,
		Detail:    "pid " + strconv.Itoa(rec.PID),
	}
}

func (p *Provider) readRecord(id string) (record, error) {
	var rec record
	b, err := os.ReadFile(p.recordPath(id))
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("instance record %s is corrupt (%v); remove %s after stopping its process by hand", id, err, p.dir(id))
	}
	return rec, nil
}

// writeRecord replaces the record atomically and durably.
func (p *Provider) writeRecord(rec record) error {
	if err := os.MkdirAll(p.dir(rec.ID), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	tmp := p.recordPath(rec.ID) + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, p.recordPath(rec.ID)); err != nil {
		return err
	}
	d, err := os.Open(p.dir(rec.ID))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// procStat reads a process's start time from /proc/PID/stat (field 22),
// and whether it is a zombie.
func procStat(pid int) (ticks uint64, zombie bool, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false, err
	}
	// The command name (field 2) may contain spaces and parentheses; the
	// fields after the last ')' are plain.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, false, errors.New("malformed stat")
	}
	// f[0] is field 3 (state); field 22 is f[19].
	ticks, err = strconv.ParseUint(f[19], 10, 64)
	return ticks, f[0] == "Z" || f[0] == "X", err
}

func startTicks(pid int) (uint64, error) {
	t, _, err := procStat(pid)
	return t, err
}

// alive reports whether pid is a live (not zombie) process started at ticks.
// ticks 0 (unknown) accepts any process with that PID.
func alive(pid int, ticks uint64) bool {
	t, zombie, err := procStat(pid)
	if err != nil || zombie {
		return false
	}
	return ticks == 0 || t == ticks
}

// findByMarker scans /proc for a live process whose environment carries the
// instance marker.
func findByMarker(marker string) (pid int, ticks uint64, ok bool) {
	want := []byte(markerEnv + "=" + marker + "\x00")
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0, false
	}
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(append([]byte{0}, env...), append([]byte{0}, want...)) {
			continue
		}
		if t, zombie, err := procStat(n); err == nil && !zombie {
			return n, t, true
		}
	}
	return 0, 0, false
}

// freeAddr asks the kernel for a free port on host. Another process could
// take it before the instance binds it; the caller's readiness check catches
// that case, and a new Provision picks another port.
func freeAddr(host string) (string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func portFree(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func memAvailable() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err != nil {
					return 0, fmt.Errorf("meminfo: %w", err)
				}
				return kb * 1024, nil
			}
		}
	}
	return 0, errors.New("meminfo: no MemAvailable line")
}
