package orderlog

import (
	"context"
	"fmt"
	"os"
	"slices"
)

// putReq is one Put waiting for the committer. done is buffered so the
// committer never blocks on a caller that gave up.
type putReq struct {
	id    string
	value []byte
	done  chan error
}

// maxBatch bounds how many Puts one fsync covers.
const maxBatch = 512

// Put stores value under id durably: it returns nil only once the record
// is written and fsynced. Concurrent Puts share an fsync (group commit). If
// ctx ends first, Put returns its error but the write may still land. On a
// follower Put returns ErrStandby; after a failed write or fsync every Put
// fails, because the file's state is unknown until a restart recovers it.
func (s *Store) Put(ctx context.Context, id string, value []byte) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	if len(value) > MaxValueLen {
		return fmt.Errorf("value of %d bytes exceeds the limit of %d", len(value), MaxValueLen)
	}
	s.mu.RLock()
	role, reqs, failed := s.role, s.reqs, s.failed
	s.mu.RUnlock()
	if role != Primary {
		return ErrStandby
	}
	if failed != nil {
		return failed
	}
	req := &putReq{id: id, value: slices.Clone(value), done: make(chan error, 1)}
	select {
	case reqs <- req:
	case <-s.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commit is the committer goroutine: it takes the Puts waiting at the
// moment, writes them with one write and one fsync, then applies them to
// the map and answers. It exits when the store closes; Puts it already
// took are finished first.
func (s *Store) commit(f *os.File, reqs <-chan *putReq, done chan<- struct{}) {
	defer close(done)
	var buf []byte
	batch := make([]*putReq, 0, maxBatch)
	for {
		select {
		case <-s.closing:
			return
		case r := <-reqs:
			batch = append(batch[:0], r)
		}
	gather:
		for len(batch) < maxBatch {
			select {
			case r := <-reqs:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		buf = buf[:0]
		for _, r := range batch {
			buf, _ = AppendRecord(buf, r.id, r.value) // Put validated them
		}
		err := s.writeSync(f, buf, batch)
		for _, r := range batch {
			r.done <- err
		}
	}
}

// writeSync appends buf, the encoding of batch, and fsyncs, then applies
// the batch to the map.
func (s *Store) writeSync(f *os.File, buf []byte, batch []*putReq) error {
	s.mu.RLock()
	failed := s.failed
	s.mu.RUnlock()
	if failed != nil {
		return failed
	}
	_, err := f.Write(buf)
	if err == nil {
		err = f.Sync()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.failed = fmt.Errorf("write %s: %w (the store refuses writes until restarted)", s.path, err)
		s.log.Error("log write failed", "path", s.path, "err", err)
		return s.failed
	}
	for _, r := range batch {
		s.m[r.id] = r.value // Put cloned it
	}
	s.records += int64(len(batch))
	s.offset += int64(len(buf))
	return nil
}
