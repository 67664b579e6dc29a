package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/phoenixsre/phoenix/provider/docker"
)

func newDockerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "docker",
		Short: "Prepare and clean up the Docker secondary environment (image, leftover containers)",
		Long: `Tools for the docker provider, which runs replicas as containers through the Docker
Engine API (DOCKER_HOST, or the local socket):
  image     make the image replicas run, FROM scratch, from a static phoenix binary
  cleanup   remove every container Phoenix made in a namespace, and its network`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newDockerImageCmd(), newDockerCleanupCmd())
	return cmd
}

func newDockerImageCmd() *cobra.Command {
	var binary, source, repo string
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Make (once per binary) the image replicas run, and print its reference",
		Long: `Make the image the docker provider runs, FROM scratch: a statically linked phoenix
as /phoenix, keyed by the binary's SHA-256 (a second run with the same binary makes
nothing). The binary is --binary, else this executable if it is static, else one built
with CGO_ENABLED=0 from the module in --source. Prints REPO:TAG.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Minute)
			defer cancel()
			cli, err := docker.NewClient()
			if err != nil {
				return err
			}
			defer cli.Close()
			if err := docker.Ping(ctx, cli); err != nil {
				return err
			}
			bin := binary
			if bin == "" {
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("find own executable: %w", err)
				}
				tmp, err := os.MkdirTemp("", "phoenix-image-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				if bin, err = docker.StaticBinary(ctx, exe, source, tmp); err != nil {
					return fmt.Errorf("%w (or give --source DIR, the phoenix source tree)", err)
				}
			}
			img, err := docker.EnsureImage(ctx, cli, bin, repo)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), img.Ref)
			return nil
		},
	}
	cmd.Flags().StringVar(&binary, "binary", "", "a statically linked phoenix `path` (default: this executable, or built from --source)")
	cmd.Flags().StringVar(&source, "source", "", "the phoenix source `directory` to build a static binary from when this executable is not static")
	cmd.Flags().StringVar(&repo, "repo", "phoenix", "the image's repository `name`")
	return cmd
}

func newDockerCleanupCmd() *cobra.Command {
	var namespace, network, root string
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "Remove every container of a namespace (and, with --network, the network)",
		Long: `Stop and remove every container labelled with the namespace (replicas outlive the
daemon by design; a daemon restarted on the same namespace adopts them instead). With
--root, their data directories under it go too.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Minute)
			defer cancel()
			cli, err := docker.NewClient()
			if err != nil {
				return err
			}
			defer cli.Close()
			if root == "" {
				if root, err = os.MkdirTemp("", "phoenix-cleanup-"); err != nil {
					return err
				}
				defer os.RemoveAll(root)
			}
			p, err := docker.New(docker.Config{Client: cli, Image: "unused", Namespace: namespace, Network: network, Root: root})
			if err != nil {
				return err
			}
			insts, err := p.List(ctx)
			if err != nil {
				return err
			}
			if err := p.ReleaseAll(ctx); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %d containers of namespace %s\n", len(insts), namespace)
			if cmd.Flags().Changed("network") {
				if err := docker.RemoveNetwork(ctx, cli, network); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "removed network %s\n", network)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&namespace, "namespace", "phoenix", "the provider's namespace (container names and labels)")
	cmd.Flags().StringVar(&network, "network", "phoenix-secondary", "also remove this network (only when given)")
	cmd.Flags().StringVar(&root, "root", "", "the provider's root `directory`, to remove the data directories too")
	return cmd
}
