package docker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/moby/moby/client"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/provider"
)

// Offers returns the engine's one offer: the configured size, price and
// zone, with Free counting how many more instances of that size fit in the
// capacity left by this namespace's running instances.
func (p *Provider) Offers(ctx context.Context) ([]provider.Offer, error) {
	capacity, used, _, err := p.room(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("offers: %w", err)
	}
	o := p.cfg.Offer
	free := min((capacity.MilliCPU-used.MilliCPU)/o.Size.MilliCPU, (capacity.MemoryBytes-used.MemoryBytes)/o.Size.MemoryBytes)
	return []provider.Offer{{
		ID:           o.ID,
		Provider:     Name,
		Zone:         o.Zone,
		Size:         o.Size,
		PricePerHour: o.PricePerHour,
		Performance:  o.Performance,
		Free:         int(max(free, 0)),
	}}, nil
}

// fits returns provider.ErrNoCapacity (wrapped, with the figures) when an
// instance of res does not fit beside the namespace's other instances.
func (p *Provider) fits(ctx context.Context, id string, res phoenix.Resources) error {
	capacity, used, engine, err := p.room(ctx, id)
	if err != nil {
		return err
	}
	if res.MilliCPU > engine.MilliCPU {
		return fmt.Errorf("%d milli-CPU asked, the engine has %d: %w", res.MilliCPU, engine.MilliCPU, provider.ErrNoCapacity)
	}
	if used.MilliCPU+res.MilliCPU > capacity.MilliCPU || used.MemoryBytes+res.MemoryBytes > capacity.MemoryBytes {
		return fmt.Errorf("%d milli-CPU and %d bytes asked; %d milli-CPU and %d bytes of %d and %d are in use: %w",
			res.MilliCPU, res.MemoryBytes, used.MilliCPU, used.MemoryBytes, capacity.MilliCPU, capacity.MemoryBytes, provider.ErrNoCapacity)
	}
	return nil
}

// room reports the namespace's capacity, what its live instances other
// than except use of it, and the engine's own size. Capacity defaults to
// the engine's, and never exceeds it.
func (p *Provider) room(ctx context.Context, except string) (capacity, used, engine phoenix.Resources, err error) {
	if engine, err = p.engineSize(ctx); err != nil {
		return capacity, used, engine, err
	}
	capacity = p.cfg.Offer.Capacity
	if capacity.MilliCPU == 0 || capacity.MilliCPU > engine.MilliCPU {
		capacity.MilliCPU = engine.MilliCPU
	}
	if capacity.MemoryBytes == 0 || capacity.MemoryBytes > engine.MemoryBytes {
		capacity.MemoryBytes = engine.MemoryBytes
	}
	res, err := p.cli.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", LabelNamespace+"="+p.cfg.Namespace)})
	if err != nil {
		return capacity, used, engine, fmt.Errorf("list instances: %w", engineErr(err))
	}
	for _, c := range res.Items {
		if c.Labels[LabelInstance] == except || !countsAgainstCapacity(string(c.State)) {
			continue
		}
		// The labels carry the limits the container was created with; a
		// container without them (made by hand) counts as the offer size.
		cpu, err1 := strconv.ParseInt(c.Labels[LabelMilliCPU], 10, 64)
		mem, err2 := strconv.ParseInt(c.Labels[LabelMemory], 10, 64)
		if err1 != nil || err2 != nil || cpu < 0 || mem < 0 {
			cpu, mem = p.cfg.Offer.Size.MilliCPU, p.cfg.Offer.Size.MemoryBytes
		}
		used.MilliCPU += cpu
		used.MemoryBytes += mem
	}
	return capacity, used, engine, nil
}

// engineSize is the engine's CPUs and memory as of a moment.
type engineSize struct {
	res phoenix.Resources
	at  time.Time
}

// engineInfoTTL is how long the engine's size is trusted: /info is one of
// the engine's slower calls, and a machine's CPUs and memory rarely change.
const engineInfoTTL = time.Minute

func (p *Provider) engineSize(ctx context.Context) (phoenix.Resources, error) {
	now := p.cfg.Now()
	p.mu.Lock()
	cached := p.engine
	p.mu.Unlock()
	if !cached.at.IsZero() && now.Sub(cached.at) < engineInfoTTL {
		return cached.res, nil
	}
	info, err := p.cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return phoenix.Resources{}, fmt.Errorf("engine info: %w", engineErr(err))
	}
	res := phoenix.Resources{MilliCPU: int64(info.Info.NCPU) * 1000, MemoryBytes: info.Info.MemTotal}
	p.mu.Lock()
	p.engine = engineSize{res: res, at: now}
	p.mu.Unlock()
	return res, nil
}

// countsAgainstCapacity: a created container is about to run; an exited
// one holds nothing.
func countsAgainstCapacity(state string) bool {
	switch state {
	case "created", "running", "paused", "restarting":
		return true
	}
	return false
}

type metrics struct {
	provisions *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		provisions: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "phoenix_docker_provision_seconds",
			Help:    "Time a Provision call took (container started, not yet ready), by result: ok, no_capacity or error.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 10),
		}, []string{"result"}),
	}
	if reg != nil {
		if err := reg.Register(m.provisions); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) observe(took time.Duration, err error) {
	result := "ok"
	switch {
	case errors.Is(err, provider.ErrNoCapacity):
		result = "no_capacity"
	case err != nil:
		result = "error"
	}
	m.provisions.WithLabelValues(result).Observe(took.Seconds())
}
