package orderlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
)

// FileName is the log's name inside the data directory.
const FileName = "orders.log"

// Role says whether a Store accepts writes.
type Role string

// The two roles. A follower becomes a primary by Promote, never back.
const (
	Primary  Role = "primary"
	Follower Role = "follower"
)

// Errors a Put can return besides I/O failures.
var (
	// ErrStandby: the store is a follower that has not been promoted.
	ErrStandby = errors.New("standby: not promoted")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store closed")
)

// State is what a Store has applied, as served on /admin/state.
type State struct {
	Role Role `json:"role"`
	// Records counts the records applied, overwrites included.
	Records int64 `json:"records"`
	// Offset is the byte offset just past the last applied record.
	Offset int64 `json:"offset"`
	Keys   int   `json:"keys"`
	// Truncated is how many bytes the last open or promotion cut off the
	// end of the log because they were a torn or corrupt tail.
	Truncated int64 `json:"truncated_bytes"`
	// Error says why a follower is not advancing (a corrupt record it
	// waits to see replaced), empty otherwise.
	Error string `json:"error,omitempty"`
}

// Store is the orders' map, backed by the log. Safe for concurrent use.
type Store struct {
	path string
	log  *slog.Logger

	mu        sync.RWMutex // guards the fields below
	role      Role
	m         map[string][]byte
	records   int64
	offset    int64
	truncated int64
	followErr string
	failed    error // sticky write failure: the file's state is unknown

	// tailMu serialises catch-up and promotion; it guards rf and rfInfo.
	tailMu sync.Mutex
	rf     *os.File
	rfInfo os.FileInfo // the file applied so far, to notice a replacement

	// Primary only: the committer goroutine and its inbox.
	wf        *os.File
	reqs      chan *putReq
	closing   chan struct{}
	closeOnce sync.Once
	done      chan struct{} // closed when the committer has exited
}

// Open opens the log in dir (created if missing) as a primary: it replays
// the log, truncates a torn or corrupt tail at the last good record (and
// logs how many bytes), and starts the committer. Close it when done.
func Open(dir string, logger *slog.Logger) (*Store, error) {
	s, _, err := load(dir, logger)
	if err != nil {
		return nil, err
	}
	if _, err := s.Promote(context.Background()); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open %s: %w", s.path, err)
	}
	return s, nil
}

// OpenFollower opens the log in dir (created if missing; the log file may
// not exist yet) as a follower: it loads the complete records and serves
// them; CatchUp or Follow applies what is appended later.
func OpenFollower(dir string, logger *slog.Logger) (*Store, error) {
	s, corrupt, err := load(dir, logger)
	if err != nil {
		return nil, err
	}
	s.noteFollowErr(corrupt)
	return s, nil
}

// load reads the complete records of the log in dir into a follower. A
// corrupt record stops the load; it is returned apart, for the caller to
// report or truncate.
func load(dir string, logger *slog.Logger) (s *Store, corrupt, err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("create data directory: %w", err)
	}
	s = &Store{
		path:    filepath.Join(dir, FileName),
		log:     logger,
		role:    Follower,
		m:       make(map[string][]byte),
		closing: make(chan struct{}),
	}
	s.tailMu.Lock()
	defer s.tailMu.Unlock()
	if err := s.catchUp(); err != nil {
		if isCorrupt(err) {
			return s, err, nil
		}
		if s.rf != nil {
			_ = s.rf.Close()
		}
		return nil, nil, fmt.Errorf("load %s: %w", s.path, err)
	}
	return s, nil, nil
}

func isCorrupt(err error) bool {
	_, ok := errors.AsType[*CorruptError](err)
	return ok
}

// Get returns the value stored for id. The caller must not modify it.
func (s *Store) Get(id string) ([]byte, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.m[id]
	return v, ok
}

// State returns a snapshot of what the store has applied.
func (s *Store) State() State {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return State{
		Role: s.role, Records: s.records, Offset: s.offset, Keys: len(s.m),
		Truncated: s.truncated, Error: s.followErr,
	}
}

// Role reports the store's current role.
func (s *Store) Role() Role {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.role
}

// Close stops the committer (in-flight Puts finish first) and closes the
// files. Puts after Close return ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	// Under tailMu no promotion is half-way: the committer either runs, and
	// is told to stop by closing, or will never start.
	s.tailMu.Lock()
	defer s.tailMu.Unlock()
	s.mu.RLock()
	done := s.done
	s.mu.RUnlock()
	if done != nil {
		<-done
	}
	var errs []error
	if s.rf != nil {
		errs = append(errs, s.rf.Close())
		s.rf = nil
	}
	if s.wf != nil {
		errs = append(errs, s.wf.Close())
		s.wf = nil
	}
	return errors.Join(errs...)
}

// Promote makes a follower a primary: it applies the log to its end,
// truncates a torn or corrupt final record, and starts accepting writes.
// Promoting a primary changes nothing. It returns the state once done.
func (s *Store) Promote(ctx context.Context) (State, error) {
	s.tailMu.Lock()
	defer s.tailMu.Unlock()
	if s.Role() == Primary {
		return s.State(), nil
	}
	if err := ctx.Err(); err != nil {
		return State{}, fmt.Errorf("promote: %w", err)
	}
	select {
	case <-s.closing:
		return State{}, fmt.Errorf("promote: %w", ErrClosed)
	default:
	}
	wf, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return State{}, fmt.Errorf("promote: %w", err)
	}
	end, size, err := s.applyFrom(wf)
	if err != nil && !isCorrupt(err) {
		_ = wf.Close()
		return State{}, fmt.Errorf("promote: %w", err)
	}
	if s.rf != nil { // wf replaces the follower's read handle
		_ = s.rf.Close()
		s.rf = nil
	}
	if err := s.truncateTail(wf, end, size, err); err != nil {
		_ = wf.Close()
		return State{}, fmt.Errorf("promote: %w", err)
	}
	if _, err := wf.Seek(end, io.SeekStart); err != nil {
		_ = wf.Close()
		return State{}, fmt.Errorf("promote: seek to %d: %w", end, err)
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		_ = wf.Close()
		return State{}, fmt.Errorf("promote: %w", err)
	}
	s.wf = wf
	reqs, done := make(chan *putReq), make(chan struct{})
	s.mu.Lock()
	s.role, s.reqs, s.done = Primary, reqs, done
	s.followErr = ""
	s.mu.Unlock()
	go s.commit(wf, reqs, done)
	return s.State(), nil
}

// truncateTail cuts f at end when bytes follow the last good record, and
// logs why. cause is the scan's *CorruptError, or nil for a torn record.
func (s *Store) truncateTail(f *os.File, end, size int64, cause error) error {
	if end >= size {
		return nil
	}
	if err := f.Truncate(end); err != nil {
		return fmt.Errorf("truncate %s at %d: %w", s.path, end, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s after truncation: %w", s.path, err)
	}
	s.mu.Lock()
	s.truncated = size - end
	s.mu.Unlock()
	if cause != nil {
		s.log.Error("truncated corrupt log tail", "path", s.path, "bytes", size-end, "offset", end, "reason", cause.Error())
	} else {
		s.log.Warn("truncated torn log tail", "path", s.path, "bytes", size-end, "offset", end)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
