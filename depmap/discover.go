package depmap

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/phoenixsre/phoenix"
)

// EdgeAdder takes an edge learnt outside traces. *Graph is one.
type EdgeAdder interface {
	AddEdge(from, to phoenix.ComponentID, source string) error
}

var _ EdgeAdder = (*Graph)(nil)

// Resolver names the component that owns a client's address: the one at
// the other end of a connection a proxy accepted.
type Resolver interface {
	ResolveClient(ctx context.Context, client netip.AddrPort) (phoenix.ComponentID, error)
}

// ErrUnknownClient is wrapped by a Resolver that knows no component at the
// address: an outside client, or one that has gone.
var ErrUnknownClient = errors.New("no known component owns this client address")

// Resolvers asks each resolver in turn and takes the first answer; it
// returns ErrUnknownClient when none knows, or the first other error.
type Resolvers []Resolver

var _ Resolver = Resolvers(nil)

// ResolveClient implements Resolver.
func (rs Resolvers) ResolveClient(ctx context.Context, client netip.AddrPort) (phoenix.ComponentID, error) {
	var firstErr error
	for _, r := range rs {
		c, err := r.ResolveClient(ctx, client)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, ErrUnknownClient) && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return "", firstErr
	}
	return "", fmt.Errorf("client %s: %w", client, ErrUnknownClient)
}

// AddrTable resolves a client by its IP address alone: the longest prefix
// that contains it. It fits components with addresses of their own, such
// as containers, pods and hosts. On one host where every component talks
// over loopback all clients share 127.0.0.1, so a table cannot tell them
// apart: use a ProcResolver there. It is immutable and safe for
// concurrent use.
type AddrTable struct {
	entries []addrEntry // longest prefix first
}

type addrEntry struct {
	prefix netip.Prefix
	c      phoenix.ComponentID
}

var _ Resolver = (*AddrTable)(nil)

// NewAddrTable returns a table from prefixes (a single address is a /32 or
// /128) to components. It fails on an invalid prefix or component name.
func NewAddrTable(m map[netip.Prefix]phoenix.ComponentID) (*AddrTable, error) {
	t := &AddrTable{}
	for p, c := range m {
		if !p.IsValid() {
			return nil, fmt.Errorf("address table: invalid prefix %v for %s", p, c)
		}
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("address table: prefix %v: %w", p, err)
		}
		t.entries = append(t.entries, addrEntry{prefix: p.Masked(), c: c})
	}
	slices.SortFunc(t.entries, func(a, b addrEntry) int {
		return cmp.Or(cmp.Compare(b.prefix.Bits(), a.prefix.Bits()), a.prefix.Addr().Compare(b.prefix.Addr()))
	})
	return t, nil
}

// ResolveClient implements Resolver.
func (t *AddrTable) ResolveClient(_ context.Context, client netip.AddrPort) (phoenix.ComponentID, error) {
	a := client.Addr().Unmap()
	for _, e := range t.entries {
		if e.prefix.Contains(a) {
			return e.c, nil
		}
	}
	return "", fmt.Errorf("client %s: %w", client, ErrUnknownClient)
}

// ObserverOptions configures an Observer.
type ObserverOptions struct {
	Graph    EdgeAdder // required
	Resolver Resolver  // required
	// Queue bounds the observations waiting to be resolved; past it they
	// are dropped and counted. Default 1024.
	Queue int
	// Timeout bounds one resolution. Default 2s.
	Timeout    time.Duration
	Logger     *slog.Logger          // nil discards
	Registerer prometheus.Registerer // nil registers no metrics
}

// Observer turns the connections Phoenix's proxies accept into edges with
// source SourceProxy: client component -> proxied component. Observe is
// cheap and never blocks the proxy; Run resolves the client in the
// background. Resolution must happen while the client's socket is open:
// a connection closed within a few milliseconds of being accepted may not
// resolve (counted as unknown), which keep-alive clients never are.
type Observer struct {
	o     ObserverOptions
	ch    chan observation
	stats observerCounters
}

type observation struct {
	to   phoenix.ComponentID
	from netip.AddrPort
	sync chan struct{} // a Sync marker: closed when reached
}

type observerCounters struct {
	observed, resolved, unknown, failed, dropped, self atomic.Uint64
}

// ObserverStats counts what an Observer did.
type ObserverStats struct {
	Observed uint64 // connections reported to Observe
	Resolved uint64 // became (or refreshed) an edge
	Unknown  uint64 // no component owns the client address
	Failed   uint64 // the resolver or the graph failed
	Dropped  uint64 // the queue was full
	Self     uint64 // the client is the proxied component itself
}

// NewObserver returns an Observer; Run must be running for it to act.
func NewObserver(o ObserverOptions) (*Observer, error) {
	if o.Graph == nil || o.Resolver == nil {
		return nil, errors.New("depmap observer: Graph and Resolver are required")
	}
	if o.Queue < 0 || o.Timeout < 0 {
		return nil, fmt.Errorf("depmap observer: Queue %d and Timeout %v must not be negative; 0 takes the default", o.Queue, o.Timeout)
	}
	o.Queue = cmp.Or(o.Queue, 1024)
	o.Timeout = cmp.Or(o.Timeout, 2*time.Second)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	ob := &Observer{o: o, ch: make(chan observation, o.Queue)}
	if o.Registerer != nil {
		if err := o.Registerer.Register(&observerCollector{ob: ob}); err != nil {
			return nil, fmt.Errorf("depmap observer: register metrics: %w", err)
		}
	}
	return ob, nil
}

// Observe reports that the proxy of component to accepted a connection
// from client from. It returns false when the observation was dropped
// because the queue is full.
func (ob *Observer) Observe(to phoenix.ComponentID, from netip.AddrPort) bool {
	ob.stats.observed.Add(1)
	select {
	case ob.ch <- observation{to: to, from: from}:
		return true
	default:
		ob.stats.dropped.Add(1)
		return false
	}
}

// Sync waits until every observation made before it has been handled by
// Run, or ctx ends.
func (ob *Observer) Sync(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case ob.ch <- observation{sync: done}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run resolves observations until ctx ends, then returns nil.
func (ob *Observer) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case obs := <-ob.ch:
			if obs.sync != nil {
				close(obs.sync)
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, ob.o.Timeout)
			_, _ = ob.Record(rctx, obs.to, obs.from)
			cancel()
		}
	}
}

// Record resolves from at once and adds the edge from's component -> to.
// It returns the client's component. Run calls it for each observation;
// it is exported for callers that already run off the accepting path.
func (ob *Observer) Record(ctx context.Context, to phoenix.ComponentID, from netip.AddrPort) (phoenix.ComponentID, error) {
	c, err := ob.o.Resolver.ResolveClient(ctx, from)
	switch {
	case errors.Is(err, ErrUnknownClient):
		ob.stats.unknown.Add(1)
		ob.o.Logger.Debug("proxy client not resolved", "to", to, "client", from, "reason", err)
		return "", err
	case err != nil:
		ob.stats.failed.Add(1)
		ob.o.Logger.Warn("resolve proxy client", "to", to, "client", from, "err", err)
		return "", fmt.Errorf("resolve client %s of %s: %w", from, to, err)
	case c == to:
		ob.stats.self.Add(1)
		return c, nil
	}
	if err := ob.o.Graph.AddEdge(c, to, SourceProxy); err != nil {
		ob.stats.failed.Add(1)
		ob.o.Logger.Warn("add proxy edge", "from", c, "to", to, "err", err)
		return c, fmt.Errorf("add proxy edge %s -> %s: %w", c, to, err)
	}
	ob.stats.resolved.Add(1)
	return c, nil
}

// Stats returns the counters.
func (ob *Observer) Stats() ObserverStats {
	s := &ob.stats
	return ObserverStats{Observed: s.observed.Load(), Resolved: s.resolved.Load(), Unknown: s.unknown.Load(),
		Failed: s.failed.Load(), Dropped: s.dropped.Load(), Self: s.self.Load()}
}
