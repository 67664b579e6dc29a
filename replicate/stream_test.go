package replicate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// recordWriter appends CRC'd records to path until ctx ends, sometimes in two
// writes so that the source itself often ends in a partial record.
func recordWriter(ctx context.Context, path string, written *atomic.Int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; ctx.Err() == nil; i++ {
		rec := encodeRecord(fmt.Appendf(nil, "order %d %s", i, strings.Repeat("x", rng.IntN(3000))))
		cut := len(rec)
		if i%3 == 0 {
			cut = rng.IntN(len(rec))
		}
		if _, err := f.Write(rec[:cut]); err != nil {
			return err
		}
		if _, err := f.Write(rec[cut:]); err != nil {
			return err
		}
		written.Add(1)
	}
	return nil
}

// follower tails path like the replica process: it reads what is there,
// decodes complete records and waits for the rest of a partial one. It
// reopens the file if it was replaced by rename, and counts that.
type follower struct {
	records atomic.Int64
	reopens atomic.Int64
	err     error // first corrupt record; read after run returns
}

func (fl *follower) run(ctx context.Context, path string) {
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	var buf []byte
	for ctx.Err() == nil {
		if f == nil {
			var err error
			if f, err = os.Open(path); err != nil {
				time.Sleep(time.Millisecond) // the first round has not created it yet
				continue
			}
		}
		chunk, err := io.ReadAll(f)
		if err != nil {
			fl.err = err
			return
		}
		buf = append(buf, chunk...)
		recs, used, err := decodeRecords(buf)
		if err != nil {
			fl.err = err
			return
		}
		fl.records.Add(int64(len(recs)))
		buf = buf[used:]
		if len(chunk) == 0 {
			if replaced(f, path) {
				fl.reopens.Add(1)
				f.Close()
				f, buf = nil, nil
				fl.records.Store(0)
			}
			time.Sleep(time.Millisecond) // tail -f: nothing new yet
		}
	}
}

func replaced(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && !os.SameFile(a, b)
}

func TestStreamAppendingWriter(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	srcLog, dstLog := filepath.Join(src, "orders.log"), filepath.Join(dst, "orders.log")
	writeFile(t, filepath.Join(src, "fill", "filler"), pattern(1, 100_000))
	reg := prometheus.NewRegistry()
	s, err := NewStream(StreamConfig{Name: "orders", Src: src, Dst: dst, Interval: 5 * time.Millisecond, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx) }()

	var written atomic.Int64
	writeCtx, stopWriting := context.WithCancel(ctx)
	writerErr := make(chan error, 1)
	if err := os.WriteFile(srcLog, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	go func() { writerErr <- recordWriter(writeCtx, srcLog, &written) }()
	var fl follower
	followCtx, stopFollowing := context.WithCancel(ctx)
	wg.Add(1)
	go func() { defer wg.Done(); fl.run(followCtx, dstLog) }()

	waitFor(t, "20 rounds while the writer writes", func() bool { return s.Lag().Rounds >= 20 && written.Load() > 1000 })
	stopWriting()
	if err := <-writerErr; err != nil {
		t.Fatal(err)
	}
	st, err := s.CatchUp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustEqualFiles(t, srcLog, dstLog)
	if lag := s.Lag(); lag.Bytes != 0 {
		t.Errorf("lag after catch-up: %+v, want 0 bytes", lag)
	}
	if st.Remaining != 0 {
		t.Errorf("catch-up stats %+v, want nothing remaining", st)
	}
	waitFor(t, "the follower to read every record", func() bool { return fl.records.Load() == written.Load() })
	stopFollowing()
	wg.Wait()
	if fl.err != nil {
		t.Fatalf("follower: %v", fl.err)
	}
	if fl.reopens.Load() != 0 {
		t.Errorf("the log was replaced %d times, want appends only", fl.reopens.Load())
	}
	assertSameTree(t, src, dst)

	for _, name := range []string{"phoenix_replicate_lag_bytes", "phoenix_replicate_lag_seconds", "phoenix_replicate_rounds_total"} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n == 0 {
			t.Errorf("metric %s: %d series, err %v", name, n, err)
		}
	}
	if v := testutil.ToFloat64(s.rounds.WithLabelValues("ok")); v < 20 {
		t.Errorf("rounds_total{result=ok} = %v, want >= 20", v)
	}
	cancel()
	select {
	case err := <-runErr:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if n, _ := testutil.GatherAndCount(reg); n != 0 {
		t.Errorf("%d series left registered after Run returned", n)
	}
}

func TestStreamLag(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "orders.log"), pattern(1, 1000))
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	s, err := NewStream(StreamConfig{Src: src, Dst: dst, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	advance(2 * time.Second)
	if lag := s.Lag(); lag.Rounds != 0 || lag.Seconds != 2 {
		t.Errorf("before any round: %+v, want 0 rounds, 2s since creation", lag)
	}
	roundStart := clock()
	if _, err := s.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	advance(5 * time.Second)
	lag := s.Lag()
	if lag.Rounds != 1 || lag.Seconds != 5 || !lag.LastRound.Equal(roundStart) || lag.Bytes != 0 || lag.Err != nil {
		t.Errorf("after one round: %+v, want 1 round 5s ago, 0 bytes", lag)
	}

	// A failing round keeps the last good measure and reports the failure.
	if err := os.Rename(src, src+".away"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CatchUp(context.Background()); err == nil {
		t.Fatal("round without a source succeeded")
	}
	advance(time.Second)
	lag = s.Lag()
	if lag.Rounds != 1 || lag.Failures != 1 || lag.Err == nil || lag.Seconds != 6 {
		t.Errorf("after a failed round: %+v, want 1 round 6s ago, 1 failure", lag)
	}
	if err := os.Rename(src+".away", src); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	if lag = s.Lag(); lag.Rounds != 2 || lag.Failures != 0 || lag.Err != nil || lag.Seconds != 0 {
		t.Errorf("after recovery: %+v", lag)
	}
}

func TestNewStreamRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  StreamConfig
		want string
	}{
		{StreamConfig{Dst: "/d"}, "Src is empty"},
		{StreamConfig{Src: "/s"}, "set Dst"},
		{StreamConfig{Src: "/s", Dst: "/d", Interval: -time.Second}, "Interval -1s is negative"},
	} {
		_, err := NewStream(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewStream(%+v) = %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
}

// TestStreamsShareRegistry runs two streams on one registry (distinct names
// register side by side) and refuses a third with a duplicate name.
func TestStreamsShareRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var streams []*Stream
	for _, name := range []string{"orders", "payments", "orders"} {
		s, err := NewStream(StreamConfig{Name: name, Src: t.TempDir(), Dst: t.TempDir(), Registerer: reg, Interval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
	}
	errs := make(chan error, 2)
	for _, s := range streams[:2] {
		go func() { errs <- s.Run(ctx) }()
	}
	waitFor(t, "both streams registered", func() bool {
		n, _ := testutil.GatherAndCount(reg, "phoenix_replicate_lag_seconds")
		return n == 2
	})
	if err := streams[2].Run(ctx); err == nil || !strings.Contains(err.Error(), "another stream") {
		t.Errorf("duplicate stream name: Run = %v, want a registration error", err)
	}
	cancel()
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestCatchUpWaitsForContext checks that CatchUp queued behind a round gives
// up when its context ends.
func TestCatchUpWaitsForContext(t *testing.T) {
	s, err := NewStream(StreamConfig{Src: t.TempDir(), Dst: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	s.turn <- struct{}{} // a round in progress
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.CatchUp(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("CatchUp = %v, want context.Canceled", err)
	}
}
