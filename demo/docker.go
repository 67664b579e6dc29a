package demo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/provider"
	"github.com/phoenixsre/phoenix/provider/docker"
)

// containerSize is what each demo container gets: three 1-CPU containers
// would not fit on a 2-CPU machine.
var containerSize = phoenix.Resources{MilliCPU: 600, MemoryBytes: 512 << 20}

// dockerEnv runs the shop's primary environment as containers on a
// "primary" network of its own; Phoenix's replicas go to a "secondary"
// network, through the docker provider the daemon builds from its config.
type dockerEnv struct {
	cli       *client.Client
	image     string
	ns        string
	gateway   string // the host's address on the primary network
	primary   *docker.Provider
	secondary string // the secondary network's name
}

// newDockerEnv checks the engine, makes the image from this executable (or
// from the source tree, if it is not static) and the primary network.
func newDockerEnv(ctx context.Context, exe, work string) (*dockerEnv, error) {
	cli, err := docker.NewClient()
	if err != nil {
		return nil, err
	}
	if err := docker.Ping(ctx, cli); err != nil {
		return nil, fmt.Errorf("%w; or run the demo without --provider docker", err)
	}
	bin, err := docker.StaticBinary(ctx, exe, moduleDir(), work)
	if err != nil {
		return nil, err
	}
	img, err := docker.EnsureImage(ctx, cli, bin, "phoenix")
	if err != nil {
		return nil, err
	}
	ns := "phoenix-demo-" + randomToken()[:8]
	e := &dockerEnv{cli: cli, image: img.Ref, ns: ns, secondary: ns + "-secondary"}
	e.primary, err = docker.New(docker.Config{
		Client: cli, Image: img.Ref, Network: ns + "-primary", Namespace: ns + "-p",
		Root: filepath.Join(work, "primary"), Offer: docker.OfferConfig{Size: containerSize},
	})
	if err != nil {
		return nil, err
	}
	if _, err := docker.EnsureNetwork(ctx, cli, e.primary.Network(), nil); err != nil {
		return nil, err
	}
	gw, err := docker.GatewayIP(ctx, cli, e.primary.Network())
	if err != nil {
		e.close()
		return nil, err
	}
	e.gateway = gw.String()
	return e, nil
}

func (e *dockerEnv) host() string { return e.gateway }

func (e *dockerEnv) start(ctx context.Context, name string, args, env []string, stateful bool) (shopService, string, error) {
	cmd := append([]string{docker.ImageExecutable, "shop", name, "--listen", "{addr}"}, args...)
	if stateful {
		cmd = append(cmd, "--data", "{data_dir}")
	}
	envMap := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		envMap[k] = v
	}
	inst, err := e.primary.Provision(ctx, provider.Spec{ID: name, Component: phoenix.ComponentID(name), Command: cmd, Env: envMap})
	if err != nil {
		return nil, "", err
	}
	return &container{env: e, id: name, inst: inst}, inst.DataDir, nil
}

// close removes the run's containers (both environments) and networks.
func (e *dockerEnv) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = e.primary.ReleaseAll(ctx)
	if sec, err := docker.New(docker.Config{Client: e.cli, Image: e.image, Network: e.secondary, Namespace: e.ns + "-s", Root: os.TempDir()}); err == nil {
		_ = sec.ReleaseAll(ctx)
	}
	_ = docker.RemoveNetwork(ctx, e.cli, e.primary.Network())
	_ = docker.RemoveNetwork(ctx, e.cli, e.secondary)
}

// container is one primary service in a container.
type container struct {
	env  *dockerEnv
	id   string
	inst provider.Instance

	mu     sync.Mutex
	diedAt time.Time
}

func (c *container) name() string   { return c.id }
func (c *container) addr() string   { return c.inst.Addr }
func (c *container) detail() string { return "container " + c.env.primary.ContainerName(c.id) }

func (c *container) exited() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.diedAt.IsZero() {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.env.primary.Status(ctx, c.id)
	if (err == nil && st.State == provider.StateExited) || errors.Is(err, provider.ErrNotFound) {
		c.diedAt = time.Now()
		return true
	}
	return false
}

func (c *container) kill(ctx context.Context) error {
	return docker.NewFaults(c.env.cli).Kill(ctx, c.env.primary.ContainerName(c.id))
}

func (c *container) exitTime() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.diedAt
}

func (c *container) exitReason() string {
	if c.exitTime().IsZero() {
		return "running"
	}
	return "container exited"
}

func (c *container) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = c.env.primary.Release(ctx, c.id)
}

// moduleDir finds the Phoenix source tree from the working directory, so a
// dynamically linked phoenix (go run) can build a static one for the image.
func moduleDir() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/phoenixsre/phoenix\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}
