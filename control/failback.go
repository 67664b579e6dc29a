package control

import (
	"context"
	"errors"
	"fmt"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/allocate"
	"github.com/phoenixsre/phoenix/config"
	"github.com/phoenixsre/phoenix/replicate"
)

// RequestFailBack asks the loop to move the component's traffic back to its
// original primary. It fails at once if there is nothing to go back to.
func (c *Controller) RequestFailBack(name phoenix.ComponentID, reason string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.comps[name]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownComponent, name)
	}
	if st.switched == nil {
		return fmt.Errorf("%s is served by its original primary; there is nothing to fail back from", name)
	}
	if !c.cfg.Traffic.Failback.Enabled {
		return errors.New("fail back is off: set traffic.failback.enabled so that a switch keeps the old route")
	}
	st.failBackRequested = true
	c.log.Info("fail back requested", "component", name, "reason", reason)
	c.poke()
	return nil
}

// failedBack is told by the proxy that it moved traffic back by policy.
// It runs on the proxy's route callback, so it only notes it.
func (c *Controller) failedBack(name phoenix.ComponentID) {
	c.mu.Lock()
	if st := c.comps[name]; st.switched != nil {
		st.failedBack = true
	}
	c.mu.Unlock()
	c.poke()
}

// failBack moves the traffic back (unless the proxy already did), then
// releases the replicas that served meanwhile, and makes the configured
// primary the component's primary again.
func (c *Controller) failBack(ctx context.Context, act allocate.Action) error {
	c.mu.Lock()
	st := c.comps[act.Component]
	if st.switched == nil {
		c.mu.Unlock()
		return nil
	}
	a := st.switched.Clone()
	moved := st.failedBack
	c.mu.Unlock()

	if !moved {
		if err := c.proxies[act.Component].FailBack(ctx, func(ctx context.Context) error {
			return c.failBackPrepare(ctx, act.Component)
		}); err != nil {
			c.mu.Lock()
			st.failBackRequested = false
			c.mu.Unlock()
			return fmt.Errorf("fail back: %w", err)
		}
	}
	if err := c.stopScaler(ctx, act.Component); err != nil {
		c.log.Warn("stop scaling", "component", act.Component, "err", err)
	}
	if err := c.releaseMembers(ctx, &a); err != nil {
		return err
	}
	a.Phase = phoenix.PhaseReleased
	a.ReleasedAt = c.now()
	if err := c.save(&a); err != nil {
		return err
	}
	conf := st.conf
	c.mu.Lock()
	st.switched = nil
	st.failBackRequested, st.failedBack = false, false
	st.primary = endpoint{URL: conf.Primary.URL, Metrics: conf.Primary.Metrics, DataDir: conf.State.Dir,
		Env: phoenix.Primary, Name: string(conf.Name) + "@primary"}
	c.mu.Unlock()
	c.setTargets()
	c.deps.Risks.Reset(act.Component)
	c.event(phoenix.Event{Kind: phoenix.EventFailedBack, Component: act.Component,
		Message: fmt.Sprintf("traffic for %s moved back to %s@primary and %s released: %s", act.Component, act.Component, a.ID, act.Reason),
		Fields:  map[string]string{"allocation": a.ID}})
	return nil
}

// failBackPrepare brings the original primary's state level with the
// replica's, inside the proxy's pause, and promotes it. The original primary
// must run as a follower of its data directory (for the example shop:
// "--follow"), as the replica did before it was promoted.
func (c *Controller) failBackPrepare(ctx context.Context, name phoenix.ComponentID) error {
	c.mu.Lock()
	st := c.comps[name]
	conf := st.conf
	var from string
	if st.switched != nil {
		from = st.switched.Members[len(st.switched.Members)-1].DataDir
	}
	c.mu.Unlock()
	if conf.State.Method == config.StateNone || from == "" {
		return nil
	}
	if _, err := replicate.Sync(ctx, from, conf.State.Dir); err != nil {
		return fmt.Errorf("copy state back to %s: %w", conf.State.Dir, err)
	}
	return c.promote(ctx, conf.Primary.URL, conf.State)
}
