package replicate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultInterval is the pause between two rounds of a Stream.
const DefaultInterval = 200 * time.Millisecond

// StreamConfig configures a Stream: a Method, or Src and one of Dst or Sink.
type StreamConfig struct {
	// Method, when set, makes the rounds (each is Method.Incremental):
	// how the state moves is then its business, and Src, Dst and Sink are
	// not used.
	Method Method
	// Name labels the stream's metrics and logs; defaults to Src's base
	// name (required with a Method).
	Name string
	Src  string // source directory
	Dst  string // destination directory, opened each round with OpenDir
	// Sink, when set, is the destination instead of Dst. The caller owns it.
	Sink Sink
	// Interval is the pause between the end of a round and the start of the
	// next; 0 means DefaultInterval.
	Interval   time.Duration
	Logger     *slog.Logger          // nil discards
	Registerer prometheus.Registerer // nil: no metrics
	Now        func() time.Time      // nil: time.Now; drives Lag
}

// Lag is how far the replica trails the source.
type Lag struct {
	// Bytes is what the source held at the end of the latest completed
	// round that the replica does not (Stats.Remaining): 0 means the
	// replica had everything when that round ended.
	Bytes int64
	// Seconds is now minus the start of the latest completed round: every
	// write made to the source before that instant is in the replica. Before
	// the first completed round it counts from NewStream, and Rounds is 0.
	Seconds float64
	// LastRound is when the latest completed round started; zero if none.
	LastRound time.Time
	Rounds    uint64 // completed rounds
	// Failures counts rounds failed since the latest completed one, and Err
	// is the latest failure's error (nil once a round completes again).
	Failures uint64
	Err      error
}

// Stream replicates continuously: Run does a Sync round every Interval, and
// CatchUp does one now, serialised with Run's rounds.
type Stream struct {
	cfg     StreamConfig
	log     *slog.Logger
	created time.Time
	turn    chan struct{} // holds a token while a round runs

	mu  sync.Mutex // guards lag
	lag Lag

	rounds  *prometheus.CounterVec
	written prometheus.Counter
}

// NewStream checks cfg and returns a stream that has not started.
func NewStream(cfg StreamConfig) (*Stream, error) {
	if cfg.Method != nil {
		if cfg.Name == "" {
			return nil, errors.New("replicate stream: a stream with a Method needs a Name")
		}
	} else if cfg.Src == "" {
		return nil, errors.New("replicate stream: Src is empty: set the source directory")
	}
	if cfg.Method == nil && cfg.Dst == "" && cfg.Sink == nil {
		return nil, errors.New("replicate stream: set Dst (a destination directory) or Sink")
	}
	if cfg.Method == nil && cfg.Sink == nil {
		if err := checkDistinct(cfg.Src, cfg.Dst); err != nil {
			return nil, fmt.Errorf("replicate stream: %w", err)
		}
	}
	if cfg.Interval < 0 {
		return nil, fmt.Errorf("replicate stream: Interval %s is negative: use 0 for the default %s", cfg.Interval, DefaultInterval)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Name == "" {
		cfg.Name = filepath.Base(cfg.Src)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	labels := prometheus.Labels{"stream": cfg.Name}
	return &Stream{
		cfg:     cfg,
		log:     log.With("stream", cfg.Name),
		created: cfg.Now(),
		turn:    make(chan struct{}, 1),
		rounds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phoenix_replicate_rounds_total", Help: "Replication rounds, by result (ok or error).",
			ConstLabels: labels,
		}, []string{"result"}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "phoenix_replicate_written_bytes_total", Help: "Bytes written to the replica.",
			ConstLabels: labels,
		}),
	}, nil
}

// Run replicates every Interval until ctx ends, then returns nil. A failed
// round is logged and retried at the next tick. Metrics are registered for
// the duration of Run; an error is returned only if that fails.
func (s *Stream) Run(ctx context.Context) error {
	unregister, err := s.register()
	if err != nil {
		return err
	}
	defer unregister()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		if _, err := s.CatchUp(ctx); err != nil && ctx.Err() != nil {
			return nil
		}
		timer.Reset(s.cfg.Interval)
	}
}

// CatchUp runs one round now, after any round in progress, and returns its
// stats. It is the final sync before a switch: with writes to the source
// stopped, a nil error and Lag().Bytes == 0 mean the replica has everything.
func (s *Stream) CatchUp(ctx context.Context) (Stats, error) {
	select {
	case s.turn <- struct{}{}:
	case <-ctx.Done():
		return Stats{}, ctx.Err()
	}
	defer func() { <-s.turn }()
	start := s.cfg.Now()
	st, err := s.sync(ctx)
	s.written.Add(float64(st.Bytes))
	s.record(start, st, err)
	return st, err
}

func (s *Stream) sync(ctx context.Context) (Stats, error) {
	if s.cfg.Method != nil {
		return s.cfg.Method.Incremental(ctx)
	}
	if s.cfg.Sink != nil {
		return SyncTo(ctx, s.cfg.Src, s.cfg.Sink, s.log)
	}
	d, err := OpenDir(s.cfg.Dst)
	if err != nil {
		return Stats{}, err
	}
	defer d.Close()
	return SyncTo(ctx, s.cfg.Src, d, s.log)
}

// record updates the lag after a round and logs failures when they start,
// change or end, not on every tick.
func (s *Stream) record(start time.Time, st Stats, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.rounds.WithLabelValues("error").Inc()
		if s.lag.Err == nil || s.lag.Err.Error() != err.Error() {
			s.log.Warn("replication round failed", "err", err, "failures", s.lag.Failures+1)
		}
		s.lag.Failures++
		s.lag.Err = err
		return
	}
	s.rounds.WithLabelValues("ok").Inc()
	if s.lag.Err != nil {
		s.log.Info("replication recovered", "failed_rounds", s.lag.Failures)
	}
	s.lag = Lag{Bytes: st.Remaining, LastRound: start, Rounds: s.lag.Rounds + 1}
	if st.Copied+st.Appended+st.Removed > 0 {
		s.log.Debug("replicated", "copied", st.Copied, "appended", st.Appended, "removed", st.Removed,
			"bytes", st.Bytes, "remaining", st.Remaining, "duration", st.Duration)
	}
}

// Lag returns the replica's current lag.
func (s *Stream) Lag() Lag {
	s.mu.Lock()
	l := s.lag
	s.mu.Unlock()
	since := l.LastRound
	if l.Rounds == 0 {
		since = s.created
	}
	l.Seconds = s.cfg.Now().Sub(since).Seconds()
	return l
}

// register adds the stream's collectors to the Registerer and returns the
// function that removes them.
func (s *Stream) register() (func(), error) {
	reg := s.cfg.Registerer
	if reg == nil {
		return func() {}, nil
	}
	labels := prometheus.Labels{"stream": s.cfg.Name}
	cs := []prometheus.Collector{
		s.rounds, s.written,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "phoenix_replicate_lag_bytes", Help: "Bytes the source held beyond the replica at the end of the latest completed round.",
			ConstLabels: labels,
		}, func() float64 { return float64(s.Lag().Bytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "phoenix_replicate_lag_seconds", Help: "Seconds since the start of the latest completed round: older writes are all in the replica.",
			ConstLabels: labels,
		}, func() float64 { return s.Lag().Seconds }),
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("replicate stream %s: register metrics: %w (is another stream running with this name?)", s.cfg.Name, err)
		}
	}
	return func() {
		for _, c := range cs {
			reg.Unregister(c)
		}
	}, nil
}
