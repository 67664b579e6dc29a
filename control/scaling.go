package control

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/provider"
	"github.com/phoenixsre/phoenix/scale"
)

// runningScaler is the Dynamic Scaling Engine working on one component.
type runningScaler struct {
	alloc  string // the allocation whose replicas it scales
	actor  *scale.Actor
	cancel context.CancelFunc
	done   chan struct{}
}

// startScaler sizes the component's pool in the secondary environment to
// its demand, from the switch on: more replicas of the promoted one, made
// from the same recipe and placement, joined to the proxy's pool, drained
// and released when demand falls. Demand is what the proxy serves.
func (c *Controller) startScaler(a phoenix.Allocation) error {
	conf, _ := c.cfg.Component(a.Component)
	sc := conf.Scale
	if !sc.Enabled {
		// Replicas a killed run left (scaling since turned off) go.
		return c.releaseScaled(context.Background(), a.ID)
	}
	last := len(a.Members) - 1
	cmd, err := c.fill(conf.Replica.Command, &a, last)
	if err != nil {
		return errors.Join(err, c.releaseScaled(context.Background(), a.ID))
	}
	env := map[string]string{}
	for k, v := range conf.Replica.Env {
		if env[k], err = c.fill1(v, &a, last); err != nil {
			return err
		}
	}
	m := a.Members[last]
	proxy := c.proxies[a.Component]
	actor, err := scale.NewActor(scale.ActorConfig{
		Component: a.Component, Instances: c.deps.Provider, Pool: proxy, Logger: c.log.With("scale", string(a.Component)),
		Template: provider.Spec{ID: a.ID, Command: cmd, Env: env, Resources: m.Resources, Offer: m.Offer},
		Record:   func(ids []string) error { return c.store.PutScaled(a.ID, ids) },
	})
	if err != nil {
		return errors.Join(err, c.releaseScaled(context.Background(), a.ID))
	}
	spec := scale.DefaultHPA(sc.MaxReplicas, scale.Metric{Name: "rps", Source: scale.SourceExternal, Target: scale.AverageValue,
		Value: sc.TargetUtilization * sc.CapacityRPS})
	spec.MinReplicas = sc.MinReplicas
	var pol scale.Policy
	if sc.Policy == "hpa" {
		pol, err = scale.NewHPA(spec)
	} else {
		steps := 1 + int(math.Ceil(sc.Startup.D().Seconds()/sc.Measure.D().Seconds()))
		var fc *scale.ConformalPeak
		if fc, err = scale.NewConformalPeak(scale.DefaultConformal(steps)); err == nil {
			pol, err = scale.NewPredictive(scale.PredictiveConfig{HPA: spec, Demand: "rps", Capacity: sc.CapacityRPS,
				Forecaster: fc, Risk: sc.Risk, Interval: sc.Measure.D()})
		}
	}
	if err != nil {
		return errors.Join(fmt.Errorf("scale %s: %w", a.Component, err), c.releaseScaled(context.Background(), a.ID))
	}
	s, err := scale.NewScaler(scale.ScalerConfig{
		Component: a.Component, Policy: pol, Actor: actor, Metric: "rps",
		Demand:  &scale.CounterRate{Count: func() uint64 { return proxy.Status().Served }, Now: c.now},
		Measure: sc.Measure.D(), Sync: sc.Sync.D(), Logger: c.log.With("scale", string(a.Component)),
		Registerer: c.deps.Registerer, Now: c.now,
	})
	if err != nil {
		return errors.Join(err, c.releaseScaled(context.Background(), a.ID))
	}
	// Replicas a previous run started and did not release (it was killed)
	// rejoin the pool, or are released if they are gone. Only now, with the
	// scaler built: what joins the pool has an actor to take it out.
	recorded, err := c.store.Scaled(a.ID)
	if err != nil {
		return err
	}
	if len(recorded) > 0 {
		actx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := actor.Adopt(actx, recorded)
		cancel()
		if err != nil {
			// What could be adopted is; the rest stays recorded, and the
			// scaler's Close (or the next run) releases it.
			c.event(phoenix.Event{Kind: phoenix.EventError, Component: a.Component, Message: "scaling: " + err.Error()})
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningScaler{alloc: a.ID, actor: actor, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := s.Run(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("scaler stopped", "component", a.Component, "err", err)
		}
	}()
	c.mu.Lock()
	c.scalers[a.Component] = r
	c.mu.Unlock()
	c.event(phoenix.Event{Kind: phoenix.EventScaled, Component: a.Component,
		Message: fmt.Sprintf("scaling %s's pool to its demand (%s policy, %d-%d replicas of %.0f requests/s each)", a.Component, sc.Policy, sc.MinReplicas, sc.MaxReplicas, sc.CapacityRPS)})
	return nil
}

// releaseScaled releases the replicas recorded for an allocation that no
// scaler runs for, and forgets those released, giving up after a minute or
// when ctx ends.
func (c *Controller) releaseScaled(ctx context.Context, allocation string) error {
	ids, err := c.store.Scaled(allocation)
	if err != nil || len(ids) == 0 {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var left []string
	var errs []error
	for _, id := range ids {
		if err := c.deps.Provider.Release(ctx, id); err != nil && !errors.Is(err, provider.ErrNotFound) {
			errs = append(errs, fmt.Errorf("release scaled replica %s: %w", id, err))
			left = append(left, id)
			continue
		}
		c.log.Info("scaled replica of an earlier run released", "allocation", allocation, "instance", id)
	}
	return errors.Join(append(errs, c.store.PutScaled(allocation, left))...)
}

// stopScaler stops a component's scaling and drains and releases the
// replicas it added.
func (c *Controller) stopScaler(ctx context.Context, name phoenix.ComponentID) error {
	c.mu.Lock()
	r, ok := c.scalers[name]
	delete(c.scalers, name)
	c.mu.Unlock()
	if !ok {
		return nil
	}
	r.cancel()
	<-r.done
	return r.actor.Close(ctx)
}
