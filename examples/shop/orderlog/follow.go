package orderlog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"
)

// CatchUp applies the complete records appended to the log since the last
// call. It handles the file being replaced (a rename over it) or shrinking
// below the applied offset by reloading it from scratch: nothing short of
// re-reading proves that a new file extends what was applied, and
// replacement is the rare full copy while appends are the common case.
// Readers see the old map until the reload completes. A partial record at the end is
// left for later. A corrupt record stops progress at it; the error is
// returned, logged once, and shown in State().Error until it clears. On a
// primary CatchUp does nothing.
func (s *Store) CatchUp() error {
	s.tailMu.Lock()
	defer s.tailMu.Unlock()
	if s.Role() == Primary {
		return nil
	}
	select {
	case <-s.closing:
		return ErrClosed
	default:
	}
	err := s.catchUp()
	s.noteFollowErr(err)
	return err
}

func (s *Store) catchUp() error {
	fi, err := os.Stat(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // nothing copied yet, or a replacement in progress
	}
	if err != nil {
		return fmt.Errorf("stat %s: %w", s.path, err)
	}
	if s.rf == nil || !os.SameFile(fi, s.rfInfo) {
		f, err := os.Open(s.path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("open %s: %w", s.path, err)
		}
		if s.rf != nil {
			_ = s.rf.Close()
		}
		s.rf = f
	}
	_, _, err = s.applyFrom(s.rf)
	return err
}

// noteFollowErr records the follower's progress error, logging each new one.
func (s *Store) noteFollowErr(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	s.mu.Lock()
	prev := s.followErr
	s.followErr = msg
	s.mu.Unlock()
	switch {
	case msg != "" && msg != prev:
		s.log.Error("follower cannot advance", "path", s.path, "err", msg)
	case msg == "" && prev != "":
		s.log.Info("follower advancing again", "path", s.path)
	}
}

// applyFrom applies the complete records of f, an open handle on s.path,
// after the applied offset, reloading from scratch when f is a different
// file than the one applied so far or is shorter than the offset. It
// returns the end of the last good record and f's size; err may be a
// *CorruptError, with end where the corrupt record starts.
func (s *Store) applyFrom(f *os.File) (end, size int64, err error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("stat %s: %w", s.path, err)
	}
	replaced := s.rfInfo != nil && !os.SameFile(fi, s.rfInfo)
	s.rfInfo = fi
	size = fi.Size()
	s.mu.RLock()
	offset := s.offset
	s.mu.RUnlock()

	reload := false
	switch {
	case size < offset:
		s.log.Warn("log is shorter than the applied offset; reloading it", "path", s.path, "size", size, "offset", offset)
		reload = true
	case replaced:
		s.log.Info("log file was replaced; reloading it", "path", s.path, "size", size, "offset", offset)
		reload = true
	}
	if reload {
		return s.reload(f, size)
	}
	end, err = Scan(f, offset, size, func(rec Record, end int64) {
		s.mu.Lock()
		s.m[rec.ID] = slices.Clone(rec.Value)
		s.records++
		s.offset = end
		s.mu.Unlock()
	})
	return end, size, err
}

// reload rebuilds the map from the whole of f and swaps it in, so readers
// see the old map until the new one is complete.
func (s *Store) reload(f *os.File, size int64) (int64, int64, error) {
	m := make(map[string][]byte)
	var records int64
	end, err := Scan(f, 0, size, func(rec Record, _ int64) {
		m[rec.ID] = slices.Clone(rec.Value)
		records++
	})
	if err != nil && !isCorrupt(err) {
		return end, size, err
	}
	s.mu.Lock()
	s.m, s.records, s.offset = m, records, end
	s.mu.Unlock()
	return end, size, err
}

// Follow calls CatchUp every interval until ctx ends, the store is closed
// or it is promoted; progress errors are in State().Error. It returns nil
// on any of those.
func (s *Store) Follow(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if s.Role() == Primary {
			return nil
		}
		_ = s.CatchUp()
		select {
		case <-ctx.Done():
			return nil
		case <-s.closing:
			return nil
		case <-t.C:
		}
	}
}
