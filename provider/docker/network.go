package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"
)

// network returns the ID of the provider's network, creating it if needed.
// The ID is remembered: a network removed behind the provider's back is
// noticed when a container cannot be created on it (forgetNetwork).
func (p *Provider) network(ctx context.Context) (string, error) {
	p.mu.Lock()
	id := p.netID
	p.mu.Unlock()
	if id != "" {
		return id, nil
	}
	id, err := EnsureNetwork(ctx, p.cli, p.cfg.Network, map[string]string{LabelNamespace: p.cfg.Namespace})
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	p.netID = id
	p.mu.Unlock()
	return id, nil
}

func (p *Provider) forgetNetwork() {
	p.mu.Lock()
	p.netID = ""
	p.mu.Unlock()
}

// EnsureNetwork returns the ID of the bridge network called name, creating
// it with labels if there is none. It is safe to call concurrently, from
// several processes: an engine older than API 1.44 lets two creators make
// two networks of one name, so after creating, every creator converges on
// the oldest of them and removes its own if it lost.
func EnsureNetwork(ctx context.Context, cli *client.Client, name string, labels map[string]string) (string, error) {
	unlock, err := lockHost(ctx, "network-"+name)
	if err != nil {
		return "", fmt.Errorf("create network %s: %w", name, err)
	}
	defer unlock()
	if nets, err := networksNamed(ctx, cli, name); err != nil {
		return "", err
	} else if len(nets) > 0 {
		// Heal what a creator that died before converging left: the
		// engine refuses to start containers on an ambiguous name.
		for _, n := range nets[1:] {
			_, _ = cli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
		}
		return nets[0].ID, nil
	}
	created, err := cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge", Labels: labels})
	if err != nil && !cerrdefs.IsConflict(err) {
		return "", fmt.Errorf("create network %s: %w", name, engineErr(err))
	}
	nets, err := networksNamed(ctx, cli, name)
	if err != nil {
		return "", err
	}
	if len(nets) == 0 {
		return "", fmt.Errorf("create network %s: it vanished right after creation; is another program removing it?", name)
	}
	if created.ID != "" && nets[0].ID != created.ID {
		_, _ = cli.NetworkRemove(ctx, created.ID, client.NetworkRemoveOptions{})
	}
	return nets[0].ID, nil
}

// lockHost takes an exclusive lock, shared by every process of this host,
// named key. The engine of API < 1.44 does not refuse a second network of
// an existing name, so creators on one host take turns; creators on
// several hosts sharing one engine still converge after the fact.
func lockHost(ctx context.Context, key string) (unlock func(), err error) {
	sum := sha256.Sum256([]byte(key))
	path := filepath.Join(os.TempDir(), "phoenix-docker-"+hex.EncodeToString(sum[:8])+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}

// networksNamed lists the networks called exactly name, oldest first (the
// engine's name filter matches substrings).
func networksNamed(ctx context.Context, cli *client.Client, name string) ([]network.Summary, error) {
	res, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("name", name)})
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", engineErr(err))
	}
	var out []network.Summary
	for _, n := range res.Items {
		if n.Name == name {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// RemoveNetwork removes every network called name. One that does not
// exist is not an error; one that still has containers is.
func RemoveNetwork(ctx context.Context, cli *client.Client, name string) error {
	nets, err := networksNamed(ctx, cli, name)
	if err != nil {
		return err
	}
	for _, n := range nets {
		if _, err := cli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("remove network %s: %w", name, engineErr(err))
		}
	}
	return nil
}

// GatewayIP is the host's address on the network called name: what the
// containers on it (and, through the host's routing, on any other network)
// reach the host at. Phoenix's proxies and OTLP receiver listen there when
// containers must call them.
func GatewayIP(ctx context.Context, cli *client.Client, name string) (netip.Addr, error) {
	nets, err := networksNamed(ctx, cli, name)
	if err != nil {
		return netip.Addr{}, err
	}
	if len(nets) == 0 {
		return netip.Addr{}, fmt.Errorf("network %s: not found; create it with docker.EnsureNetwork", name)
	}
	got, err := cli.NetworkInspect(ctx, nets[0].ID, client.NetworkInspectOptions{})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("inspect network %s: %w", name, engineErr(err))
	}
	for _, c := range got.Network.IPAM.Config {
		if c.Gateway.Is4() {
			return c.Gateway, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("network %s has no IPv4 gateway", name)
}
