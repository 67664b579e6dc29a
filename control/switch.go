package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/allocate"
	"github.com/phoenixsre/phoenix/config"
	"github.com/phoenixsre/phoenix/replicate"
	"github.com/phoenixsre/phoenix/traffic"
)

// switchover moves the component's traffic to its replica. The proxy holds
// new requests and drains in-flight ones; inside that pause the replica's
// state is brought level with the primary's (a final incremental round) and
// the replica is promoted; only then does the route change. So no
// acknowledged write is missing on the replica when it takes its first
// request.
func (c *Controller) switchover(ctx context.Context, act allocate.Action) error {
	c.mu.Lock()
	st := c.comps[act.Component]
	var a *phoenix.Allocation
	if st.open != nil {
		cp := st.open.Clone()
		a = &cp
	}
	from := st.primary
	c.mu.Unlock()
	if a == nil || (a.Phase != phoenix.PhasePrewarmed && a.Phase != phoenix.PhaseSwitching) {
		return errors.New("switch: no replica is ready")
	}
	c.mu.Lock()
	st.disrupted = c.now()
	c.mu.Unlock()
	if a.Phase != phoenix.PhaseSwitching {
		a.Phase = phoenix.PhaseSwitching
		if err := c.save(a); err != nil {
			return err
		}
	}
	conf, _ := c.cfg.Component(act.Component)
	m := a.Members[len(a.Members)-1]
	u, err := url.Parse(m.URL)
	if err != nil {
		return fmt.Errorf("switch: replica url: %w", err)
	}
	proxy := c.proxies[act.Component]
	if sb, ok := proxy.Standby(); !ok || sb.Name != m.InstanceID {
		if err := proxy.SetStandby(&traffic.Backend{Name: m.InstanceID, URL: u}); err != nil {
			return fmt.Errorf("switch: register %s as standby: %w", m.InstanceID, err)
		}
	}

	var caught replicate.Stats
	began := c.now()
	err = proxy.Switch(ctx, func(ctx context.Context) error {
		if conf.State.Method == config.StateNone {
			return c.promote(ctx, m.URL, conf.State)
		}
		c.stopStream(m.InstanceID)
		method, err := c.method(m, conf, false)
		if err != nil {
			return err
		}
		if caught, err = method.Incremental(ctx); err != nil {
			return fmt.Errorf("final catch-up: %w", err)
		}
		return c.promote(ctx, m.URL, conf.State)
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The proxy kept the old route; keep the replica warm and let the
		// loop decide again.
		a.Phase = phoenix.PhasePrewarmed
		if serr := c.save(a); serr != nil {
			return errors.Join(err, serr)
		}
		err = fmt.Errorf("switch to %s: %w", m.InstanceID, err)
		if conf.State.Method == config.StateIncremental {
			err = errors.Join(err, c.startStream(m, conf))
		}
		return err
	}

	a.Phase = phoenix.PhaseSwitched
	a.SwitchedAt = c.now()
	if err := c.save(a); err != nil {
		return err
	}
	c.mu.Lock()
	st.primary = endpoint{URL: m.URL, Metrics: m.URL + "/metrics", DataDir: m.DataDir, Env: phoenix.Secondary, Name: m.InstanceID}
	st.failed, st.failReason = false, ""
	st.switchRequested = false
	sw := *a
	st.switched = &sw
	st.disrupted = c.now()
	c.mu.Unlock()
	c.setTargets()
	c.deps.Risks.Reset(act.Component)

	how := "after the failure"
	if act.Preemptive {
		how = "pre-emptively"
	}
	msg := fmt.Sprintf("traffic for %s moved %s from %s to %s in %s: %s", act.Component, how, from.Name, m.InstanceID,
		a.SwitchedAt.Sub(began).Round(time.Millisecond), act.Reason)
	if conf.State.Method != config.StateNone {
		msg += fmt.Sprintf("; final catch-up sent %d bytes", caught.Bytes)
	}
	c.event(phoenix.Event{Kind: phoenix.EventSwitched, Component: act.Component, Message: msg,
		Fields: map[string]string{"allocation": a.ID, "from": from.Name, "to": m.InstanceID, "preemptive": fmt.Sprint(act.Preemptive)}})
	// A component switched before (its replica failed in turn) still has
	// the scaler of the allocation it leaves: its replicas served the old
	// route, and go with it.
	if err := c.stopScaler(ctx, act.Component); err != nil {
		c.log.Warn("stop scaling the allocation switched away from", "component", act.Component, "err", err)
	}
	if err := c.startScaler(*a); err != nil {
		return fmt.Errorf("switched, but scaling did not start: %w", err)
	}
	return nil
}

// promote turns the replica into a primary with the component's promote
// request, if it has one. The request must be idempotent: a switch resumed
// after a crash sends it again.
func (c *Controller) promote(ctx context.Context, base string, s config.State) error {
	if s.Promote == "" {
		return nil
	}
	method, path, err := config.ParseRequestLine(s.Promote)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, nil)
	if err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	for k, v := range s.Headers {
		if name, ok := strings.CutPrefix(v, "env:"); ok {
			v = os.Getenv(name)
		}
		req.Header.Set(k, v)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("promote %s: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("promote %s: %s: %s", base, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// release stops an allocation's replicas once the risk has passed.
func (c *Controller) release(ctx context.Context, act allocate.Action) error {
	c.mu.Lock()
	st := c.comps[act.Component]
	if st.open == nil {
		c.mu.Unlock()
		return nil
	}
	a := st.open.Clone()
	c.mu.Unlock()
	if a.Phase != phoenix.PhaseReleasing {
		a.Phase = phoenix.PhaseReleasing
		if err := c.save(&a); err != nil {
			return err
		}
	}
	if err := c.releaseMembers(ctx, &a); err != nil {
		return err
	}
	a.Phase = phoenix.PhaseReleased
	a.ReleasedAt = c.now()
	if err := c.save(&a); err != nil {
		return err
	}
	c.event(phoenix.Event{Kind: phoenix.EventReleased, Component: act.Component,
		Message: fmt.Sprintf("released %s (%s): %s", a.ID, memberList(&a), act.Reason),
		Fields:  map[string]string{"allocation": a.ID, "instance_seconds": fmt.Sprintf("%.1f", InstanceSeconds(a, a.ReleasedAt))}})
	return nil
}

// releaseMembers stops replication, unregisters standbys and releases the
// instances, last placed first. Each step is idempotent.
func (c *Controller) releaseMembers(ctx context.Context, a *phoenix.Allocation) error {
	var errs []error
	for i := len(a.Members) - 1; i >= 0; i-- {
		m := &a.Members[i]
		c.stopStream(m.InstanceID)
		if p, ok := c.proxies[m.Component]; ok {
			if sb, ok := p.Standby(); ok && sb.Name == m.InstanceID {
				if err := p.SetStandby(nil); err != nil {
					errs = append(errs, fmt.Errorf("unregister standby %s: %w", m.InstanceID, err))
				}
			}
		}
		if err := c.deps.Provider.Release(ctx, m.InstanceID); err != nil {
			errs = append(errs, err)
			continue
		}
		if m.ReleasedAt.IsZero() && !m.ProvisionedAt.IsZero() {
			m.ReleasedAt = c.now()
		}
	}
	return errors.Join(errs...)
}

// InstanceSeconds is what an allocation's instances have cost until now:
// the sum of each member's lifetime in the secondary environment.
func InstanceSeconds(a phoenix.Allocation, now time.Time) float64 {
	var s float64
	for _, m := range a.Members {
		if m.ProvisionedAt.IsZero() {
			continue
		}
		end := m.ReleasedAt
		if end.IsZero() {
			end = now
		}
		s += end.Sub(m.ProvisionedAt).Seconds()
	}
	return s
}
