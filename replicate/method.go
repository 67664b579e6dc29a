package replicate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Method is how a component's state reaches its replica, chosen per
// component. One value serves one source and one destination; its calls
// must not overlap (a Stream serialises them).
type Method interface {
	// Full makes the destination a complete, verified copy of the source.
	Full(ctx context.Context) (Stats, error)
	// Incremental brings the destination up to date with what changed
	// since the previous call; on an empty destination it copies all.
	Incremental(ctx context.Context) (Stats, error)
}

// The methods.
const (
	// MethodSnapshot: Full is a consistent snapshot (quiesce hooks around
	// it, or passes until a pass finds nothing changed); Incremental sends
	// changed files whole, and appends in place.
	MethodSnapshot = "snapshot"
	// MethodIncremental: Full as snapshot; Incremental sends changed
	// files as deltas of content-defined chunks against what the
	// destination holds anywhere (deduplicated), appends in place.
	MethodIncremental = "incremental"
	// MethodHook: the owner's Hooks.Command does the transfer (e.g. a
	// database's own replication), between Pre and Post.
	MethodHook = "hook"
)

// DefaultMaxPasses bounds the passes of a consistent snapshot.
const DefaultMaxPasses = 5

// Endpoint is one side of a transfer: a local directory, or a phoenix
// agent's base URL (a source agent for the source, a target agent for the
// destination).
type Endpoint struct {
	Dir   string
	Agent string
}

func (e Endpoint) String() string {
	if e.Agent != "" {
		return e.Agent
	}
	return e.Dir
}

// MethodConfig configures NewMethod.
type MethodConfig struct {
	Kind     string // MethodSnapshot, MethodIncremental or MethodHook
	Src, Dst Endpoint
	// Hooks: for snapshot and incremental, Pre and Post run around Full
	// (a quiesce hook); for hook, around every transfer, with Command.
	// With a source agent, the agent's own hooks run instead.
	Hooks Hooks
	// Throttle caps, in bytes per second, what a transfer reads from the
	// source; 0 means no cap.
	Throttle int64
	// Chunking is the content-defined chunking of the incremental method;
	// zero means DefaultChunkParams.
	Chunking ChunkParams
	// MaxPasses bounds a consistent snapshot's passes; 0 means
	// DefaultMaxPasses.
	MaxPasses int
	Token     string       // the agents' bearer token
	Client    *http.Client // for agents; nil means a default client
	Logger    *slog.Logger // nil discards
}

// NewMethod checks cfg and returns the method. Nothing is transferred yet.
func NewMethod(cfg MethodConfig) (Method, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.MaxPasses == 0 {
		cfg.MaxPasses = DefaultMaxPasses
	}
	if cfg.Chunking == (ChunkParams{}) {
		cfg.Chunking = DefaultChunkParams
	}
	if err := checkMethodConfig(cfg); err != nil {
		return nil, fmt.Errorf("replication method: %w", err)
	}
	if cfg.Kind == MethodHook {
		return &hookMethod{hooks: cfg.Hooks, vars: map[string]string{"src": cfg.Src.String(), "dst": cfg.Dst.String()}}, nil
	}
	if cfg.Src.Agent != "" {
		return &agentMethod{cfg: cfg}, nil
	}
	m := &localMethod{cfg: cfg, lim: NewThrottle(cfg.Throttle)}
	if cfg.Kind == MethodIncremental {
		m.cache, _ = NewChunkCache(cfg.Chunking)
	}
	if cfg.Dst.Agent != "" {
		rs, err := NewRemoteSink(cfg.Dst.Agent, cfg.Token, cfg.Client)
		if err != nil {
			return nil, fmt.Errorf("replication method: %w", err)
		}
		m.remote = rs
	}
	return m, nil
}

func checkMethodConfig(cfg MethodConfig) error {
	switch cfg.Kind {
	case MethodSnapshot, MethodIncremental:
	case MethodHook:
		if len(cfg.Hooks.Command) == 0 {
			return errors.New("method hook needs hooks.command: the owner's replication command")
		}
		return nil
	default:
		return fmt.Errorf("method %q: write %s, %s or %s", cfg.Kind, MethodSnapshot, MethodIncremental, MethodHook)
	}
	for _, e := range []struct {
		name string
		ep   Endpoint
	}{{"source", cfg.Src}, {"destination", cfg.Dst}} {
		if (e.ep.Dir == "") == (e.ep.Agent == "") {
			return fmt.Errorf("%s: give either a directory or an agent URL", e.name)
		}
		if e.ep.Agent != "" {
			if _, err := parseAgentURL(e.ep.Agent); err != nil {
				return fmt.Errorf("%s: %w", e.name, err)
			}
		}
	}
	if cfg.Src.Agent != "" && cfg.Dst.Agent == "" {
		return errors.New("a source agent pushes to a target agent: give the destination's agent URL, not a directory")
	}
	if cfg.Src.Dir != "" && cfg.Dst.Dir != "" {
		if err := checkDistinct(cfg.Src.Dir, cfg.Dst.Dir); err != nil {
			return err
		}
	}
	if (cfg.Src.Agent != "" || cfg.Dst.Agent != "") && cfg.Token == "" {
		return errors.New("agents need the bearer token: set the token")
	}
	if cfg.Throttle < 0 {
		return fmt.Errorf("throttle %d bytes/s is negative: use 0 for none", cfg.Throttle)
	}
	return cfg.Chunking.Validate()
}

// parseAgentURL accepts an http or https base URL.
func parseAgentURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("agent URL %q: want http://host:port or https://host:port", s)
	}
	return u, nil
}

// localMethod reads a local directory: its rounds run in this process.
type localMethod struct {
	cfg    MethodConfig
	lim    *rate.Limiter
	cache  *ChunkCache
	remote *RemoteSink // nil: the destination is cfg.Dst.Dir
	mu     sync.Mutex
}

func (m *localMethod) sink() (Sink, func(), error) {
	if m.remote != nil {
		return m.remote, func() {}, nil
	}
	d, err := OpenDir(m.cfg.Dst.Dir)
	if err != nil {
		return nil, nil, err
	}
	return d, func() { d.Close() }, nil
}

func (m *localMethod) round() roundConfig {
	return roundConfig{lim: m.lim, log: m.cfg.Logger}
}

// Full implements Method.
func (m *localMethod) Full(ctx context.Context) (Stats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dst, done, err := m.sink()
	if err != nil {
		return Stats{}, err
	}
	defer done()
	vars := map[string]string{"src": m.cfg.Src.String(), "dst": m.cfg.Dst.String(), "mode": "full"}
	return m.cfg.Hooks.around(ctx, vars, func() (Stats, error) {
		return snapshotPasses(ctx, m.cfg.Src.Dir, dst, m.round(), m.cfg.MaxPasses)
	})
}

// Incremental implements Method.
func (m *localMethod) Incremental(ctx context.Context) (Stats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dst, done, err := m.sink()
	if err != nil {
		return Stats{}, err
	}
	defer done()
	rc := m.round()
	rc.cache = m.cache
	return runRound(ctx, m.cfg.Src.Dir, dst, rc)
}

// snapshotPasses is a consistent snapshot by copy-on-read: a full pass,
// then incremental passes while the previous one ended with writes it did
// not carry, up to maxPasses. Stats.Consistent says whether the last pass
// found the source unchanged: the copy is then the source as it stood at
// that moment. Without a quiesce hook a busy source may never get there.
func snapshotPasses(ctx context.Context, src string, dst Sink, rc roundConfig, maxPasses int) (Stats, error) {
	rc.full = true
	st, err := runRound(ctx, src, dst, rc)
	total := st
	total.Passes = 1
	rc.full = false
	for err == nil && st.Remaining > 0 && total.Passes < maxPasses {
		st, err = runRound(ctx, src, dst, rc)
		total.addPass(st)
		total.Passes++
	}
	total.Consistent = err == nil && st.Remaining == 0
	if err == nil && !total.Consistent && rc.log != nil {
		rc.log.Warn("snapshot not consistent: the source kept changing", "passes", total.Passes, "remaining", st.Remaining)
	}
	return total, err
}

// add accumulates the work counted in o into s.
func (s *Stats) add(o Stats) {
	s.Copied += o.Copied
	s.Patched += o.Patched
	s.Appended += o.Appended
	s.Removed += o.Removed
	s.Unchanged += o.Unchanged
	s.Bytes += o.Bytes
	s.Reused += o.Reused
	s.Pending += o.Pending
	s.Retries += o.Retries
	s.ManifestsFetched += o.ManifestsFetched
}

// addPass accumulates a later pass into s: counts of work add up, the
// description of the source is the later pass's.
func (s *Stats) addPass(o Stats) {
	s.Copied += o.Copied
	s.Patched += o.Patched
	s.Appended += o.Appended
	s.Removed += o.Removed
	s.Bytes += o.Bytes
	s.Reused += o.Reused
	s.Pending += o.Pending
	s.Retries += o.Retries
	s.ManifestsFetched += o.ManifestsFetched
	s.Duration += o.Duration
	s.Files, s.Unchanged, s.Skipped = o.Files, o.Unchanged, o.Skipped
	s.SourceBytes, s.Remaining = o.SourceBytes, o.Remaining
}

// hookMethod runs the owner's commands.
type hookMethod struct {
	hooks Hooks
	vars  map[string]string
}

func (m *hookMethod) Full(ctx context.Context) (Stats, error) { return m.run(ctx, "full") }
func (m *hookMethod) Incremental(ctx context.Context) (Stats, error) {
	return m.run(ctx, "incremental")
}

// run reports only the duration: what the command moved is its business.
func (m *hookMethod) run(ctx context.Context, mode string) (Stats, error) {
	vars := map[string]string{"mode": mode}
	for k, v := range m.vars {
		vars[k] = v
	}
	start := time.Now()
	st, err := m.hooks.around(ctx, vars, func() (Stats, error) {
		return Stats{}, m.hooks.run(ctx, "replication", m.hooks.Command, vars)
	})
	st.Duration = time.Since(start)
	st.Consistent = err == nil
	return st, err
}

var (
	_ Method = (*localMethod)(nil)
	_ Method = (*hookMethod)(nil)
	_ Method = (*agentMethod)(nil)
)
