package replicate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Append detection windows: a grown file is extended in place only if the
// destination's first headWindow bytes and its last tailWindow bytes equal
// the source's at the same offsets.
const (
	headWindow = 4 << 10
	tailWindow = 64 << 10
)

// maxErrors bounds how many per-file errors a round reports in full.
const maxErrors = 10

// Retries of a file whose transfer failed with ErrTransient: attempts in
// all, and the first and longest pause between two.
const (
	maxAttempts  = 6
	firstBackoff = 100 * time.Millisecond
	maxBackoff   = 2 * time.Second
)

// Stats describes one round.
type Stats struct {
	Files     int // regular files at the source
	Copied    int // files written whole: new, rewritten or shrunk
	Patched   int // files rebuilt from a delta: chunks the destination had plus new ones
	Appended  int // files extended in place
	Removed   int // destination entries deleted (a directory counts once)
	Unchanged int // files left as they were
	Skipped   int // source entries not replicated: symlinks, devices, sockets, pipes, reserved temp names

	// Bytes is the new content the destination received this round: whole
	// files, appended tails and the new chunks of patches. Ranges a patch
	// copied from the destination's own files are in Reused.
	Bytes       int64
	Reused      int64
	SourceBytes int64 // total size of the source's regular files at the scan
	// ManifestsFetched counts destination chunk lists fetched because the
	// ChunkCache did not know a changed file's destination version.
	ManifestsFetched int
	// Retries counts file transfers re-sent after ErrTransient.
	Retries int
	// Passes is how many rounds a consistent snapshot took (0 for a
	// single round), and Consistent whether its last pass found nothing
	// changed (always false for a single round).
	Passes     int
	Consistent bool
	// Pending is how many bytes differed between source and destination at
	// the start of the round: whole files for copies, tails for appends.
	Pending int64
	// Remaining is how many bytes the source held at the end of the round
	// that the destination does not (writes made during the round),
	// estimated from a second scan of sizes and mtimes.
	Remaining int64
	Duration  time.Duration
}

// Snapshot makes the directory dst a verified full copy of src: every file
// is written whole (temp file, fsync, rename) and its length and CRC-32C
// compared on arrival with the source's before the rename, and whatever src
// does not have is removed. When it returns without error, all of it is on
// stable storage.
// dst is created if missing. Files written during the snapshot are copied as
// they are when read; the next Sync picks up the rest.
func Snapshot(ctx context.Context, src, dst string) (Stats, error) {
	if err := checkDistinct(src, dst); err != nil {
		return Stats{}, err
	}
	d, err := OpenDir(dst)
	if err != nil {
		return Stats{}, err
	}
	defer d.Close()
	return SnapshotTo(ctx, src, d, nil)
}

// Sync runs one incremental round from src to the directory dst (created if
// missing): only what changed moves, appends are made in place. On an empty
// dst it is a full copy. Files copied whole are verified on arrival too.
func Sync(ctx context.Context, src, dst string) (Stats, error) {
	if err := checkDistinct(src, dst); err != nil {
		return Stats{}, err
	}
	d, err := OpenDir(dst)
	if err != nil {
		return Stats{}, err
	}
	defer d.Close()
	return SyncTo(ctx, src, d, nil)
}

// SnapshotTo is Snapshot to any Sink. log may be nil.
func SnapshotTo(ctx context.Context, src string, dst Sink, log *slog.Logger) (Stats, error) {
	return runRound(ctx, src, dst, roundConfig{full: true, log: log})
}

// SyncTo is Sync to any Sink. log may be nil.
//
// A round never writes to the source. When it fails, each destination file
// is its old or its new version (an appended file may hold part of the new
// tail: it is still a prefix of the source's). Per-file errors do not stop
// the round; a full destination or a cancelled ctx do, and then the error is
// ctx.Err() itself or wraps ErrDestinationFull.
func SyncTo(ctx context.Context, src string, dst Sink, log *slog.Logger) (Stats, error) {
	return runRound(ctx, src, dst, roundConfig{log: log})
}

// roundConfig is what a round may use besides its source and destination.
type roundConfig struct {
	full  bool          // copy every file whole (a snapshot pass)
	cache *ChunkCache   // not nil: send changed files as deltas when the sink is a Patcher
	lim   *rate.Limiter // nil: unthrottled reads of the source
	log   *slog.Logger  // nil discards
}

// checkDistinct refuses a destination that is, contains or lies inside the
// source: a round would copy its own output forever, or delete its input.
func checkDistinct(src, dst string) error {
	a, b := realPath(src), realPath(dst)
	if a == b || strings.HasPrefix(b, a+string(filepath.Separator)) || strings.HasPrefix(a, b+string(filepath.Separator)) {
		return fmt.Errorf("replicate %s to %s: source and destination overlap: give the replica a directory outside the source", src, dst)
	}
	return nil
}

// realPath is p made absolute, with symlinks resolved in its longest
// existing prefix.
func realPath(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	rest := ""
	for dir := abs; ; dir = filepath.Dir(dir) {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			return filepath.Join(real, rest)
		}
		if dir == filepath.Dir(dir) {
			return abs
		}
		rest = filepath.Join(filepath.Base(dir), rest)
	}
}

func runRound(ctx context.Context, srcDir string, dst Sink, cfg roundConfig) (Stats, error) {
	start := time.Now()
	log := cfg.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	root, err := os.OpenRoot(srcDir)
	if err != nil {
		return Stats{}, fmt.Errorf("open source %s: %w", srcDir, err)
	}
	defer root.Close()
	r := &round{ctx: ctx, src: root, dst: dst, log: log, full: cfg.full, cache: cfg.cache, lim: cfg.lim, sent: make(map[string]fileState)}
	err = r.run()
	if fl, ok := dst.(Flusher); ok {
		// Not cancellable: renames already made must become durable.
		if ferr := fl.Flush(context.WithoutCancel(ctx)); ferr != nil && err == nil {
			err = ferr
		}
	}
	r.stats.Duration = time.Since(start)
	if cerr := ctx.Err(); err != nil && cerr != nil {
		return r.stats, cerr
	}
	return r.stats, err
}

// round carries one round's state.
type round struct {
	ctx   context.Context
	src   *os.Root
	dst   Sink
	log   *slog.Logger
	full  bool
	cache *ChunkCache
	lim   *rate.Limiter
	stats Stats
	sent  map[string]fileState // what the destination now holds, per path
}

func (r *round) run() error {
	level := slog.LevelDebug
	if r.full {
		level = slog.LevelInfo
	}
	src, skipped, err := scanSource(r.ctx, r.src, r.log, level)
	if err != nil {
		return err
	}
	r.stats.Skipped = skipped
	for _, e := range src {
		if e.Kind == KindFile {
			r.stats.Files++
			r.stats.SourceBytes += e.Size
		}
	}
	dst, err := r.dst.List(r.ctx)
	if err != nil {
		return err
	}
	if r.cache != nil {
		r.cache.validate(dst)
	}
	acts := plan(src, dst, r.full)
	if r.cache != nil {
		acts = newFilesLast(acts)
	}
	e := &roundErrors{}
	i := 0
	for ; i < len(acts) && (r.cache != nil || !isFileOp(acts[i].op)); i++ {
		if e.add(r.do(acts[i])) {
			return errors.Join(e.errs...)
		}
	}
	if i < len(acts) {
		// Without a chunk cache the file transfers are independent:
		// they run side by side, so that one file's fsync overlaps the
		// next one's reading and hashing.
		r.parallel(acts[i:], e)
		if r.ctx.Err() != nil || e.stop {
			return errors.Join(e.errs...)
		}
	}
	errs, failed := e.errs, e.failed
	if failed > maxErrors {
		errs = append(errs, fmt.Errorf("and %d more errors", failed-maxErrors))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	r.stats.Remaining, err = r.remaining()
	return err
}

// fileWorkers is how many file transfers a round without a chunk cache runs
// at once.
const fileWorkers = 4

// isFileOp reports whether op transfers a file (plan orders them last).
func isFileOp(o op) bool { return o == opCopy || o == opGrow || o == opVerify || o == opKeep }

// roundErrors collects a round's per-file errors; safe for concurrent use.
type roundErrors struct {
	mu     sync.Mutex
	errs   []error
	failed int
	stop   bool // a full destination or a cancelled round: stop sending
}

// add records err and reports whether the round must stop.
func (e *roundErrors) add(err error) bool {
	if err == nil {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.failed++; e.failed <= maxErrors {
		e.errs = append(e.errs, err)
	}
	if errors.Is(err, ErrDestinationFull) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		e.stop = true
	}
	return e.stop
}

func (e *roundErrors) stopped() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stop
}

// parallel runs the file actions on fileWorkers copies of the round and
// adds up what they did. The largest go first: a round lasts at least as
// long as its largest file, which should start at once, not after the many
// small ones, while the small ones fill the other workers around it (the
// longest-processing-time-first rule).
func (r *round) parallel(acts []action, e *roundErrors) {
	acts = largestFirst(acts)
	jobs := make(chan action)
	workers := make([]*round, min(fileWorkers, len(acts)))
	var wg sync.WaitGroup
	for i := range workers {
		w := &round{ctx: r.ctx, src: r.src, dst: r.dst, log: r.log, full: r.full, lim: r.lim, sent: make(map[string]fileState)}
		workers[i] = w
		wg.Go(func() {
			for a := range jobs {
				e.add(w.do(a))
			}
		})
	}
feed:
	for _, a := range acts {
		if e.stopped() {
			break
		}
		select {
		case jobs <- a:
		case <-r.ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	for _, w := range workers {
		r.stats.add(w.stats)
		for p, st := range w.sent {
			r.sent[p] = st
		}
	}
}

// largestFirst returns the file actions sorted by the bytes they move,
// largest first, in plan order among equals.
func largestFirst(acts []action) []action {
	acts = slices.Clone(acts)
	slices.SortStableFunc(acts, func(a, b action) int { return cmp.Compare(work(b), work(a)) })
	return acts
}

// work estimates the bytes a file action moves.
func work(a action) int64 {
	switch a.op {
	case opKeep:
		return 0
	case opGrow:
		return a.src.Size - a.dst.Size
	}
	return a.src.Size
}

// newFilesLast moves the copies of files the destination lacks after every
// other action, so that by the time they go the chunk cache knows the
// destination versions of the changed files, and a new file made of old
// content (a copy, a rotated log) is sent as references to it.
func newFilesLast(acts []action) []action {
	out := make([]action, 0, len(acts))
	var fresh []action
	for _, a := range acts {
		if a.op == opCopy && a.dst.Kind == 0 {
			fresh = append(fresh, a)
			continue
		}
		out = append(out, a)
	}
	return append(out, fresh...)
}

func (r *round) do(a action) error {
	switch a.op {
	case opRemove:
		r.stale(a.path)
		if err := r.dst.Remove(r.ctx, a.path); err != nil {
			return err
		}
		r.stats.Removed++
		return nil
	case opMkdir:
		return r.dst.Mkdir(r.ctx, a.path, a.src.Perm)
	case opKeep:
		r.stats.Unchanged++
		r.sent[a.path] = fileState{size: a.src.Size, modTime: a.src.ModTime}
		return nil
	}
	return r.transfer(a)
}

// restat refreshes what the action knows of the destination file after a
// failed attempt, which may have left part of an append there.
func (r *round) restat(a *action) {
	st, ok := r.dst.(Stater)
	if !ok || (a.op != opGrow && a.op != opVerify) {
		return
	}
	e, exists, err := st.Stat(r.ctx, a.path)
	switch {
	case err != nil:
	case exists && e.Kind == KindFile:
		a.dst = e
	default:
		a.op, a.dst = opCopy, Entry{}
	}
}

// stale drops what the chunk cache knows of p, about to change.
func (r *round) stale(p string) {
	if r.cache != nil {
		r.cache.forget(p)
	}
}

// transfer carries out a copy, grow or verify on one file, and sends it
// again after a transient failure, with backoff.
func (r *round) transfer(a action) error {
	backoff := firstBackoff
	for attempt := 1; ; attempt++ {
		err := r.transferOnce(a)
		if err == nil || !errors.Is(err, ErrTransient) || attempt == maxAttempts || r.ctx.Err() != nil {
			return err
		}
		r.stats.Retries++
		r.log.Warn("transfer failed, sending again", "path", a.path, "attempt", attempt, "err", err)
		select {
		case <-time.After(backoff):
		case <-r.ctx.Done():
			return r.ctx.Err()
		}
		backoff = min(2*backoff, maxBackoff)
		r.restat(&a)
	}
}

func (r *round) transferOnce(a action) error {
	f, err := r.src.Open(filepath.FromSlash(a.path))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // gone since the scan: the next round removes it
	}
	if err != nil {
		return fmt.Errorf("open source %s: %w", a.path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat source %s: %w", a.path, err)
	}
	if !info.Mode().IsRegular() {
		return nil // replaced by something else since the scan
	}
	start := time.Now()
	pt, patchable := r.patchable(info.Size())
	// A racy file of the same size is verified in full before anything is
	// sent, unless it can go as an in-place patch against chunks the cache
	// knows: a patch of the same content then writes nothing (and counts
	// as unchanged), and comparing first would read the whole file on both
	// sides once more when it did change (a live database's files, written
	// all the time, are racy at every round).
	patchFirst := a.op == opVerify && patchable && a.dst.Size >= inPlaceMin && r.cache.knows(a.path, a.dst)
	if a.op == opGrow || a.op == opVerify && !patchFirst {
		ok, err := r.isPrefix(f, a.path, a.dst.Size, info.Size(), a.op == opVerify)
		if err != nil {
			return err
		}
		if ok {
			err := r.appendTail(f, a, info.Size(), start)
			if !errors.Is(err, ErrChanged) {
				return err
			}
		}
	}
	if patchable {
		err := r.patch(pt, f, a, info.Size(), start)
		if err == nil || !(errors.Is(err, ErrVerify) || errors.Is(err, ErrChanged) || errors.Is(err, errNoBase) || errors.Is(err, errKeyMismatch)) {
			return err
		}
		if !errors.Is(err, errNoBase) {
			r.log.Info("delta refused, sending the file whole", "path", a.path, "err", err)
		}
	}
	return r.copyWhole(f, a.path, info.Size(), start)
}

// isPrefix reports whether the destination's dstSize bytes are a prefix of
// the source: by the head and tail windows (the append heuristic), or in
// full when whole is set (a racily-clean file, where only content tells).
func (r *round) isPrefix(f *os.File, p string, dstSize, srcSize int64, whole bool) (bool, error) {
	if srcSize < dstSize {
		return false, nil
	}
	windows := [][2]int64{{0, min(headWindow, dstSize)}}
	if whole {
		windows = [][2]int64{{0, dstSize}}
	} else if dstSize > headWindow {
		off := max(0, dstSize-tailWindow)
		windows = append(windows, [2]int64{off, dstSize - off})
	}
	for _, w := range windows {
		want, err := sumRange(r.ctx, f, w[0], w[1], r.lim)
		if err != nil {
			return false, fmt.Errorf("compare %s: source: %w", p, err)
		}
		got, err := r.dst.Sum(r.ctx, p, w[0], w[1])
		if err != nil {
			return false, fmt.Errorf("compare %s: destination: %w", p, err)
		}
		if got != want {
			return false, nil
		}
	}
	return true, nil
}

// appendTail extends the destination file with the source's bytes past its
// end. With no new bytes (a verified racy file) it only refreshes the mode
// and mtime.
func (r *round) appendTail(f *os.File, a action, srcSize int64, start time.Time) error {
	c, err := newSourceFile(r.ctx, f, a.dst.Size, start, checkNone, r.lim)
	if err != nil {
		return err
	}
	r.stale(a.path)
	n, err := r.dst.Append(r.ctx, a.path, a.dst.Size, c)
	r.stats.Bytes += n
	if err != nil {
		return err
	}
	if n == 0 {
		r.stats.Unchanged++
	} else {
		r.stats.Appended++
	}
	r.stats.Pending += srcSize - a.dst.Size
	r.sent[a.path] = c.state
	return nil
}

// copyWhole replaces the destination file with the source's current
// content, which the sink verifies on arrival against its Checksum.
func (r *round) copyWhole(f *os.File, p string, srcSize int64, start time.Time) error {
	c, err := newSourceFile(r.ctx, f, 0, start, checkChecksum, r.lim)
	if err != nil {
		return err
	}
	r.stale(p)
	n, err := r.dst.Replace(r.ctx, p, c)
	r.stats.Bytes += n
	if err != nil {
		return err
	}
	r.stats.Copied++
	r.stats.Pending += srcSize
	r.sent[p] = c.state
	return nil
}

// remaining rescans the source and estimates the bytes it holds beyond what
// the round sent: new files whole, grown files by their growth, otherwise
// changed files whole.
func (r *round) remaining() (int64, error) {
	quiet := slog.New(slog.DiscardHandler)
	src, _, err := scanSource(r.ctx, r.src, quiet, slog.LevelDebug)
	if err != nil {
		return 0, err
	}
	var rem int64
	for _, e := range src {
		if e.Kind != KindFile {
			continue
		}
		st, ok := r.sent[e.Path]
		switch {
		case !ok:
			rem += e.Size
		case e.Size == st.size && e.ModTime.Equal(st.modTime):
		case e.Size > st.size:
			rem += e.Size - st.size
		default:
			rem += e.Size
		}
	}
	return rem, nil
}
