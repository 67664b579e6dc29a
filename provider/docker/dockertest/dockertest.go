// Package dockertest gives tests a live Docker engine: a client of it, or
// the test skipped with the reason where there is none, and failed instead
// under CI=true, where CI provides one (.ci/run starts it). It also gives
// each test a namespace and network of its own, removed when it ends.
package dockertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/phoenixsre/phoenix/provider/docker"
)

// Engine returns a client of the engine the environment names (DOCKER_HOST,
// or the default socket) once it has answered a ping.
func Engine(t testing.TB) *client.Client {
	t.Helper()
	cli, err := docker.NewClient()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = docker.Ping(ctx, cli)
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Docker is required when CI=true: %v", err)
		}
		t.Skipf("no Docker engine, skipping: %v", err)
	}
	return cli
}

// Namespace returns a fresh namespace ("PREFIX-" and 8 hex digits) and
// network name ("NAMESPACE-net") for one test, so that tests running at
// once on one engine never see each other's containers. The containers of
// the namespace and the network are removed when the test ends.
func Namespace(t testing.TB, cli *client.Client, prefix string) (ns, network string) {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	ns = prefix + "-" + hex.EncodeToString(b[:])
	network = ns + "-net"
	root := t.TempDir()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p, err := docker.New(docker.Config{Client: cli, Image: "unused", Namespace: ns, Network: network, Root: root})
		if err == nil {
			if err := p.ReleaseAll(ctx); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		if err := docker.RemoveNetwork(ctx, cli, network); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return ns, network
}
