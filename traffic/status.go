package traffic

import "time"

// Status is a point-in-time view of the proxy, for the API and the CLI.
type Status struct {
	Component string `json:"component"`
	Protocol  string `json:"protocol"`
	Addr      string `json:"addr"`
	// Active is the backend Active returns: the first healthy member of the
	// active set. Pool lists every member, joining ones included.
	Active     BackendStatus   `json:"active"`
	Pool       []BackendStatus `json:"pool"`
	Standby    *BackendStatus  `json:"standby,omitempty"`
	Fallback   []BackendStatus `json:"fallback,omitempty"`
	Switching  bool            `json:"switching"`
	LastSwitch time.Time       `json:"last_switch,omitzero"`
	Holding    int64           `json:"holding"` // requests held right now
	// Counters since New. For TCP, a request is a connection.
	Served   uint64 `json:"served"`   // answered by a backend (any status)
	Failed   uint64 `json:"failed"`   // answered by the proxy with an error status
	Canceled uint64 `json:"canceled"` // the client left before an answer
	Retries  uint64 `json:"retries"`
	Held     uint64 `json:"held"` // requests that had to wait
	Switches uint64 `json:"switches"`
}

// BackendStatus is one backend's health as the proxy sees it.
type BackendStatus struct {
	Name                string    `json:"name"`
	URL                 string    `json:"url"`
	Joined              bool      `json:"joined"` // false while an added backend awaits its first good check
	Healthy             bool      `json:"healthy"`
	Suspect             bool      `json:"suspect"`
	ConsecutiveFailures int       `json:"consecutive_failures"` // failed health checks in a row
	HealthySince        time.Time `json:"healthy_since,omitzero"`
	// ConsecutiveErrors counts proxied requests that failed in a row
	// (transport errors and 5xx answers): the passive signal.
	ConsecutiveErrors int64     `json:"consecutive_errors"`
	Requests          uint64    `json:"requests"` // proxied requests since it was added
	Errors            uint64    `json:"errors"`   // of which failed
	EjectedUntil      time.Time `json:"ejected_until,omitzero"`
	Outlier           string    `json:"outlier,omitempty"` // why it is an outlier, when it could not be ejected
	LastError         string    `json:"last_error,omitempty"`
	LastErrorAt       time.Time `json:"last_error_at,omitzero"`
	LastCheck         time.Time `json:"last_check,omitzero"`
	InFlight          int64     `json:"in_flight"`
}

// Status reports the backends' health and the proxy's counters.
func (p *Proxy) Status() Status {
	p.mu.Lock()
	r := p.route.Load()
	s := Status{
		Component:  string(p.cfg.Component),
		Protocol:   string(p.cfg.Protocol),
		Addr:       p.Addr().String(),
		Active:     r.primary().status(),
		Pool:       statuses(p.active),
		Fallback:   statuses(p.fallback),
		Switching:  p.switching,
		LastSwitch: p.lastSwitch,
	}
	if p.standby != nil {
		st := p.standby.status()
		s.Standby = &st
	}
	p.mu.Unlock()
	s.Holding = p.stats.holding.Load()
	s.Served = p.stats.served.Load()
	s.Failed = p.stats.failed.Load()
	s.Canceled = p.stats.canceled.Load()
	s.Retries = p.stats.retries.Load()
	s.Held = p.stats.held.Load()
	s.Switches = p.stats.switches.Load()
	return s
}

func statuses(ts []*target) []BackendStatus {
	if len(ts) == 0 {
		return nil
	}
	out := make([]BackendStatus, len(ts))
	for i, t := range ts {
		out[i] = t.status()
	}
	return out
}

// status must be called with Proxy.mu held.
func (t *target) status() BackendStatus {
	return BackendStatus{
		Name:                t.backend.Name,
		URL:                 t.backend.URL.String(),
		Joined:              t.joined,
		Healthy:             t.health.healthy,
		Suspect:             t.health.suspect,
		ConsecutiveFailures: t.health.failures,
		HealthySince:        t.healthySince,
		ConsecutiveErrors:   t.passive.consec.Load(),
		Requests:            t.passive.reqs.Load(),
		Errors:              t.passive.errs.Load(),
		EjectedUntil:        t.outlier.ejectedUntil,
		Outlier:             t.outlier.flag,
		LastError:           t.lastErr,
		LastErrorAt:         t.lastErrAt,
		LastCheck:           t.lastCheck,
		InFlight:            t.inflight.Load(),
	}
}
