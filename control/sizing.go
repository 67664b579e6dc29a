package control

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/allocate"
	"github.com/phoenixsre/phoenix/provider"
	"github.com/phoenixsre/phoenix/telemetry"
)

// HistorySource is the telemetry store as sizing reads it.
type HistorySource interface {
	Points(ctx context.Context, c phoenix.ComponentID, env phoenix.Environment, sig phoenix.Signal, from, to time.Time) ([]telemetry.Point, error)
}

// errBudget marks a pre-warm refused by the budget cap.
var errBudget = errors.New("over budget")

// maxRefusals bounds how many offers may refuse or fail one member before
// the allocation gives up.
const maxRefusals = 5

// plan sizes an allocation's members from their measured history, checks
// the budget, and places them on the provider's offers. It fills each
// member's Offer and Resources and returns the explanation to store.
// A replica built after a confirmed failure (emergency) is never refused
// by the budget: the refusal is logged and the replica made.
func (c *Controller) plan(ctx context.Context, a *phoenix.Allocation) ([]string, error) {
	now := c.now()
	policy := allocate.DefaultRequirementPolicy()
	policy.CPU.Floor = max(policy.CPU.Floor, float64(c.cfg.Secondary.Sizing.MinMilliCPU)/1000)
	policy.Memory.Floor = max(policy.Memory.Floor, float64(c.cfg.Secondary.Sizing.MinMemory))
	in := allocate.RequirementsInput{Now: now}
	for _, m := range a.Members {
		in.Members = append(in.Members, allocate.Need{Component: m.Component, History: c.history(ctx, m.Component, now, policy.CPU.Window)})
	}
	reqs, err := allocate.Requirements(in, policy)
	if err != nil {
		return nil, err
	}
	sizing := make([]string, 0, len(reqs)+2)
	group := allocate.Group{Component: a.Component}
	for _, r := range reqs {
		sizing = append(sizing, r.Explain())
		if r.Needed {
			group.Tasks = append(group.Tasks, allocate.Task{Component: r.Component, Resources: r.Resources})
		}
	}

	v := allocate.CheckBudget(c.budgetView(now), allocate.BudgetRequest{
		Instances: len(group.Tasks), Hold: c.cfg.Thresholds.ReleaseAfter.D() + c.cfg.Predict.Horizon.D(),
	})
	sizing = append(sizing, "budget: "+v.Reason)
	if !v.Allowed {
		if !a.Emergency {
			return sizing, fmt.Errorf("%w: %s", errBudget, strings.TrimPrefix(v.Reason, "over budget: "))
		}
		c.event(phoenix.Event{Kind: phoenix.EventError, Component: a.Component,
			Message: "over budget, but a failure is confirmed: building the replica anyway (" + v.Reason + ")"})
	}

	offers, err := c.deps.Provider.Offers(ctx)
	if err != nil {
		return sizing, fmt.Errorf("offers: %w", err)
	}
	p, err := allocate.Place(allocate.Snapshot{Offers: offers}, group)
	if err != nil {
		return sizing, err
	}
	if !p.Complete() {
		why := make([]string, len(p.Unplaced))
		for i, u := range p.Unplaced {
			why[i] = fmt.Sprintf("%s: %s", u.Component, u.Reason)
		}
		return sizing, fmt.Errorf("cannot place the closure: %s", strings.Join(why, "; "))
	}
	for _, pl := range p.Placements {
		for i := range a.Members {
			if a.Members[i].Component == pl.Component {
				a.Members[i].Offer, a.Members[i].Resources = pl.Offer.ID, pl.Resources
			}
		}
		sizing = append(sizing, fmt.Sprintf("%s placed on %s: %s", pl.Component, allocate.OfferKey(pl.Offer), pl.Reason))
	}
	return sizing, nil
}

// replace finds the next offer for a member after the offers in tried
// refused it or failed: placement again, without them. tried holds offer
// IDs, unique among the one provider's offers.
func (c *Controller) replace(ctx context.Context, m *phoenix.Member, tried []string) error {
	offers, err := c.deps.Provider.Offers(ctx)
	if err != nil {
		return fmt.Errorf("offers: %w", err)
	}
	snap := allocate.Snapshot{Offers: offers}
	for _, o := range offers {
		if slices.Contains(tried, o.ID) {
			snap = snap.Exclude(allocate.OfferKey(o))
		}
	}
	p, err := allocate.Place(snap, allocate.Group{Component: m.Component,
		Tasks: []allocate.Task{{Component: m.Component, Resources: m.Resources}}})
	if err != nil {
		return err
	}
	if !p.Complete() {
		return fmt.Errorf("no other offer fits %s: %s", m.Component, p.Unplaced[0].Reason)
	}
	m.Offer, m.Resources = p.Placements[0].Offer.ID, p.Placements[0].Resources
	return nil
}

// history reads a member's measured signals over the window, from its
// current primary. A store that cannot answer leaves the history empty:
// the requirements then fall back to the policy's defaults, and say so.
func (c *Controller) history(ctx context.Context, name phoenix.ComponentID, now time.Time, window time.Duration) allocate.History {
	var h allocate.History
	if c.deps.History == nil {
		return h
	}
	c.mu.Lock()
	env := phoenix.Primary
	if st, ok := c.comps[name]; ok {
		env = st.primary.Env
	}
	c.mu.Unlock()
	read := func(sig phoenix.Signal) []allocate.Sample {
		pts, err := c.deps.History.Points(ctx, name, env, sig, now.Add(-window), now)
		if err != nil {
			c.log.Warn("history for sizing", "component", name, "signal", sig, "err", err)
			return nil
		}
		out := make([]allocate.Sample, len(pts))
		for i, p := range pts {
			out[i] = allocate.Sample{At: p.T, Value: p.V}
		}
		return out
	}
	h.CPU, h.Memory, h.Disk, h.Rate = read(phoenix.SignalCPU), read(phoenix.SignalMemory), read(phoenix.SignalDisk), read(phoenix.SignalRate)
	return h
}

// budgetView is every secondary instance's lifetime, from the store.
func (c *Controller) budgetView(now time.Time) allocate.BudgetView {
	v := allocate.BudgetView{Now: now, InstanceHoursPerDay: c.cfg.Secondary.Budget.InstanceHoursPerDay}
	allocs, err := c.store.Allocations()
	if err != nil {
		c.log.Warn("budget: read allocations", "err", err)
		return v
	}
	for _, a := range allocs {
		for _, m := range a.Members {
			if !m.ProvisionedAt.IsZero() {
				v.Instances = append(v.Instances, allocate.Interval{Start: m.ProvisionedAt, End: m.ReleasedAt})
			}
		}
	}
	return v
}

// noCapacity reports whether a provision failed for lack of room, which
// another offer may have.
func noCapacity(err error) bool { return errors.Is(err, provider.ErrNoCapacity) }
