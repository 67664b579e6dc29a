package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/phoenixsre/phoenix/replicate"
)

// agentMain runs a replicate.Agent as "phoenix agent" does, with the flags
// the benchmark uses, so the benchmark does not depend on the rest of the
// phoenix command building.
func agentMain(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	role := fs.String("role", "", "source or target")
	dir := fs.String("dir", "", "data directory")
	listen := fs.String("listen", "127.0.0.1:0", "host:port")
	tokenFile := fs.String("token-file", "", "bearer token file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	b, err := os.ReadFile(*tokenFile)
	if err != nil {
		log.Error("token", "err", err)
		return 1
	}
	a, err := replicate.NewAgent(replicate.AgentConfig{Role: *role, Dir: *dir, Token: strings.TrimSpace(string(b)), Logger: log})
	if err != nil {
		log.Error("agent", "err", err)
		return 1
	}
	defer a.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Error("listen", "err", err)
		return 1
	}
	log.Info("listening", "addr", ln.Addr().String())
	if err := a.Serve(ctx, ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
