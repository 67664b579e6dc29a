package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/compression"

	"github.com/phoenixsre/phoenix"
)

// Defaults of StoreConfig.
const (
	DefaultStoreRetention     = 15 * 24 * time.Hour // Prometheus's own default
	DefaultStoreBlockDuration = 2 * time.Hour       // Prometheus's own default
)

// Labels of the derived signal series a Store keeps beside the raw ones.
const (
	SignalMetricName = "phoenix_signal"
	LabelComponent   = "component"
	LabelEnvironment = "environment"
	LabelSignal      = "signal"
)

// StoreConfig configures the embedded time-series store.
type StoreConfig struct {
	// Dir holds the write-ahead log and the blocks; required. One Store at a
	// time may use a Dir (a lock file enforces it).
	Dir string
	// Retention is how long samples are kept; blocks wholly older than it
	// are deleted at compaction. Default DefaultStoreRetention.
	Retention time.Duration
	// BlockDuration is the span of the head compacted into one block (and
	// of the smallest block); default DefaultStoreBlockDuration.
	BlockDuration time.Duration
	// WALCompression compresses WAL records with snappy: about half the
	// disk writes for some more CPU per sample. Off by default: Phoenix's
	// ingestion is CPU-bound on small machines, not disk-bound.
	WALCompression bool
	// Logger receives tsdb's own logs; nil discards.
	Logger *slog.Logger
	// Registerer receives tsdb's metrics (prometheus_tsdb_*); nil registers
	// nothing.
	Registerer prometheus.Registerer
}

// Validate reports the fields that cannot be used as given.
func (c StoreConfig) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("telemetry store dir is empty: give a directory for the write-ahead log and blocks"))
	}
	if c.Retention < 0 {
		errs = append(errs, fmt.Errorf("telemetry store retention %s: must be positive (or 0 for %s)", c.Retention, DefaultStoreRetention))
	}
	if c.BlockDuration < 0 || (c.BlockDuration > 0 && c.BlockDuration < time.Minute) {
		errs = append(errs, fmt.Errorf("telemetry store block duration %s: must be at least 1m (or 0 for %s)", c.BlockDuration, DefaultStoreBlockDuration))
	}
	return errors.Join(errs...)
}

// Store is the collector's history: Prometheus's own tsdb, with its
// write-ahead log, head compaction into blocks and retention. It keeps the
// raw series the receivers write (through AppenderV2, so every Prometheus
// ingestion path can write into it) and the derived signal series the
// scraper and the component view compute (through Append).
//
// A sample is durable once the Commit of its appender has returned: the WAL
// record is then written to the file (not fsynced; a killed process loses
// nothing the kernel has, a power cut may lose the last seconds, as with
// Prometheus). The store runs its compaction and retention in its own
// goroutine until Close.
type Store struct {
	db  *tsdb.DB
	log *slog.Logger
}

var (
	_ storage.AppendableV2 = (*Store)(nil)
	_ storage.Queryable    = (*Store)(nil)
	_ SignalWriter         = (*Store)(nil)
)

// OpenStore opens (or creates) the store in cfg.Dir, replaying its WAL.
func OpenStore(cfg StoreConfig) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultStoreRetention
	}
	if cfg.BlockDuration == 0 {
		cfg.BlockDuration = DefaultStoreBlockDuration
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = cfg.Retention.Milliseconds()
	opts.MinBlockDuration = cfg.BlockDuration.Milliseconds()
	opts.MaxBlockDuration = max(opts.MinBlockDuration, min(cfg.Retention/10, 31*24*time.Hour).Milliseconds())
	if cfg.WALCompression {
		opts.WALCompression = compression.Snappy
	}
	db, err := tsdb.Open(cfg.Dir, cfg.Logger, cfg.Registerer, opts, nil)
	if err != nil {
		return nil, fmt.Errorf("open telemetry store %s: %w", cfg.Dir, err)
	}
	return &Store{db: db, log: cfg.Logger}, nil
}

// AppenderV2 returns an appender into the store; see storage.AppenderV2.
func (s *Store) AppenderV2(ctx context.Context) storage.AppenderV2 { return s.db.AppenderV2(ctx) }

// Querier reads the store between mint and maxt (milliseconds).
func (s *Store) Querier(mint, maxt int64) (storage.Querier, error) { return s.db.Querier(mint, maxt) }

// Close flushes and closes the store. Samples not yet committed are lost;
// committed ones are in the WAL.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close telemetry store: %w", err)
	}
	return nil
}

// NumSeries is the number of series in the head (the recent, in-memory
// part of the store).
func (s *Store) NumSeries() uint64 { return s.db.Head().NumSeries() }

// signalLabels is the label set of a derived signal series.
func signalLabels(c phoenix.ComponentID, env phoenix.Environment, sig phoenix.Signal) labels.Labels {
	return labels.FromStrings(labels.MetricName, SignalMetricName,
		LabelComponent, string(c), LabelEnvironment, string(env), LabelSignal, string(sig))
}

// Append writes derived signal values as phoenix_signal{component,
// environment, signal} series, all at time at. Non-finite values are
// skipped. It returns once the values are durable, or with the reason they
// are not (a value older than one already stored for the series is
// refused, as tsdb refuses out-of-order samples).
func (s *Store) Append(t Target, at time.Time, values map[phoenix.Signal]float64) error {
	app := s.db.AppenderV2(context.Background())
	ms := at.UnixMilli()
	var errs []error
	for sig, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		if _, err := app.Append(0, signalLabels(t.Component, t.Environment, sig), 0, ms, v, nil, nil, storage.AOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", sig, err))
		}
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("store signals of %s (%s): %w", t.Component, t.Environment, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("store signals of %s (%s) at %s: %w", t.Component, t.Environment, at.Format(time.RFC3339Nano), errors.Join(errs...))
	}
	return nil
}

// Points returns one signal series of a component between from and to
// (inclusive), oldest first.
func (s *Store) Points(ctx context.Context, c phoenix.ComponentID, env phoenix.Environment, sig phoenix.Signal, from, to time.Time) ([]Point, error) {
	ms := []*labels.Matcher{
		labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, SignalMetricName),
		labels.MustNewMatcher(labels.MatchEqual, LabelComponent, string(c)),
		labels.MustNewMatcher(labels.MatchEqual, LabelEnvironment, string(env)),
		labels.MustNewMatcher(labels.MatchEqual, LabelSignal, string(sig)),
	}
	var out []Point
	err := s.Select(ctx, from, to, ms, func(_ labels.Labels, t int64, v float64) {
		out = append(out, Point{T: time.UnixMilli(t), V: v})
	})
	if err != nil {
		return nil, fmt.Errorf("read %s %s (%s): %w", c, sig, env, err)
	}
	return out, nil
}

// Select calls fn with every float sample of the series matching ms between
// from and to (inclusive), series by series in label order, each oldest
// first. Histogram samples are skipped.
func (s *Store) Select(ctx context.Context, from, to time.Time, ms []*labels.Matcher, fn func(ls labels.Labels, t int64, v float64)) error {
	q, err := s.db.Querier(from.UnixMilli(), to.UnixMilli())
	if err != nil {
		return err
	}
	defer q.Close()
	set := q.Select(ctx, true, nil, ms...)
	var it chunkenc.Iterator
	for set.Next() {
		series := set.At()
		it = series.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			if vt != chunkenc.ValFloat {
				continue
			}
			t, v := it.At()
			fn(series.Labels(), t, v)
		}
		if err := it.Err(); err != nil {
			return err
		}
	}
	return set.Err()
}
