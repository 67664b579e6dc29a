package kubernetes

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/provider"
)

// Name is the provider's name in configs and instance records.
const Name = "kubernetes"

var idPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// Config configures a Provider. Zero fields take the defaults named.
type Config struct {
	// Client talks to the secondary cluster (required); NewClient makes
	// one from a kubeconfig or the Pod's service account.
	Client k8s.Interface
	// Namespace holds every object (required); it must exist.
	Namespace string
	// Owner tells this installation's objects from another's in the same
	// namespace: a label value. Default "phoenix".
	Owner string
	// Image is what replicas run (required); Spec.Command is the
	// container's command, replacing the image's entrypoint.
	Image           string
	ImagePullPolicy corev1.PullPolicy
	// Port is where replicas listen in their Pod and the Service listens:
	// {addr} is 0.0.0.0:Port, {port} is Port. Default 8080.
	Port int32
	// DataPath is where the data volume is mounted: {data_dir}. Default
	// "/data". A spec with DiskBytes gets a claim of that size there, one
	// without an emptyDir.
	DataPath string
	// StorageClass for claims; "" is the cluster's default class.
	StorageClass string
	// ServiceType is ClusterIP (default: Phoenix runs in the cluster, and
	// Addr is the Service's DNS name) or NodePort (Addr is NodeAddress and
	// the node port).
	ServiceType   corev1.ServiceType
	NodeAddress   string
	ClusterDomain string // default "cluster.local"
	// Slot is the size of one instance in Offers, and what a spec that asks
	// for nothing requests. Default 1 CPU and 1 GiB.
	Slot phoenix.Resources
	// NodePrice is the price of a node-hour by instance type; an instance
	// costs its share of its node (the larger of its CPU and memory
	// shares). DefaultNodePrice is for types not listed.
	NodePrice        map[string]float64
	DefaultNodePrice float64
	// Performance by instance type, relative to the reference machine;
	// default 1.
	Performance map[string]float64
	Logger      *slog.Logger
	// Registerer receives the provider's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Provider runs instances as Deployments in a namespace. It keeps no state
// of its own: the API server's objects, by name and labels, are the record,
// so any Provider with the same Namespace and Owner sees the same instances.
type Provider struct {
	cfg     Config
	cli     k8s.Interface
	log     *slog.Logger
	metrics *prometheus.HistogramVec

	locks provider.IDLocks
	// capacity is held from the capacity check to the Deployment's
	// creation, so two Provisions in this process do not both take the
	// last slot.
	capacity sync.Mutex
}

var _ provider.Provider = (*Provider)(nil)

// New returns a Kubernetes provider. It does not contact the API server.
func New(cfg Config) (*Provider, error) {
	if err := cfg.defaults(); err != nil {
		return nil, fmt.Errorf("kubernetes provider: %w", err)
	}
	m := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "phoenix_kubernetes_provision_seconds",
		Help:    "Time a Provision call took (objects created, Pod not yet ready), by result: ok, no_capacity or error.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
	}, []string{"result"})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(m); err != nil {
			return nil, fmt.Errorf("kubernetes provider: register metrics: %w", err)
		}
	}
	return &Provider{cfg: cfg, cli: cfg.Client, log: cfg.Logger, metrics: m}, nil
}

func (c *Config) defaults() error {
	switch {
	case c.Client == nil:
		return errors.New("client is required")
	case c.Image == "":
		return errors.New("image is required: the image replicas run, pullable by the cluster")
	case len(validation.IsDNS1123Label(c.Namespace)) > 0:
		return fmt.Errorf("namespace %q: use the name of an existing namespace", c.Namespace)
	}
	if c.Owner == "" {
		c.Owner = "phoenix"
	}
	if len(validation.IsValidLabelValue(c.Owner)) > 0 {
		return fmt.Errorf("owner %q: use a label value (1-63 letters, digits, '-', '_', '.')", c.Owner)
	}
	if c.Port == 0 {
		c.Port = 8080
	}
	if c.Port < 1 || c.Port > 65535 {
		return fmt.Errorf("port %d: use 1-65535", c.Port)
	}
	if c.DataPath == "" {
		c.DataPath = "/data"
	}
	if !path.IsAbs(c.DataPath) {
		return fmt.Errorf("data path %q must be absolute, e.g. /data", c.DataPath)
	}
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = corev1.PullIfNotPresent
	}
	switch c.ServiceType {
	case "":
		c.ServiceType = corev1.ServiceTypeClusterIP
	case corev1.ServiceTypeClusterIP:
	case corev1.ServiceTypeNodePort:
		if c.NodeAddress == "" {
			return errors.New("service type NodePort needs node_address: a node's address Phoenix can reach")
		}
	default:
		return fmt.Errorf("service type %q: use ClusterIP or NodePort", c.ServiceType)
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = "cluster.local"
	}
	if c.Slot.MilliCPU <= 0 {
		c.Slot.MilliCPU = 1000
	}
	if c.Slot.MemoryBytes <= 0 {
		c.Slot.MemoryBytes = 1 << 30
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

func (p *Provider) observe(start time.Time, err error) {
	result := "ok"
	switch {
	case errors.Is(err, provider.ErrNoCapacity):
		result = "no_capacity"
	case err != nil:
		result = "error"
	}
	p.metrics.WithLabelValues(result).Observe(time.Since(start).Seconds())
}

func checkSpec(spec provider.Spec) error {
	switch {
	case !idPattern.MatchString(spec.ID):
		return fmt.Errorf("provision: instance id %q: use 1-128 letters, digits, '_', '.', '-'", spec.ID)
	case len(spec.Command) == 0:
		return fmt.Errorf("provision %s: no command", spec.ID)
	case spec.Resources.MilliCPU < 0 || spec.Resources.MemoryBytes < 0 || spec.Resources.DiskBytes < 0:
		return fmt.Errorf("provision %s: negative resources %+v", spec.ID, spec.Resources)
	}
	for k := range spec.Env {
		if errs := validation.IsEnvVarName(k); len(errs) > 0 {
			return fmt.Errorf("provision %s: env %q: %s", spec.ID, k, errs[0])
		}
	}
	if spec.Offer != "" {
		if _, _, err := parseOfferID(spec.Offer); err != nil {
			return fmt.Errorf("provision %s: %w", spec.ID, err)
		}
	}
	return nil
}

// Provision creates the instance's objects, or returns the instance that
// already runs under spec.ID. An instance whose Deployment is gone or has
// failed gets a new Deployment, keeping its Service (its address) and its
// claim (its data). A failure part way removes what this call created.
func (p *Provider) Provision(ctx context.Context, spec provider.Spec) (inst provider.Instance, err error) {
	start := time.Now()
	defer func() { p.observe(start, err) }()
	if err := checkSpec(spec); err != nil {
		return provider.Instance{}, fmt.Errorf("%w: %w", err, provider.ErrInvalidSpec)
	}
	defer p.locks.Lock(spec.ID)()
	name := objectName(p.cfg.Owner, spec.ID)
	f, err := p.lookup(ctx, spec.ID)
	if err != nil {
		return provider.Instance{}, fmt.Errorf("provision %s: %w", spec.ID, err)
	}
	if f.dep != nil && f.failure() == "" {
		if f.svc == nil {
			if f.svc, _, err = p.ensureService(ctx, name, spec); err != nil {
				return provider.Instance{}, err
			}
		}
		return p.instance(f), nil
	}
	p.capacity.Lock()
	defer p.capacity.Unlock()
	if err := p.fits(ctx, spec, f); err != nil {
		return provider.Instance{}, fmt.Errorf("provision %s: %w", spec.ID, err)
	}
	if f, err = p.create(ctx, spec, name, f); err != nil {
		return provider.Instance{}, err
	}
	return p.instance(f), nil
}

// create makes what the instance lacks: its claim (if it has disk), its
// Service, and a new Deployment in place of a failed one. On failure it
// deletes what it made; what another process made in a race is adopted.
func (p *Provider) create(ctx context.Context, spec provider.Spec, name string, f found) (_ found, err error) {
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	claim := ""
	if spec.Resources.DiskBytes > 0 || f.claim != nil {
		if f.claim == nil {
			c, made, err := p.createClaim(ctx, name, spec, f.claimGen+1)
			if err != nil {
				return f, err
			}
			f.claim = c
			if made {
				undo = append(undo, func() { p.deleteQuietly(ctx, "claim", c.Name, p.claims().Delete) })
			}
		}
		claim = f.claim.Name
	}
	if f.svc == nil {
		svc, made, err := p.ensureService(ctx, name, spec)
		if err != nil {
			return f, err
		}
		f.svc = svc
		if made {
			undo = append(undo, func() { p.deleteQuietly(ctx, "service", svc.Name, p.services().Delete) })
		}
	}
	if f.dep != nil {
		p.log.Info("replacing failed deployment", "instance", spec.ID, "deployment", f.dep.Name, "why", f.failure())
		if err := p.deleteDeployment(ctx, f.dep); err != nil {
			return f, err
		}
	}
	zone, itype, _ := parseOfferID(spec.Offer) // "" and "" without an offer
	d, err := p.deployments().Create(ctx, p.deployment(name, claim, rand.Text()[:10], spec, zone, itype), metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// Another Phoenix process won the race: adopt its instance.
		undo = nil
		f, err = p.lookup(ctx, spec.ID)
		if err == nil && f.dep == nil {
			err = errors.New("deployment exists and vanished: try again")
		}
		if err != nil {
			return f, fmt.Errorf("provision %s: %w", spec.ID, err)
		}
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("provision %s: create deployment: %w", spec.ID, apiErr(err))
	}
	f.dep, f.pods, f.claimGone = d, nil, ""
	return f, nil
}

func (p *Provider) deployments() objects[*appsv1.Deployment] {
	return p.cli.AppsV1().Deployments(p.cfg.Namespace)
}

// deleter is the part of a typed client Release uses.
type objects[T any] interface {
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
}

func (p *Provider) services() objects[*corev1.Service] {
	return p.cli.CoreV1().Services(p.cfg.Namespace)
}
func (p *Provider) claims() objects[*corev1.PersistentVolumeClaim] {
	return p.cli.CoreV1().PersistentVolumeClaims(p.cfg.Namespace)
}

// ensureService creates the Service, or gets the one a racing process
// made; made says which.
func (p *Provider) ensureService(ctx context.Context, name string, spec provider.Spec) (svc *corev1.Service, made bool, err error) {
	svc, err = p.services().Create(ctx, p.service(name, spec), metav1.CreateOptions{})
	made = err == nil
	if apierrors.IsAlreadyExists(err) {
		svc, err = p.cli.CoreV1().Services(p.cfg.Namespace).Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return nil, false, fmt.Errorf("provision %s: service: %w", spec.ID, apiErr(err))
	}
	return svc, made, nil
}

// createClaim creates the claim of generation gen, or gets the one a
// racing process made; made says which.
func (p *Provider) createClaim(ctx context.Context, name string, spec provider.Spec, gen int) (c *corev1.PersistentVolumeClaim, made bool, err error) {
	c, err = p.claims().Create(ctx, p.claim(name, gen, spec), metav1.CreateOptions{})
	made = err == nil
	if apierrors.IsAlreadyExists(err) {
		c, err = p.cli.CoreV1().PersistentVolumeClaims(p.cfg.Namespace).Get(ctx, claimName(name, gen), metav1.GetOptions{})
		if err == nil && c.DeletionTimestamp != nil {
			err = fmt.Errorf("claim %s is still terminating: try again", c.Name)
		}
	}
	if err != nil {
		return nil, false, fmt.Errorf("provision %s: claim: %w", spec.ID, apiErr(err))
	}
	return c, made, nil
}

func (p *Provider) deleteDeployment(ctx context.Context, d *appsv1.Deployment) error {
	bg := metav1.DeletePropagationBackground
	err := p.deployments().Delete(ctx, d.Name, metav1.DeleteOptions{PropagationPolicy: &bg,
		Preconditions: &metav1.Preconditions{UID: &d.UID}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete deployment %s: %w", d.Name, apiErr(err))
	}
	return nil
}

func (p *Provider) deleteQuietly(ctx context.Context, what, name string, del func(context.Context, string, metav1.DeleteOptions) error) {
	bg := metav1.DeletePropagationBackground
	if err := del(context.WithoutCancel(ctx), name, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil && !apierrors.IsNotFound(err) {
		p.log.Warn("rolling back a partial provision", "object", what, "name", name, "err", err)
	}
}

// Status reports the instance; provider.ErrNotFound if none of its objects
// exist (or all are being deleted).
func (p *Provider) Status(ctx context.Context, id string) (provider.Instance, error) {
	if !idPattern.MatchString(id) {
		return provider.Instance{}, fmt.Errorf("status %q: %w", id, provider.ErrNotFound)
	}
	f, err := p.lookup(ctx, id)
	if err != nil {
		return provider.Instance{}, fmt.Errorf("status %s: %w", id, err)
	}
	if f.dep == nil && f.svc == nil && f.claim == nil {
		return provider.Instance{}, fmt.Errorf("status %s: %w", id, provider.ErrNotFound)
	}
	return p.instance(f), nil
}

// Release deletes the instance's objects. Deleting what is already gone is
// not an error. A claim may stay Terminating until its Pod has gone.
func (p *Provider) Release(ctx context.Context, id string) error {
	if !idPattern.MatchString(id) {
		return nil
	}
	defer p.locks.Lock(id)()
	return p.deleteAll(ctx, p.selector(objectName(p.cfg.Owner, id)))
}

// ReleaseAll deletes every object of this owner in the namespace: the
// clean slate after a test or a decommission.
func (p *Provider) ReleaseAll(ctx context.Context) error {
	return p.deleteAll(ctx, p.ownerSelector())
}

func (p *Provider) deleteAll(ctx context.Context, sel string) error {
	bg := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &bg}
	list := metav1.ListOptions{LabelSelector: sel}
	ns := p.cfg.Namespace
	deps, err := p.cli.AppsV1().Deployments(ns).List(ctx, list)
	if err != nil {
		return fmt.Errorf("release: list deployments: %w", apiErr(err))
	}
	svcs, err := p.cli.CoreV1().Services(ns).List(ctx, list)
	if err != nil {
		return fmt.Errorf("release: list services: %w", apiErr(err))
	}
	pvcs, err := p.cli.CoreV1().PersistentVolumeClaims(ns).List(ctx, list)
	if err != nil {
		return fmt.Errorf("release: list claims: %w", apiErr(err))
	}
	var errs []error
	del := func(kind, name string, fn func(context.Context, string, metav1.DeleteOptions) error) {
		if err := fn(ctx, name, opts); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("release: delete %s %s: %w", kind, name, apiErr(err)))
		}
	}
	// The workload first, so nothing serves from a volume being removed.
	for _, d := range deps.Items {
		del("deployment", d.Name, p.deployments().Delete)
	}
	for _, s := range svcs.Items {
		del("service", s.Name, p.services().Delete)
	}
	for _, c := range pvcs.Items {
		if c.DeletionTimestamp == nil {
			del("claim", c.Name, p.claims().Delete)
		}
	}
	return errors.Join(errs...)
}

// List returns every instance of this owner in the namespace, running or
// not: what a restarted daemon compares with its records to find leaks.
func (p *Provider) List(ctx context.Context) ([]provider.Instance, error) {
	list := metav1.ListOptions{LabelSelector: p.ownerSelector()}
	ids := map[string]bool{}
	deps, err := p.cli.AppsV1().Deployments(p.cfg.Namespace).List(ctx, list)
	if err != nil {
		return nil, fmt.Errorf("list: %w", apiErr(err))
	}
	svcs, err := p.cli.CoreV1().Services(p.cfg.Namespace).List(ctx, list)
	if err != nil {
		return nil, fmt.Errorf("list: %w", apiErr(err))
	}
	var order []string
	note := func(m metav1.ObjectMeta) {
		if id := m.Annotations[AnnotationID]; id != "" && !ids[id] && m.DeletionTimestamp == nil {
			ids[id] = true
			order = append(order, id)
		}
	}
	for _, d := range deps.Items {
		note(d.ObjectMeta)
	}
	for _, s := range svcs.Items {
		note(s.ObjectMeta)
	}
	out := make([]provider.Instance, 0, len(order))
	for _, id := range order {
		inst, err := p.Status(ctx, id)
		if errors.Is(err, provider.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, inst)
	}
	return out, nil
}

// instance renders what was found. Detail names the Deployment and its UID,
// so a replaced Deployment shows as a new instance.
func (p *Provider) instance(f found) provider.Instance {
	inst := provider.Instance{ID: f.id, Component: phoenix.ComponentID(f.component()), Provider: Name,
		DataDir: p.cfg.DataPath, State: provider.StateRunning}
	if f.svc != nil {
		inst.Addr = p.addr(f.svc)
	}
	if f.dep == nil {
		inst.State, inst.Detail = provider.StateExited, "deployment gone: "+f.failure()
		return inst
	}
	inst.Started = f.dep.CreationTimestamp.Time
	inst.Detail = fmt.Sprintf("deployment %s/%s uid %s", f.dep.Namespace, f.dep.Name, short(string(f.dep.UID)))
	if why := f.failure(); why != "" {
		inst.State, inst.Detail = provider.StateExited, inst.Detail+": "+why
	}
	return inst
}

func (p *Provider) addr(svc *corev1.Service) string {
	if p.cfg.ServiceType == corev1.ServiceTypeNodePort {
		for _, port := range svc.Spec.Ports {
			if port.NodePort != 0 {
				return net.JoinHostPort(p.cfg.NodeAddress, strconv.Itoa(int(port.NodePort)))
			}
		}
	}
	host := svc.Name + "." + svc.Namespace + ".svc." + p.cfg.ClusterDomain
	return net.JoinHostPort(host, strconv.Itoa(int(p.cfg.Port)))
}

func short(uid string) string {
	if len(uid) > 8 {
		return uid[:8]
	}
	return uid
}

// apiErr turns the API server's refusals into the provider's vocabulary:
// a quota refusal is provider.ErrNoCapacity (the next offer may fit).
func apiErr(err error) error {
	if apierrors.IsForbidden(err) && containsQuota(err.Error()) {
		return fmt.Errorf("%w: %w", provider.ErrNoCapacity, err)
	}
	return err
}
