package docker_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/provider"
	"github.com/phoenixsre/phoenix/provider/docker"
	"github.com/phoenixsre/phoenix/provider/providertest"
)

func TestConformance(t *testing.T) {
	cli, img := engine(t)
	ns, network := namespace(t, cli)
	root := t.TempDir()
	faults := docker.NewFaults(cli)
	providertest.Run(t, providertest.Harness{
		New:              func(t *testing.T) provider.Provider { return newProvider(t, cli, img, ns, network, root) },
		Command:          serverCommand,
		SharedDataDir:    true,
		EnforcesCapacity: true,
		Kill: func(t *testing.T, inst provider.Instance) {
			p := newProvider(t, cli, img, ns, network, root)
			if err := faults.Kill(t.Context(), p.ContainerName(inst.ID)); err != nil {
				t.Fatal(err)
			}
		},
	})
}

func get(t *testing.T, url string) (int, string, error) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitFor polls cond every 25ms for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s", what, d)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func healthy(t *testing.T, inst provider.Instance) bool {
	code, _, err := get(t, "http://"+inst.Addr+"/healthz")
	return err == nil && code == http.StatusOK
}

// TestContainerCarriesSpec: the container gets the spec's limits, its
// labels, the network, no restart policy, runs as our user, and sees the
// placeholders filled in its command and environment.
func TestContainerCarriesSpec(t *testing.T) {
	cli, img := engine(t)
	ns, network := namespace(t, cli)
	p := newProvider(t, cli, img, ns, network, t.TempDir())
	inst, err := p.Provision(t.Context(), provider.Spec{
		ID: "orders-1", Component: "orders", Command: serverCommand,
		Env:       map[string]string{"SELF": "{addr}", "DATA": "{data_dir}", "PORT": "{port}"},
		Resources: phoenix.Resources{MilliCPU: 250, MemoryBytes: 100 << 20},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "instance healthy", func() bool { return healthy(t, inst) })
	for name, want := range map[string]string{"SELF": "0.0.0.0:8080", "DATA": "/data", "PORT": "8080"} {
		if _, got, err := get(t, "http://"+inst.Addr+"/env/"+name); err != nil || got != want {
			t.Errorf("env %s = %q (%v), want %q", name, got, err, want)
		}
	}
	got, err := cli.ContainerInspect(t.Context(), p.ContainerName("orders-1"), client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := got.Container
	if c.HostConfig.NanoCPUs != 250_000_000 || c.HostConfig.Memory != 100<<20 {
		t.Errorf("limits: %d nano-CPU, %d bytes; want 250000000 and %d", c.HostConfig.NanoCPUs, c.HostConfig.Memory, 100<<20)
	}
	if c.HostConfig.RestartPolicy.Name != container.RestartPolicyDisabled {
		t.Errorf("restart policy %q: Phoenix, not the engine, decides restarts", c.HostConfig.RestartPolicy.Name)
	}
	for k, want := range map[string]string{docker.LabelNamespace: ns, docker.LabelInstance: "orders-1", docker.LabelComponent: "orders", docker.LabelMilliCPU: "250"} {
		if c.Config.Labels[k] != want {
			t.Errorf("label %s = %q, want %q", k, c.Config.Labels[k], want)
		}
	}
	if _, ok := c.NetworkSettings.Networks[network]; !ok || len(c.NetworkSettings.Networks) != 1 {
		t.Errorf("networks %v, want only %s", c.NetworkSettings.Networks, network)
	}
	if ep := c.NetworkSettings.Networks[network]; ep == nil || !strings.HasPrefix(inst.Addr, ep.IPAddress.String()+":") {
		t.Errorf("Addr %s is not the container's IP on %s", inst.Addr, network)
	}
	if inst.Component != "orders" || inst.Provider != docker.Name || inst.Started.IsZero() {
		t.Errorf("instance %+v", inst)
	}
}

// TestTwoProvidersRaceToOneContainer: two Provider values (two daemons
// after a failover, say) provisioning one ID at once make one container.
func TestTwoProvidersRaceToOneContainer(t *testing.T) {
	cli, img := engine(t)
	ns, network := namespace(t, cli)
	root := t.TempDir()
	spec := provider.Spec{ID: "race", Command: serverCommand}
	var wg sync.WaitGroup
	insts := make([]provider.Instance, 4)
	errs := make([]error, 4)
	for i := range insts {
		p := newProvider(t, cli, img, ns, network, root)
		wg.Go(func() { insts[i], errs[i] = p.Provision(t.Context(), spec) })
	}
	wg.Wait()
	for i := range insts {
		if errs[i] != nil {
			t.Fatalf("provider %d: %v", i, errs[i])
		}
		if insts[i].Detail != insts[0].Detail {
			t.Fatalf("two containers for one ID: %s and %s", insts[0].Detail, insts[i].Detail)
		}
	}
	list, err := newProvider(t, cli, img, ns, network, root).List(t.Context())
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %+v, %v; want the one instance", list, err)
	}
}

// TestEnsureNetworkConverges: concurrent creators of one network end with
// one network of that name, and all use it.
func TestEnsureNetworkConverges(t *testing.T) {
	cli, _ := engine(t)
	_, network := namespace(t, cli)
	var wg sync.WaitGroup
	ids := make([]string, 6)
	errs := make([]error, 6)
	for i := range ids {
		wg.Go(func() { ids[i], errs[i] = docker.EnsureNetwork(t.Context(), cli, network, nil) })
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("creators disagree on the network: %s and %s", ids[0], ids[i])
		}
	}
	res, err := cli.NetworkList(t.Context(), client.NetworkListOptions{Filters: make(client.Filters).Add("name", network)})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, nw := range res.Items {
		if nw.Name == network {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d networks named %s, want 1", n, network)
	}
	if gw, err := docker.GatewayIP(t.Context(), cli, network); err != nil || !gw.Is4() {
		t.Fatalf("GatewayIP = %v, %v", gw, err)
	}
}

// TestForeignContainerIsLeftAlone: a container that holds the instance's
// name without Phoenix's labels is neither adopted nor removed.
func TestForeignContainerIsLeftAlone(t *testing.T) {
	cli, img := engine(t)
	ns, network := namespace(t, cli)
	p := newProvider(t, cli, img, ns, network, t.TempDir())
	name := p.ContainerName("taken")
	created, err := cli.ContainerCreate(t.Context(), client.ContainerCreateOptions{Name: name,
		Config: &container.Config{Image: img.Ref, Cmd: []string{"127.0.0.1:1", "/tmp"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = cli.ContainerRemove(context.Background(), created.ID, client.ContainerRemoveOptions{Force: true})
	})
	for op, err := range map[string]error{
		"Provision": func() error {
			_, err := p.Provision(t.Context(), provider.Spec{ID: "taken", Command: serverCommand})
			return err
		}(),
		"Release": p.Release(t.Context(), "taken"),
	} {
		if err == nil || !strings.Contains(err.Error(), "did not start it") {
			t.Errorf("%s over a foreign container: %v, want a refusal", op, err)
		}
	}
	if _, err := cli.ContainerInspect(t.Context(), created.ID, client.ContainerInspectOptions{}); err != nil {
		t.Fatalf("the foreign container is gone: %v", err)
	}
}

// TestNoEngineSaysWhatToDo runs without Docker: every call names the
// problem and the remedy.
func TestNoEngineSaysWhatToDo(t *testing.T) {
	cli, err := client.New(client.WithHost("unix://" + t.TempDir() + "/no-docker.sock"))
	if err != nil {
		t.Fatal(err)
	}
	if err := docker.Ping(t.Context(), cli); err == nil || !strings.Contains(err.Error(), "start it") {
		t.Errorf("Ping: %v", err)
	}
	p, err := docker.New(docker.Config{Client: cli, Image: "phoenix:x", Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Provision(t.Context(), provider.Spec{ID: "a", Command: []string{"x"}})
	if err == nil || !strings.Contains(err.Error(), "is Docker running") {
		t.Errorf("Provision: %v", err)
	}
	if _, err := p.Offers(t.Context()); err == nil || !strings.Contains(err.Error(), "is Docker running") {
		t.Errorf("Offers: %v", err)
	}
}

func TestConfigIsValidated(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  docker.Config
		want string
	}{
		{"no image", docker.Config{Root: "/tmp/x"}, "image is required"},
		{"no root", docker.Config{Image: "i"}, "root directory is required"},
		{"bad namespace", docker.Config{Image: "i", Root: t.TempDir(), Namespace: "Bad/NS"}, "namespace"},
		{"bad port", docker.Config{Image: "i", Root: t.TempDir(), Port: 70000}, "port"},
		{"relative data path", docker.Config{Image: "i", Root: t.TempDir(), DataPath: "data"}, "absolute"},
		{"tiny offer", docker.Config{Image: "i", Root: t.TempDir(), Offer: docker.OfferConfig{Size: phoenix.Resources{MilliCPU: 5}}}, "at least"},
		{"negative price", docker.Config{Image: "i", Root: t.TempDir(), Offer: docker.OfferConfig{PricePerHour: -1}}, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := docker.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestBadSpecsAreRefusedBeforeTheEngine(t *testing.T) {
	p, err := docker.New(docker.Config{Image: "i", Root: t.TempDir(),
		Client: func() *client.Client { c, _ := client.New(client.WithHost("unix:///nonexistent")); return c }()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		spec provider.Spec
		want string
	}{
		{"memory below the engine's minimum", provider.Spec{ID: "a", Command: []string{"x"}, Resources: phoenix.Resources{MemoryBytes: 1 << 20}}, "6 MiB"},
		{"cpu below the engine's minimum", provider.Spec{ID: "a", Command: []string{"x"}, Resources: phoenix.Resources{MilliCPU: 1}}, "10 minimum"},
		{"negative", provider.Spec{ID: "a", Command: []string{"x"}, Resources: phoenix.Resources{DiskBytes: -1}}, "negative"},
		{"foreign offer", provider.Spec{ID: "a", Command: []string{"x"}, Offer: "aws-m5"}, "not this provider's"},
		{"empty argv0", provider.Spec{ID: "a", Command: []string{""}}, "empty command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Provision(t.Context(), tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, provider.ErrNoCapacity) {
				t.Fatalf("Provision: %v, want an error about %q", err, tc.want)
			}
		})
	}
}

// TestProvisionMetrics: every Provision is timed, by result.
func TestProvisionMetrics(t *testing.T) {
	cli, img := engine(t)
	ns, network := namespace(t, cli)
	reg := prometheus.NewRegistry()
	p, err := docker.New(docker.Config{Client: cli, Image: img.Ref, Namespace: ns, Network: network, Root: t.TempDir(),
		StopTimeout: time.Second, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Provision(t.Context(), provider.Spec{ID: "ok", Command: serverCommand}); err != nil {
		t.Fatal(err)
	}
	_, err = p.Provision(t.Context(), provider.Spec{ID: "big", Command: serverCommand, Resources: phoenix.Resources{MilliCPU: 1 << 40}})
	if !errors.Is(err, provider.ErrNoCapacity) {
		t.Fatalf("Provision of 2^40 milli-CPU: %v, want ErrNoCapacity", err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "phoenix_docker_provision_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetHistogram().GetSampleCount()
		}
	}
	if got["ok"] != 1 || got["no_capacity"] != 1 {
		t.Fatalf("provision counts by result %v, want ok 1 and no_capacity 1", got)
	}
}

// TestNetworkRemovedBehindItsBack: the provider remembers its network; if
// someone removes it, the next Provision makes it again.
func TestNetworkRemovedBehindItsBack(t *testing.T) {
	cli, img := engine(t)
	ns, network := namespace(t, cli)
	p := newProvider(t, cli, img, ns, network, t.TempDir())
	spec := provider.Spec{ID: "a", Command: serverCommand}
	if _, err := p.Provision(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	if err := p.Release(t.Context(), spec.ID); err != nil {
		t.Fatal(err)
	}
	if err := docker.RemoveNetwork(t.Context(), cli, network); err != nil {
		t.Fatal(err)
	}
	inst, err := p.Provision(t.Context(), spec)
	if err != nil {
		t.Fatalf("Provision after the network was removed: %v", err)
	}
	waitFor(t, 20*time.Second, "instance healthy", func() bool { return healthy(t, inst) })
}
