package docker_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/provider/docker"
	"github.com/phoenixsre/phoenix/provider/docker/dockertest"
)

// The engine and the test image are shared by every test of the package:
// building the static test server and importing it is done once.
var shared struct {
	once  sync.Once
	image docker.Image
	dir   string
	err   error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// engine returns a client of a live Docker engine and the test server's
// image. Without an engine the test is skipped, or fails when CI=true (CI
// installs Docker).
func engine(t *testing.T) (*client.Client, docker.Image) {
	t.Helper()
	cli := dockertest.Engine(t)
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if shared.dir, shared.err = os.MkdirTemp("", "phoenix-docker-test-"); shared.err != nil {
			return
		}
		bin := filepath.Join(shared.dir, "testserver")
		_, file, _, _ := runtime.Caller(0)
		if shared.err = docker.BuildBinary(ctx, filepath.Dir(file), "./testdata/testserver", bin); shared.err != nil {
			return
		}
		shared.image, shared.err = docker.EnsureImage(ctx, cli, bin, "phoenix-testserver")
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return cli, shared.image
}

// namespace is a fresh namespace (and network name) for one test, so that
// tests running at once on one engine never see each other's containers;
// what it left is removed at the end.
func namespace(t *testing.T, cli *client.Client) (ns, network string) {
	t.Helper()
	return dockertest.Namespace(t, cli, "phxtest")
}

// newProvider returns a provider over the test image whose offer is 500
// milli-CPU and 64 MiB, within a capacity of 1 CPU and 256 MiB: Free is 2.
func newProvider(t *testing.T, cli *client.Client, img docker.Image, ns, network, root string) *docker.Provider {
	t.Helper()
	p, err := docker.New(docker.Config{
		Client: cli, Image: img.Ref, Namespace: ns, Network: network, Root: root,
		StopTimeout: time.Second,
		Offer: docker.OfferConfig{
			ID: "test", Zone: "z1", PricePerHour: 0.25,
			Size:     phoenix.Resources{MilliCPU: 500, MemoryBytes: 64 << 20},
			Capacity: phoenix.Resources{MilliCPU: 1000, MemoryBytes: 256 << 20},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// serverCommand runs the test server: it listens on {addr} and serves
// {data_dir}/data.
var serverCommand = []string{docker.ImageExecutable, "{addr}", "{data_dir}"}
