package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/phoenixsre/phoenix/examples/shop"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := shop.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
