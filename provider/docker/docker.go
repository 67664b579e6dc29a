package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/provider"
)

// Name is the provider's name in configs and instance records.
const Name = "docker"

// Labels Phoenix puts on its containers and networks. The namespace and
// instance labels are how a restarted daemon finds what it started.
const (
	LabelNamespace = "io.phoenixsre.phoenix.namespace"
	LabelInstance  = "io.phoenixsre.phoenix.instance"
	LabelComponent = "io.phoenixsre.phoenix.component"
	LabelMilliCPU  = "io.phoenixsre.phoenix.milli-cpu"
	LabelMemory    = "io.phoenixsre.phoenix.memory-bytes"
)

var (
	idPattern        = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)
	namespacePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
)

// initProcess is a variable because HostConfig.Init is a *bool.
var initProcess = true

// minMemory is the smallest memory limit the engine accepts (6 MiB).
const minMemory = 6 << 20

// Config configures a Provider. Zero fields take the defaults named.
type Config struct {
	// Client talks to the engine; nil makes one from the environment
	// (DOCKER_HOST, DOCKER_CERT_PATH...), negotiating the API version.
	Client *client.Client
	// Image is the image instances run (required), e.g. the Ref from
	// EnsureImage. Spec.Command replaces its entrypoint.
	Image string
	// Network is the Docker network instances join, created (bridge) if
	// missing. Default "phoenix-secondary".
	Network string
	// Namespace names this provider's containers (NAMESPACE-ID) and labels
	// them, so two installations sharing an engine never touch each
	// other's instances. Default "phoenix".
	Namespace string
	// Root is the host directory under which each instance gets ROOT/ID/data,
	// bind-mounted at DataPath. Required.
	Root string
	// Port is the port instances listen on inside their container: {addr}
	// is 0.0.0.0:Port and {port} is Port. Default 8080.
	Port int
	// DataPath is where the data directory appears inside the container:
	// {data_dir} is DataPath. Default "/data".
	DataPath string
	// User runs the instance, "uid:gid". Default: this process's uid and
	// gid, so that the controller and the instance can both read and write
	// the data directory.
	User string
	// StopTimeout is how long Release waits after SIGTERM before SIGKILL;
	// default 5s.
	StopTimeout time.Duration
	// Offer describes what the engine sells.
	Offer  OfferConfig
	Logger *slog.Logger
	// Now is the clock (provision timings, the age of a container left
	// created but not started); default time.Now.
	Now func() time.Time
	// Registerer receives the provider's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// OfferConfig is the one offer a Docker engine makes.
type OfferConfig struct {
	// ID names the offer; default "docker".
	ID string
	// Zone is where the engine runs; default "local".
	Zone         string
	PricePerHour float64
	// Performance is relative to the reference machine; default 1.
	Performance float64
	// Size is what an instance whose spec asks for nothing gets (its
	// limits); default 1 CPU and 512 MiB.
	Size phoenix.Resources
	// Capacity caps what this provider's running instances may use
	// together. A zero field means the engine's CPUs or memory. Provision
	// refuses with provider.ErrNoCapacity beyond it.
	Capacity phoenix.Resources
}

// Provider runs instances as Docker containers. It keeps no state of its
// own: the engine's containers, by name and labels, are the record, so any
// Provider value with the same Namespace sees the same instances.
type Provider struct {
	cfg     Config
	cli     *client.Client
	log     *slog.Logger
	metrics *metrics

	locks    provider.IDLocks
	capacity sync.Mutex // held from the capacity check to the container's creation
	mu       sync.Mutex // guards netID and engine
	netID    string     // the network's ID once ensured; under mu
	engine   engineSize // the engine's CPUs and memory, cached; under mu
}

var _ provider.Provider = (*Provider)(nil)

// New returns a Docker provider. It does not contact the engine: the
// first call that needs it does, so that a daemon starts even while the
// engine is down.
func New(cfg Config) (*Provider, error) {
	if cfg.Image == "" {
		return nil, errors.New("docker provider: image is required (build one with docker.EnsureImage)")
	}
	if cfg.Root == "" {
		return nil, errors.New("docker provider: root directory is required")
	}
	if cfg.Network == "" {
		cfg.Network = "phoenix-secondary"
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "phoenix"
	}
	if !namespacePattern.MatchString(cfg.Namespace) {
		return nil, fmt.Errorf("docker provider: namespace %q: use 1-63 lower-case letters, digits, '_', '.', '-'", cfg.Namespace)
	}
	if cfg.Port == 0 {
		cfg.Port = 8080
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return nil, fmt.Errorf("docker provider: port %d: use 1-65535", cfg.Port)
	}
	if cfg.DataPath == "" {
		cfg.DataPath = "/data"
	}
	if !filepath.IsAbs(cfg.DataPath) {
		return nil, fmt.Errorf("docker provider: data path %q must be absolute, e.g. /data", cfg.DataPath)
	}
	if cfg.User == "" {
		cfg.User = fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 5 * time.Second
	}
	if err := cfg.Offer.defaults(); err != nil {
		return nil, fmt.Errorf("docker provider: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("docker provider: %w", err)
	}
	cfg.Root = root
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("docker provider: create root: %w", err)
	}
	if cfg.Client == nil {
		if cfg.Client, err = NewClient(); err != nil {
			return nil, fmt.Errorf("docker provider: %w", err)
		}
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("docker provider: %w", err)
	}
	return &Provider{cfg: cfg, cli: cfg.Client, log: cfg.Logger, metrics: m}, nil
}

func (o *OfferConfig) defaults() error {
	if o.ID == "" {
		o.ID = "docker"
	}
	if o.Zone == "" {
		o.Zone = "local"
	}
	if o.Performance == 0 {
		o.Performance = 1
	}
	if o.Size.MilliCPU == 0 {
		o.Size.MilliCPU = 1000
	}
	if o.Size.MemoryBytes == 0 {
		o.Size.MemoryBytes = 512 << 20
	}
	switch {
	case o.PricePerHour < 0 || o.Performance < 0:
		return fmt.Errorf("offer %s: price and performance must not be negative", o.ID)
	case o.Size.MilliCPU < 10 || o.Size.MemoryBytes < minMemory:
		return fmt.Errorf("offer %s: size must be at least 10 milli-CPU and 6 MiB", o.ID)
	case o.Capacity.MilliCPU < 0 || o.Capacity.MemoryBytes < 0:
		return fmt.Errorf("offer %s: capacity must not be negative", o.ID)
	}
	return nil
}

// NewClient connects to the engine named by the environment (DOCKER_HOST,
// default the local socket); the API version is negotiated on first use.
func NewClient() (*client.Client, error) {
	c, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return c, nil
}

// Ping checks that the engine answers, with an error that says what to do
// when it does not.
func Ping(ctx context.Context, cli *client.Client) error {
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return fmt.Errorf("no Docker engine at %s (%w): start it (systemctl start docker), or set DOCKER_HOST to where one runs", cli.DaemonHost(), err)
	}
	return nil
}

// ContainerName is the name of the container behind an instance ID.
func (p *Provider) ContainerName(id string) string { return p.cfg.Namespace + "-" + id }

// Network is the name of the network instances join.
func (p *Provider) Network() string { return p.cfg.Network }

func (p *Provider) dataDir(id string) string { return filepath.Join(p.cfg.Root, id, "data") }

// Provision starts the instance's container, or returns the one already
// running under spec.ID. A container of that ID that has exited is removed
// and replaced; its data directory is kept.
func (p *Provider) Provision(ctx context.Context, spec provider.Spec) (inst provider.Instance, err error) {
	if err := p.checkSpec(spec); err != nil {
		return provider.Instance{}, fmt.Errorf("%w: %w", err, provider.ErrInvalidSpec)
	}
	defer p.locks.Lock(spec.ID)()
	start := p.cfg.Now()
	defer func() { p.metrics.observe(p.cfg.Now().Sub(start), err) }()

	for attempt := 1; ; attempt++ {
		got, err := p.settled(ctx, p.ContainerName(spec.ID))
		switch {
		case err == nil:
			if err := p.owned(got, spec.ID); err != nil {
				return provider.Instance{}, fmt.Errorf("provision %s: %w", spec.ID, err)
			}
			if alive(got.State) {
				p.log.Info("instance already running, adopted", "id", spec.ID, "container", short(got.ID))
				return p.instance(got), nil
			}
			// It crashed or was stopped: replace it, keeping its data.
			if err := p.remove(ctx, got.ID); err != nil {
				return provider.Instance{}, fmt.Errorf("provision %s: remove dead container: %w", spec.ID, err)
			}
		case cerrdefs.IsNotFound(err):
		default:
			return provider.Instance{}, fmt.Errorf("provision %s: %w", spec.ID, engineErr(err))
		}
		inst, err := p.create(ctx, spec)
		if cerrdefs.IsConflict(err) && attempt < 20 {
			// Another Provider value created it between our inspect and
			// create: adopt theirs. The engine reserves the name a moment
			// before the container can be inspected, hence the pause.
			select {
			case <-ctx.Done():
				return provider.Instance{}, fmt.Errorf("provision %s: %w", spec.ID, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		if cerrdefs.IsConflict(err) {
			return provider.Instance{}, fmt.Errorf("provision %s: the name %s keeps being taken: %w", spec.ID, p.ContainerName(spec.ID), err)
		}
		return inst, err
	}
}

// createGrace is how long a container may stay created but not started
// before it is taken for the leftover of a provisioner that died between
// the two steps, rather than one another provisioner is about to start.
const createGrace = 10 * time.Second

// settled inspects a container, waiting while it is created but not yet
// started by a concurrent provisioner.
func (p *Provider) settled(ctx context.Context, name string) (container.InspectResponse, error) {
	for {
		got, err := p.cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
		if err != nil {
			return container.InspectResponse{}, err
		}
		c := got.Container
		created, _ := time.Parse(time.RFC3339Nano, c.Created)
		if c.State == nil || c.State.Status != container.StateCreated || p.cfg.Now().Sub(created) > createGrace {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return container.InspectResponse{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *Provider) checkSpec(spec provider.Spec) error {
	if !idPattern.MatchString(spec.ID) {
		return fmt.Errorf("provision: instance id %q: use 1-128 letters, digits, '_', '.', '-'", spec.ID)
	}
	if len(spec.Command) == 0 || spec.Command[0] == "" {
		return fmt.Errorf("provision %s: empty command", spec.ID)
	}
	r := spec.Resources
	if r.MilliCPU < 0 || r.MemoryBytes < 0 || r.DiskBytes < 0 {
		return fmt.Errorf("provision %s: negative resources %+v", spec.ID, r)
	}
	if r.MemoryBytes > 0 && r.MemoryBytes < minMemory {
		return fmt.Errorf("provision %s: memory %d bytes is below the engine's 6 MiB minimum", spec.ID, r.MemoryBytes)
	}
	if r.MilliCPU > 0 && r.MilliCPU < 10 {
		return fmt.Errorf("provision %s: %d milli-CPU is below the engine's 10 minimum", spec.ID, r.MilliCPU)
	}
	if spec.Offer != "" && spec.Offer != p.cfg.Offer.ID {
		return fmt.Errorf("provision %s: offer %q is not this provider's (%s)", spec.ID, spec.Offer, p.cfg.Offer.ID)
	}
	return nil
}

// size is what the spec gets: what it asks for, or the offer's size.
func (p *Provider) size(r phoenix.Resources) phoenix.Resources {
	if r.MilliCPU == 0 {
		r.MilliCPU = p.cfg.Offer.Size.MilliCPU
	}
	if r.MemoryBytes == 0 {
		r.MemoryBytes = p.cfg.Offer.Size.MemoryBytes
	}
	return r
}

// create makes and starts the instance's container. A network removed
// behind the provider's back (the engine says so at create or at start) is
// made again, once.
func (p *Provider) create(ctx context.Context, spec provider.Spec) (provider.Instance, error) {
	res := p.size(spec.Resources)
	dataDir := p.dataDir(spec.ID)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return provider.Instance{}, fmt.Errorf("provision %s: %w", spec.ID, err)
	}
	for retry := true; ; retry = false {
		id, err := p.createOnce(ctx, spec, res, dataDir)
		if networkGone(err) && retry {
			p.forgetNetwork()
			continue
		}
		if networkGone(err) {
			return provider.Instance{}, fmt.Errorf("provision %s: network %s keeps vanishing: %w", spec.ID, p.cfg.Network, err)
		}
		if err != nil {
			return provider.Instance{}, err
		}
		got, err := p.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			return provider.Instance{}, fmt.Errorf("provision %s: inspect started container: %w", spec.ID, engineErr(err))
		}
		inst := p.instance(got.Container)
		p.log.Info("instance started", "id", spec.ID, "container", short(id), "addr", inst.Addr,
			"milli_cpu", res.MilliCPU, "memory_bytes", res.MemoryBytes)
		return inst, nil
	}
}

// networkGone is true for the engine's "network ... not found".
func networkGone(err error) bool {
	return cerrdefs.IsNotFound(err) && strings.Contains(err.Error(), "network")
}

func (p *Provider) createOnce(ctx context.Context, spec provider.Spec, res phoenix.Resources, dataDir string) (string, error) {
	netID, err := p.network(ctx)
	if err != nil {
		return "", fmt.Errorf("provision %s: %w", spec.ID, err)
	}
	// The capacity check and the creation are one step, so that two
	// concurrent provisions cannot both take the last room.
	p.capacity.Lock()
	if err := p.fits(ctx, spec.ID, res); err != nil {
		p.capacity.Unlock()
		return "", fmt.Errorf("provision %s: %w", spec.ID, err)
	}
	created, err := p.cli.ContainerCreate(ctx, p.containerOptions(spec, res, netID, dataDir))
	p.capacity.Unlock()
	switch {
	case err == nil:
	case cerrdefs.IsConflict(err), networkGone(err):
		return "", err // the caller adopts the other one, or makes the network again
	case cerrdefs.IsNotFound(err):
		return "", fmt.Errorf("provision %s: image %s is not in the engine; build it with docker.EnsureImage: %w", spec.ID, p.cfg.Image, err)
	default:
		return "", fmt.Errorf("provision %s: create container: %w", spec.ID, engineErr(err))
	}
	if _, err := p.cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		_ = p.remove(context.WithoutCancel(ctx), created.ID)
		if networkGone(err) {
			return "", err
		}
		return "", fmt.Errorf("provision %s: start container: %w", spec.ID, engineErr(err))
	}
	return created.ID, nil
}

// containerOptions is the container an instance runs in: the spec's
// command with its placeholders filled, its limits, its labels, the data
// directory bind-mounted, on the network.
func (p *Provider) containerOptions(spec provider.Spec, res phoenix.Resources, netID, dataDir string) client.ContainerCreateOptions {
	port := strconv.Itoa(p.cfg.Port)
	fill := strings.NewReplacer("{addr}", "0.0.0.0:"+port, "{port}", port, "{data_dir}", p.cfg.DataPath).Replace
	argv := make([]string, len(spec.Command))
	for i, a := range spec.Command {
		argv[i] = fill(a)
	}
	env := make([]string, 0, len(spec.Env))
	for k, v := range spec.Env {
		env = append(env, k+"="+fill(v))
	}
	return client.ContainerCreateOptions{
		Name: p.ContainerName(spec.ID),
		Config: &container.Config{
			Image:      p.cfg.Image,
			Entrypoint: argv[:1],
			Cmd:        argv[1:],
			Env:        env,
			Labels: map[string]string{
				LabelNamespace: p.cfg.Namespace,
				LabelInstance:  spec.ID,
				LabelComponent: string(spec.Component),
				LabelMilliCPU:  strconv.FormatInt(res.MilliCPU, 10),
				LabelMemory:    strconv.FormatInt(res.MemoryBytes, 10),
			},
			User:       p.cfg.User,
			WorkingDir: p.cfg.DataPath,
		},
		HostConfig: &container.HostConfig{
			NetworkMode:   container.NetworkMode(netID),
			RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
			// The engine's init as PID 1 forwards SIGTERM (a program that
			// is PID 1 ignores it unless it handles it) and reaps zombies.
			Init:      &initProcess,
			Mounts:    []mount.Mount{{Type: mount.TypeBind, Source: dataDir, Target: p.cfg.DataPath}},
			Resources: container.Resources{NanoCPUs: res.MilliCPU * 1_000_000, Memory: res.MemoryBytes},
		},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			netID: {Aliases: aliases(spec)},
		}},
	}
}

// aliases are the instance's DNS names on the network: its ID and, for
// peers that call it by role, its component.
func aliases(spec provider.Spec) []string {
	a := []string{spec.ID}
	if c := string(spec.Component); c != "" && c != spec.ID && idPattern.MatchString(c) {
		a = append(a, c)
	}
	return a
}

// Status reports the instance's container.
func (p *Provider) Status(ctx context.Context, id string) (provider.Instance, error) {
	if !idPattern.MatchString(id) {
		return provider.Instance{}, fmt.Errorf("status %q: %w", id, provider.ErrNotFound)
	}
	got, err := p.cli.ContainerInspect(ctx, p.ContainerName(id), client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return provider.Instance{}, fmt.Errorf("status %s: %w", id, provider.ErrNotFound)
	}
	if err != nil {
		return provider.Instance{}, fmt.Errorf("status %s: %w", id, engineErr(err))
	}
	if err := p.owned(got.Container, id); err != nil {
		return provider.Instance{}, fmt.Errorf("status %s: %w", id, err)
	}
	return p.instance(got.Container), nil
}

// Release stops the instance's container (SIGTERM, then SIGKILL after
// StopTimeout), removes it, and removes its data directory.
func (p *Provider) Release(ctx context.Context, id string) error {
	if !idPattern.MatchString(id) {
		return nil
	}
	defer p.locks.Lock(id)()
	got, err := p.cli.ContainerInspect(ctx, p.ContainerName(id), client.ContainerInspectOptions{})
	switch {
	case err == nil:
		if err := p.owned(got.Container, id); err != nil {
			return fmt.Errorf("release %s: %w", id, err)
		}
		timeout := int(p.cfg.StopTimeout.Round(time.Second) / time.Second)
		if alive(got.Container.State) {
			if _, err := p.cli.ContainerStop(ctx, got.Container.ID, client.ContainerStopOptions{Timeout: &timeout}); err != nil && !cerrdefs.IsNotFound(err) {
				p.log.Warn("graceful stop failed; removing by force", "id", id, "err", err)
			}
		}
		if err := p.remove(ctx, got.Container.ID); err != nil {
			return fmt.Errorf("release %s: %w", id, err)
		}
	case cerrdefs.IsNotFound(err):
	default:
		return fmt.Errorf("release %s: %w", id, engineErr(err))
	}
	if err := os.RemoveAll(filepath.Join(p.cfg.Root, id)); err != nil {
		return fmt.Errorf("release %s: %w", id, err)
	}
	p.log.Info("instance released", "id", id)
	return nil
}

// remove deletes a container by force; one already gone is not an error.
func (p *Provider) remove(ctx context.Context, containerID string) error {
	_, err := p.cli.ContainerRemove(ctx, containerID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return engineErr(err)
	}
	return nil
}

// List returns every instance of this provider's namespace, running or not:
// what a restarted daemon compares with its allocations to release orphans.
func (p *Provider) List(ctx context.Context) ([]provider.Instance, error) {
	res, err := p.cli.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", LabelNamespace+"="+p.cfg.Namespace)})
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", engineErr(err))
	}
	var out []provider.Instance
	for _, c := range res.Items {
		id := c.Labels[LabelInstance]
		if id == "" {
			continue
		}
		inst, err := p.Status(ctx, id)
		if errors.Is(err, provider.ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, inst)
	}
	return out, nil
}

// ReleaseAll releases every instance of this provider's namespace.
func (p *Provider) ReleaseAll(ctx context.Context) error {
	insts, err := p.List(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, in := range insts {
		errs = append(errs, p.Release(ctx, in.ID))
	}
	return errors.Join(errs...)
}

// owned checks that a container found by name is this provider's.
func (p *Provider) owned(c container.InspectResponse, id string) error {
	if c.Config == nil || c.Config.Labels[LabelNamespace] != p.cfg.Namespace || c.Config.Labels[LabelInstance] != id {
		return fmt.Errorf("container %s exists but Phoenix did not start it (labels %s=%s, %s=%s expected): remove it or choose another namespace",
			p.ContainerName(id), LabelNamespace, p.cfg.Namespace, LabelInstance, id)
	}
	return nil
}

// alive is true for a container that runs, even paused or restarting: it
// exists and holds its resources, and the caller's health check tells
// whether it answers.
func alive(s *container.State) bool {
	return s != nil && (s.Running || s.Paused || s.Restarting)
}

func (p *Provider) instance(c container.InspectResponse) provider.Instance {
	inst := provider.Instance{
		Provider: Name,
		DataDir:  p.dataDir(c.Config.Labels[LabelInstance]),
		ID:       c.Config.Labels[LabelInstance],
		State:    provider.StateExited,
		Detail:   "container " + short(c.ID),
	}
	inst.Component = phoenix.ComponentID(c.Config.Labels[LabelComponent])
	if alive(c.State) {
		inst.State = provider.StateRunning
	}
	if c.State != nil {
		inst.Started, _ = time.Parse(time.RFC3339Nano, c.State.StartedAt)
		switch {
		case c.State.Paused:
			inst.Detail += " (paused)"
		case c.State.OOMKilled:
			inst.Detail += " (OOM-killed)"
		case !alive(c.State):
			inst.Detail += fmt.Sprintf(" (exited %d)", c.State.ExitCode)
		}
	}
	if c.NetworkSettings != nil {
		if ep := c.NetworkSettings.Networks[p.cfg.Network]; ep != nil && ep.IPAddress.IsValid() {
			inst.Addr = net.JoinHostPort(ep.IPAddress.String(), strconv.Itoa(p.cfg.Port))
		}
		if inst.Addr == "" && inst.State == provider.StateRunning {
			inst.Detail += " (not on network " + p.cfg.Network + ")"
		}
	}
	return inst
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// engineErr adds what to do when the engine cannot be reached.
func engineErr(err error) error {
	if client.IsErrConnectionFailed(err) {
		return fmt.Errorf("%w (is Docker running? set DOCKER_HOST if it is not on the local socket)", err)
	}
	return err
}
