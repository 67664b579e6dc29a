package docker

import (
	"context"
	"fmt"
	"time"

	"github.com/moby/moby/client"
)

// Faults injects real failures into containers through the Engine API, for
// tests and the demo: the container's process is really stopped, killed,
// frozen or cut off, and nothing in Phoenix is told.
type Faults struct {
	cli *client.Client
}

// NewFaults returns a fault injector over cli.
func NewFaults(cli *client.Client) *Faults { return &Faults{cli: cli} }

// Stop stops a container as an orchestrator would: SIGTERM, then SIGKILL
// after grace.
func (f *Faults) Stop(ctx context.Context, containerName string, grace time.Duration) error {
	secs := int(grace.Round(time.Second) / time.Second)
	if _, err := f.cli.ContainerStop(ctx, containerName, client.ContainerStopOptions{Timeout: &secs}); err != nil {
		return fmt.Errorf("stop %s: %w", containerName, engineErr(err))
	}
	return nil
}

// Kill sends SIGKILL: the process dies at once, with no chance to clean up.
func (f *Faults) Kill(ctx context.Context, containerName string) error {
	if _, err := f.cli.ContainerKill(ctx, containerName, client.ContainerKillOptions{Signal: "SIGKILL"}); err != nil {
		return fmt.Errorf("kill %s: %w", containerName, engineErr(err))
	}
	return nil
}

// Pause freezes every process of the container (cgroup freezer): it keeps
// its connections open and answers nothing, as a hung process would.
func (f *Faults) Pause(ctx context.Context, containerName string) error {
	if _, err := f.cli.ContainerPause(ctx, containerName, client.ContainerPauseOptions{}); err != nil {
		return fmt.Errorf("pause %s: %w", containerName, engineErr(err))
	}
	return nil
}

// Unpause thaws a paused container.
func (f *Faults) Unpause(ctx context.Context, containerName string) error {
	if _, err := f.cli.ContainerUnpause(ctx, containerName, client.ContainerUnpauseOptions{}); err != nil {
		return fmt.Errorf("unpause %s: %w", containerName, engineErr(err))
	}
	return nil
}

// Disconnect removes the container from a network: its address there stops
// answering (connections time out or are refused) while the process runs.
func (f *Faults) Disconnect(ctx context.Context, containerName, network string) error {
	id, err := f.networkID(ctx, network)
	if err != nil {
		return err
	}
	if _, err := f.cli.NetworkDisconnect(ctx, id, client.NetworkDisconnectOptions{Container: containerName, Force: true}); err != nil {
		return fmt.Errorf("disconnect %s from %s: %w", containerName, network, engineErr(err))
	}
	return nil
}

// Connect attaches the container to a network again (the engine may give it
// another address there).
func (f *Faults) Connect(ctx context.Context, containerName, network string) error {
	id, err := f.networkID(ctx, network)
	if err != nil {
		return err
	}
	if _, err := f.cli.NetworkConnect(ctx, id, client.NetworkConnectOptions{Container: containerName}); err != nil {
		return fmt.Errorf("connect %s to %s: %w", containerName, network, engineErr(err))
	}
	return nil
}

func (f *Faults) networkID(ctx context.Context, name string) (string, error) {
	nets, err := networksNamed(ctx, f.cli, name)
	if err != nil {
		return "", err
	}
	if len(nets) == 0 {
		return "", fmt.Errorf("network %s: not found", name)
	}
	return nets[0].ID, nil
}
