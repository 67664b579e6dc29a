package control

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/config"
	"github.com/phoenixsre/phoenix/replicate"
	"github.com/phoenixsre/phoenix/traffic"
)

// startStream starts continuous replication into a member's data
// directory, unless it already runs.
func (c *Controller) startStream(m phoenix.Member, conf config.Component) error {
	c.mu.Lock()
	_, running := c.streams[m.InstanceID]
	c.mu.Unlock()
	if running {
		return nil
	}
	method, err := c.method(m, conf, true)
	if err != nil {
		return err
	}
	s, err := replicate.NewStream(replicate.StreamConfig{
		Name: m.InstanceID, Method: method, Registerer: c.deps.Registerer,
		Logger: c.log.With("stream", m.InstanceID), Now: c.now,
	})
	if err != nil {
		return fmt.Errorf("replication into %s: %w", m.InstanceID, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningStream{s: s, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := s.Run(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("replication stream stopped", "stream", m.InstanceID, "err", err)
		}
	}()
	c.mu.Lock()
	c.streams[m.InstanceID] = r
	c.mu.Unlock()
	return nil
}

// stopStream stops an instance's replication and waits for its round to end.
func (c *Controller) stopStream(id string) {
	c.mu.Lock()
	r, ok := c.streams[id]
	delete(c.streams, id)
	c.mu.Unlock()
	if ok {
		r.cancel()
		<-r.done
	}
}

func (c *Controller) stopStreams() {
	c.mu.Lock()
	ids := make([]string, 0, len(c.streams))
	for id := range c.streams {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	for _, id := range ids {
		c.stopStream(id)
	}
}

// ListenAddrs gives the address every instance Phoenix knows listens on:
// each component's current primary and the replicas of its allocations.
// Passive discovery uses it to tell which process is which component.
func (c *Controller) ListenAddrs() map[netip.AddrPort]phoenix.ComponentID {
	out := map[netip.AddrPort]phoenix.ComponentID{}
	add := func(raw string, comp phoenix.ComponentID) {
		if u, err := url.Parse(raw); err == nil {
			if ap, err := netip.ParseAddrPort(u.Host); err == nil {
				out[ap] = comp
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, st := range c.comps {
		add(st.primary.URL, name)
		for _, a := range []*phoenix.Allocation{st.open, st.switched} {
			if a == nil {
				continue
			}
			for _, m := range a.Members {
				add(m.URL, m.Component)
			}
		}
	}
	return out
}

// Status is a snapshot of what the controller knows, for the API.
type Status struct {
	Components []ComponentStatus `json:"components"`
}

// ComponentStatus is one component's line of the status.
type ComponentStatus struct {
	Name    phoenix.ComponentID `json:"name"`
	Risk    phoenix.Risk        `json:"risk"`
	Primary string              `json:"primary"`
	Active  string              `json:"active"`
	Standby string              `json:"standby,omitempty"`
	Healthy bool                `json:"healthy"`
	Proxy   string              `json:"proxy"`
	// Allocation is the open allocation, if any.
	Allocation *phoenix.Allocation `json:"allocation,omitempty"`
	// Replication is the lag of each running stream into this component's
	// replicas, by instance.
	Replication map[string]replicate.Lag `json:"replication,omitempty"`
	Traffic     traffic.Status           `json:"traffic"`
}

// Status returns the current status of every component.
func (c *Controller) Status() Status {
	var out Status
	for _, name := range c.order {
		p := c.proxies[name]
		ps := p.Status()
		cs := ComponentStatus{Name: name, Active: p.Active().Name, Healthy: ps.Active.Healthy, Proxy: p.Addr().String(), Traffic: ps}
		if sb, ok := p.Standby(); ok {
			cs.Standby = sb.Name
		}
		c.mu.Lock()
		st := c.comps[name]
		cs.Risk = st.risk
		cs.Primary = st.primary.Name
		if st.open != nil {
			a := *st.open
			cs.Allocation = &a
			for _, m := range a.Members {
				if r, ok := c.streams[m.InstanceID]; ok {
					if cs.Replication == nil {
						cs.Replication = map[string]replicate.Lag{}
					}
					cs.Replication[m.InstanceID] = r.s.Lag()
				}
			}
		}
		c.mu.Unlock()
		out.Components = append(out.Components, cs)
	}
	return out
}

type metrics struct {
	risk        *prometheus.GaugeVec
	allocations *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		risk: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "phoenix_failure_probability",
			Help: "Probability that the component fails within the prediction horizon.",
		}, []string{"component"}),
		allocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phoenix_allocation_transitions_total",
			Help: "Allocations entering each phase.",
		}, []string{"phase"}),
	}
	if reg != nil {
		reg.MustRegister(m.risk, m.allocations)
	}
	return m
}
