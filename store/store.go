package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/phoenixsre/phoenix"
)

var (
	bucketEvents      = []byte("events")
	bucketAllocations = []byte("allocations")
	bucketMeta        = []byte("meta")
)

// Store is Phoenix's persisted state: the event log and the allocations.
// Every write is committed (fsynced) before the call returns, so what a
// caller was told is stored survives kill -9.
type Store struct {
	db *bolt.DB

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every event append
}

// Open opens or creates the store at path. Only one process may hold it: a
// second daemon on the same state directory fails here instead of corrupting
// the first one's decisions.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: another phoenix daemon holds it (stop it, or give this one its own state_dir)", path)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketEvents, bucketAllocations, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &Store{db: db, changed: make(chan struct{})}, nil
}

// Close releases the store.
func (s *Store) Close() error { return s.db.Close() }

// Append writes an event, assigning its sequence number, and returns it.
func (s *Store) Append(e phoenix.Event) (phoenix.Event, error) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		e.Seq = seq
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		return b.Put(seqKey(seq), v)
	})
	if err != nil {
		return e, fmt.Errorf("append event: %w", err)
	}
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return e, nil
}

// Events returns up to limit events with a sequence number above after, in
// order. limit <= 0 means no limit.
func (s *Store) Events(after uint64, limit int) ([]phoenix.Event, error) {
	var out []phoenix.Event
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil; k, v = c.Next() {
			var e phoenix.Event
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("event %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, e)
			if limit > 0 && len(out) >= limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}

// Wait blocks until an event with a sequence number above after exists, or
// ctx ends, and returns those events (at most limit).
func (s *Store) Wait(ctx context.Context, after uint64, limit int) ([]phoenix.Event, error) {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		evs, err := s.Events(after, limit)
		if err != nil || len(evs) > 0 {
			return evs, err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// PutAllocation writes (creates or replaces) an allocation by ID.
func (s *Store) PutAllocation(a phoenix.Allocation) error {
	v, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("put allocation %s: %w", a.ID, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAllocations).Put([]byte(a.ID), v)
	})
	if err != nil {
		return fmt.Errorf("put allocation %s: %w", a.ID, err)
	}
	return nil
}

// Allocations returns every allocation, in ID order.
func (s *Store) Allocations() ([]phoenix.Allocation, error) {
	var out []phoenix.Allocation
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAllocations).ForEach(func(k, v []byte) error {
			var a phoenix.Allocation
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("allocation %s: %w", k, err)
			}
			out = append(out, a)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read allocations: %w", err)
	}
	return out, nil
}

// scaledKey is the meta bucket's key of an allocation's scaled replicas.
func scaledKey(allocation string) []byte { return []byte("scaled:" + allocation) }

// PutScaled records the IDs of the replicas the Dynamic Scaling Engine runs
// for an allocation (see scale.ActorConfig.Record), replacing the last list.
func (s *Store) PutScaled(allocation string, ids []string) error {
	v, err := json.Marshal(ids)
	if err != nil {
		return fmt.Errorf("put scaled replicas of %s: %w", allocation, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		if len(ids) == 0 {
			return tx.Bucket(bucketMeta).Delete(scaledKey(allocation))
		}
		return tx.Bucket(bucketMeta).Put(scaledKey(allocation), v)
	})
	if err != nil {
		return fmt.Errorf("put scaled replicas of %s: %w", allocation, err)
	}
	return nil
}

// Scaled returns the replica IDs last recorded for an allocation by
// PutScaled; none if nothing was.
func (s *Store) Scaled(allocation string) ([]string, error) {
	var ids []string
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(scaledKey(allocation))
		if v == nil {
			return nil
		}
		return json.Unmarshal(v, &ids)
	})
	if err != nil {
		return nil, fmt.Errorf("read scaled replicas of %s: %w", allocation, err)
	}
	return ids, nil
}

// ScaledAllocations returns the allocations that have replicas recorded by
// PutScaled, in key order.
func (s *Store) ScaledAllocations() ([]string, error) {
	var out []string
	prefix := scaledKey("")
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketMeta).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			out = append(out, string(k[len(prefix):]))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list scaled replicas: %w", err)
	}
	return out, nil
}

// NextID returns a new number from a named counter, persisted, so that IDs
// are never reused across restarts.
func (s *Store) NextID(counter string) (uint64, error) {
	var n uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketMeta).CreateBucketIfNotExists([]byte("counter:" + counter))
		if err != nil {
			return err
		}
		n, err = b.NextSequence()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("next id %s: %w", counter, err)
	}
	return n, nil
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}
