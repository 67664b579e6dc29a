package provider

import "sync"

// IDLocks serialises what a provider does to one instance ID (Provision
// and Release of the same ID never interleave) while different IDs proceed
// side by side. The zero value is ready to use.
type IDLocks struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

// Lock locks id and returns its unlock.
func (l *IDLocks) Lock(id string) (unlock func()) {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[string]*sync.Mutex{}
	}
	m, ok := l.locks[id]
	if !ok {
		m = &sync.Mutex{}
		l.locks[id] = m
	}
	l.mu.Unlock()
	m.Lock()
	return m.Unlock
}
