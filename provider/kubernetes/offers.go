package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	podresource "k8s.io/component-helpers/resource"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/provider"
)

// cluster is what capacity is computed from: the schedulable nodes grouped
// into offers, what this provider placed and the scheduler has not bound
// yet, and the namespace's quota room.
type cluster struct {
	groups []*nodeGroup
	// nodesKnown is false when nodes cannot be listed (no cluster-wide
	// RBAC): then only the quota is checked.
	nodesKnown bool
	quota      []quotaRoom
	// unbound are the requests of this provider's Deployments with no Pod
	// bound to a node, by offer ID ("" when not pinned to one); uncreated
	// those with no Pod at all (not yet in the quota's usage).
	unbound   map[string][]phoenix.Resources
	uncreated []phoenix.Resources
}

type nodeGroup struct {
	id, zone, itype string
	nodes           []nodeRoom
}

type nodeRoom struct {
	alloc, used phoenix.Resources
}

// quotaRoom is one ResourceQuota's remaining room, per resource it limits.
type quotaRoom struct {
	name string
	left map[corev1.ResourceName]resource.Quantity
}

// Offers returns one offer per zone and instance type of the schedulable
// nodes, sized Config.Slot, with Free the slots that fit in what the
// nodes have left, capped by the namespace's quota.
func (p *Provider) Offers(ctx context.Context) ([]provider.Offer, error) {
	c, err := p.cluster(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("offers: %w", err)
	}
	if !c.nodesKnown {
		return nil, errors.New("offers: cannot list nodes: give Phoenix's service account list on nodes and pods cluster-wide")
	}
	out := make([]provider.Offer, 0, len(c.groups))
	for _, g := range c.groups {
		free := min(g.slots(p.cfg.Slot, c.unbound[g.id]), c.quotaSlots(p.cfg.Slot))
		out = append(out, provider.Offer{ID: g.id, Provider: Name, Zone: g.zone, Size: p.cfg.Slot,
			PricePerHour: p.price(g), Performance: p.performance(g.itype), Free: max(free, 0)})
	}
	return out, nil
}

// price is the instance's share of its node's price: the larger of its
// CPU and memory shares, as cost-allocation tools count it.
func (p *Provider) price(g *nodeGroup) float64 {
	node, ok := p.cfg.NodePrice[g.itype]
	if !ok {
		node = p.cfg.DefaultNodePrice
	}
	a := g.nodes[0].alloc
	if a.MilliCPU <= 0 || a.MemoryBytes <= 0 {
		return node
	}
	share := max(float64(p.cfg.Slot.MilliCPU)/float64(a.MilliCPU), float64(p.cfg.Slot.MemoryBytes)/float64(a.MemoryBytes))
	return node * min(share, 1)
}

func (p *Provider) performance(itype string) float64 {
	if v, ok := p.cfg.Performance[itype]; ok && v > 0 {
		return v
	}
	return 1
}

// fits refuses, with provider.ErrNoCapacity, a spec the quota or the
// chosen offer (or, with none chosen, every node) cannot hold.
func (p *Provider) fits(ctx context.Context, spec provider.Spec, f found) error {
	except := ""
	if f.dep != nil {
		except = f.dep.Name // being replaced: its room is its own
	}
	c, err := p.cluster(ctx, except)
	if err != nil {
		return err
	}
	req := p.requests(spec.Resources)
	if why := c.quotaRefusal(req, spec.Resources.DiskBytes > 0 && f.claim == nil, spec.Resources.DiskBytes); why != "" {
		return fmt.Errorf("%w: %s", provider.ErrNoCapacity, why)
	}
	if !c.nodesKnown {
		return nil
	}
	if spec.Offer != "" {
		i := slices.IndexFunc(c.groups, func(g *nodeGroup) bool { return g.id == spec.Offer })
		if i < 0 {
			return fmt.Errorf("%w: offer %s: no schedulable node has that zone and instance type now", provider.ErrNoCapacity, spec.Offer)
		}
		if c.groups[i].slots(req, c.unbound[spec.Offer]) < 1 {
			return fmt.Errorf("%w: offer %s has no node with %dm CPU and %d bytes of memory left", provider.ErrNoCapacity, spec.Offer, req.MilliCPU, req.MemoryBytes)
		}
		return nil
	}
	if len(c.groups) == 0 {
		return nil // no nodes yet: an autoscaler may add them; Status reports an unschedulable Pod
	}
	for _, g := range c.groups {
		if g.slots(req, c.unbound[g.id]) > 0 {
			return nil
		}
	}
	return fmt.Errorf("%w: no schedulable node has %dm CPU and %d bytes of memory left", provider.ErrNoCapacity, req.MilliCPU, req.MemoryBytes)
}

// cluster reads nodes, Pods, this provider's Deployments and the quotas.
// except names a Deployment to leave out.
func (p *Provider) cluster(ctx context.Context, except string) (*cluster, error) {
	c := &cluster{unbound: map[string][]phoenix.Resources{}}
	if err := p.readNodes(ctx, c); err != nil {
		return nil, err
	}
	if err := p.readOwn(ctx, c, except); err != nil {
		return nil, err
	}
	quotas, err := p.cli.CoreV1().ResourceQuotas(p.cfg.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list resource quotas: %w", err)
	}
	for _, q := range quotas.Items {
		room := quotaRoom{name: q.Name, left: map[corev1.ResourceName]resource.Quantity{}}
		for name, hard := range q.Status.Hard {
			left := hard.DeepCopy()
			used := q.Status.Used[name]
			left.Sub(used)
			room.left[name] = left
		}
		c.quota = append(c.quota, room)
	}
	return c, nil
}

func (p *Provider) readNodes(ctx context.Context, c *cluster) error {
	nodes, err := p.cli.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if apierrors.IsForbidden(err) {
		p.log.Warn("cannot list nodes: offers are unknown, only the quota is checked", "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	pods, err := p.cli.CoreV1().Pods("").List(ctx, metav1.ListOptions{
		FieldSelector: "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"})
	if err != nil {
		return fmt.Errorf("list pods on nodes: %w", err)
	}
	used := map[string]phoenix.Resources{}
	for i := range pods.Items {
		r := podresource.PodRequests(&pods.Items[i], podresource.PodResourcesOptions{})
		u := used[pods.Items[i].Spec.NodeName]
		u.MilliCPU += r.Cpu().MilliValue()
		u.MemoryBytes += r.Memory().Value()
		used[pods.Items[i].Spec.NodeName] = u
	}
	c.nodesKnown = true
	byID := map[string]*nodeGroup{}
	for _, n := range nodes.Items {
		if !schedulable(n) {
			continue
		}
		zone, itype := n.Labels[LabelZone], n.Labels[LabelInstanceType]
		id := formatOfferID(zone, itype)
		g := byID[id]
		if g == nil {
			g = &nodeGroup{id: id, zone: zone, itype: itype}
			byID[id] = g
			c.groups = append(c.groups, g)
		}
		a := n.Status.Allocatable
		g.nodes = append(g.nodes, nodeRoom{used: used[n.Name],
			alloc: phoenix.Resources{MilliCPU: a.Cpu().MilliValue(), MemoryBytes: a.Memory().Value()}})
	}
	slices.SortFunc(c.groups, func(a, b *nodeGroup) int { return strings.Compare(a.id, b.id) })
	return nil
}

// schedulable is a node a plain Pod can land on: Ready, not cordoned, with
// no NoSchedule or NoExecute taint (replicas tolerate none).
func schedulable(n corev1.Node) bool {
	if n.Spec.Unschedulable {
		return false
	}
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			return false
		}
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// readOwn finds this provider's Deployments whose Pod is not bound yet
// (their room is taken, though no node shows it) or not created yet (the
// quota does not show it either).
func (p *Provider) readOwn(ctx context.Context, c *cluster, except string) error {
	list := metav1.ListOptions{LabelSelector: p.ownerSelector()}
	deps, err := p.cli.AppsV1().Deployments(p.cfg.Namespace).List(ctx, list)
	if err != nil {
		return fmt.Errorf("list deployments: %w", apiErr(err))
	}
	pods, err := p.cli.CoreV1().Pods(p.cfg.Namespace).List(ctx, list)
	if err != nil {
		return fmt.Errorf("list pods: %w", apiErr(err))
	}
	exists, bound := map[string]bool{}, map[string]bool{}
	for _, pod := range pods.Items {
		inc := pod.Labels[LabelIncarnation]
		exists[inc] = true
		if pod.Spec.NodeName != "" {
			bound[inc] = true
		}
	}
	for _, d := range deps.Items {
		if d.DeletionTimestamp != nil || d.Name == except {
			continue
		}
		inc := d.Spec.Template.Labels[LabelIncarnation]
		if !bound[inc] {
			offer := d.Annotations[AnnotationOffer]
			c.unbound[offer] = append(c.unbound[offer], requestsOf(&d))
		}
		if !exists[inc] {
			c.uncreated = append(c.uncreated, requestsOf(&d))
		}
	}
	return nil
}

// slots is how many instances of size fit on the group's nodes, after the
// unbound instances are put first-fit where they fit.
func (g *nodeGroup) slots(size phoenix.Resources, unbound []phoenix.Resources) int {
	free := make([]phoenix.Resources, len(g.nodes))
	for i, n := range g.nodes {
		free[i] = phoenix.Resources{MilliCPU: n.alloc.MilliCPU - n.used.MilliCPU, MemoryBytes: n.alloc.MemoryBytes - n.used.MemoryBytes}
	}
	for _, u := range unbound {
		for i := range free {
			if free[i].MilliCPU >= u.MilliCPU && free[i].MemoryBytes >= u.MemoryBytes {
				free[i].MilliCPU -= u.MilliCPU
				free[i].MemoryBytes -= u.MemoryBytes
				break
			}
		}
	}
	n := 0
	for _, f := range free {
		n += int(max(min(per(f.MilliCPU, size.MilliCPU), per(f.MemoryBytes, size.MemoryBytes)), 0))
	}
	return n
}

// per is how many b fit in a; a b of 0 does not limit.
func per(a, b int64) int64 {
	if b <= 0 {
		return math.MaxInt32
	}
	return a / b
}

// quotaNeeds is what one instance takes of each quota resource.
func quotaNeeds(req phoenix.Resources, newClaim bool, disk int64) map[corev1.ResourceName]int64 {
	need := map[corev1.ResourceName]int64{
		corev1.ResourceRequestsCPU: req.MilliCPU, corev1.ResourceCPU: req.MilliCPU,
		corev1.ResourceRequestsMemory: req.MemoryBytes, corev1.ResourceMemory: req.MemoryBytes,
		corev1.ResourceLimitsMemory: req.MemoryBytes,
		corev1.ResourcePods:         1, "count/pods": 1,
		"count/deployments.apps": 1,
	}
	if newClaim {
		need[corev1.ResourceRequestsStorage] = roundMiB(disk)
		need[corev1.ResourcePersistentVolumeClaims] = 1
	}
	return need
}

// isMilli is whether a quota resource is counted in millicores.
func isMilli(name corev1.ResourceName) bool {
	return name == corev1.ResourceRequestsCPU || name == corev1.ResourceCPU
}

// quotaRefusal says which quota cannot hold one more instance, "" if all
// can. The quota's usage is the controller's last count, so this
// provider's Deployments whose Pod does not exist yet are added to it.
func (c *cluster) quotaRefusal(req phoenix.Resources, newClaim bool, disk int64) string {
	need := quotaNeeds(req, newClaim, disk)
	pending := map[corev1.ResourceName]int64{}
	for _, u := range c.uncreated {
		for name, v := range quotaNeeds(u, false, 0) {
			if name != "count/deployments.apps" {
				pending[name] += v
			}
		}
	}
	for _, q := range c.quota {
		for name, left := range q.left {
			n, ok := need[name]
			if !ok {
				continue
			}
			room := left.Value()
			if isMilli(name) {
				room = left.MilliValue()
			}
			if room-pending[name] < n {
				return fmt.Sprintf("resource quota %s: %s has %d left (after %d for instances being created), %d needed",
					q.name, name, room-pending[name], pending[name], n)
			}
		}
	}
	return ""
}

// quotaSlots is how many instances of size the quotas still allow.
func (c *cluster) quotaSlots(size phoenix.Resources) int {
	slots := int64(math.MaxInt32)
	need := quotaNeeds(size, false, 0)
	pending := map[corev1.ResourceName]int64{}
	for _, u := range c.uncreated {
		for name, v := range quotaNeeds(u, false, 0) {
			pending[name] += v
		}
	}
	for _, q := range c.quota {
		for name, left := range q.left {
			n, ok := need[name]
			if !ok || n <= 0 || name == "count/deployments.apps" {
				continue
			}
			room := left.Value()
			if isMilli(name) {
				room = left.MilliValue()
			}
			slots = min(slots, max(room-pending[name], 0)/n)
		}
	}
	return int(slots)
}

func containsQuota(msg string) bool { return strings.Contains(msg, "exceeded quota") }
