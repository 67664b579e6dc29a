package shop

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// The service kinds Main can run.
const (
	kindGateway   = "gateway"
	kindOrders    = "orders"
	kindInventory = "inventory"
)

// AdminTokenEnv names the environment variable that holds the admin bearer
// token; empty disables the admin endpoints.
const AdminTokenEnv = "SHOP_ADMIN_TOKEN"

const usage = `usage: shop SERVICE [flags]

Runs one service of the example shop until interrupted:
  gateway     the HTTP entry; forwards /orders/{id} to the orders service
  orders      stores orders durably in a log; checks stock with inventory
  inventory   answers /stock/{sku} with a deterministic quantity

Run 'shop SERVICE --help' for the service's flags.
Environment: SHOP_ADMIN_TOKEN enables the /admin endpoints (bearer token);
OTEL_EXPORTER_OTLP_HEADERS adds headers to OTLP exports (e.g. Authorization=Bearer x).
`

// config is one service's settings, decoded from flags over defaults.
type config struct {
	kind            string
	listen          string
	otlp            string
	serviceName     string
	instance        string
	environment     string
	dataDir         string
	memoryLimit     int64
	upstreamTimeout time.Duration
	shutdownTimeout time.Duration
	ordersURL       string // gateway
	inventoryURL    string // orders
	follow          bool   // orders
	adminToken      string
}

// describe returns a service kind's default listen address and summary;
// ok is false for an unknown kind.
func describe(kind string) (listen, summary string, ok bool) {
	switch kind {
	case kindGateway:
		return "127.0.0.1:8080", "Forwards PUT/GET /orders/{id} to the orders service, passing its status and body through (502 if unreachable; never retries).", true
	case kindOrders:
		return "127.0.0.1:8081", "Stores orders in an fsynced append-only log under --data; every request first checks stock with inventory. --follow runs a standby that tails the log until POST /admin/promote.", true
	case kindInventory:
		return "127.0.0.1:8082", "Answers GET /stock/{sku} with JSON {\"sku\", \"available\"}, a deterministic function of the sku.", true
	}
	return "", "", false
}

// Main runs the service named by args[0] with the flags that follow until
// ctx is cancelled, then shuts it down gracefully. It returns the process
// exit code: 0 after a clean run or --help, 2 for bad usage, 1 for a
// failure. Logs go to stderr as JSON; help goes to stdout.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fs, cfg, err := newFlagSet(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "shop: %v\n\n%s", err, usage)
		return 2
	}
	if err := parse(fs, cfg, args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printHelp(stdout, fs, cfg.kind)
			return 0
		}
		fmt.Fprintf(stderr, "shop %s: %v\nRun 'shop %s --help' for the flags.\n", cfg.kind, err, cfg.kind)
		return 2
	}
	cfg.adminToken = os.Getenv(AdminTokenEnv)
	if cfg.instance == "" {
		host, _ := os.Hostname()
		cfg.instance = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil)).With("service", cfg.serviceName, "instance", cfg.instance)
	if err := run(ctx, *cfg, logger); err != nil {
		logger.Error("service failed", "err", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}

// newFlagSet declares the flags of one service kind over its defaults.
func newFlagSet(kind string) (*flag.FlagSet, *config, error) {
	listen, _, ok := describe(kind)
	if !ok {
		return nil, nil, fmt.Errorf("unknown service %q: use gateway, orders or inventory", kind)
	}
	cfg := &config{
		kind:            kind,
		upstreamTimeout: 30 * time.Second,
		shutdownTimeout: 10 * time.Second,
	}
	fs := flag.NewFlagSet("shop "+kind, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // Main prints errors and help itself
	fs.StringVar(&cfg.listen, "listen", listen, "`host:port` to serve HTTP on")
	fs.StringVar(&cfg.otlp, "otlp", "", "base `URL` of an OTLP/HTTP receiver for spans, e.g. http://127.0.0.1:4318 (empty: no tracing)")
	fs.StringVar(&cfg.serviceName, "service-name", kind, "service.name of the spans and the logs")
	fs.StringVar(&cfg.instance, "instance", "", "service.instance.id of the spans (default hostname-pid)")
	fs.StringVar(&cfg.environment, "environment", "primary", "deployment.environment of the spans")
	fs.Int64Var(&cfg.memoryLimit, "memory-limit", 0, "resident memory in `bytes` above which the process kills itself with SIGKILL, as the OOM killer would (0: no limit)")
	fs.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", cfg.shutdownTimeout, "how long a graceful shutdown waits for in-flight requests")
	switch kind {
	case kindGateway:
		fs.StringVar(&cfg.ordersURL, "orders", "", "base `URL` of the orders service (required), e.g. http://127.0.0.1:8081")
		fs.DurationVar(&cfg.upstreamTimeout, "upstream-timeout", cfg.upstreamTimeout, "how long a call to orders may take; generous because Phoenix may hold requests during a switch")
		fs.StringVar(&cfg.dataDir, "data", "", "`directory` for the disk fault's filler files (optional)")
	case kindOrders:
		fs.StringVar(&cfg.dataDir, "data", "", "`directory` of the order log (required; created if missing)")
		fs.StringVar(&cfg.inventoryURL, "inventory", "", "base `URL` of the inventory service (required), e.g. http://127.0.0.1:8082")
		fs.BoolVar(&cfg.follow, "follow", false, "run as a standby: tail the log others append to, refuse writes until POST /admin/promote")
		fs.DurationVar(&cfg.upstreamTimeout, "upstream-timeout", cfg.upstreamTimeout, "how long a call to inventory may take")
	case kindInventory:
		fs.StringVar(&cfg.dataDir, "data", "", "`directory` for the disk fault's filler files (optional)")
	}
	return fs, cfg, nil
}

func printHelp(w io.Writer, fs *flag.FlagSet, kind string) {
	_, summary, _ := describe(kind)
	fmt.Fprintf(w, "usage: shop %s [flags]\n\n%s\n\nFlags:\n", kind, summary)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	fmt.Fprintf(w, "\nEnvironment:\n  %s\tbearer token for /admin (empty: admin disabled)\n  OTEL_EXPORTER_OTLP_HEADERS\theaders for OTLP exports\n", AdminTokenEnv)
}

// parse decodes args over the defaults and validates the result; every
// error names the flag and what to write instead.
func parse(fs *flag.FlagSet, cfg *config, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: flags only, e.g. --listen 127.0.0.1:0", fs.Arg(0))
	}
	if _, _, err := net.SplitHostPort(cfg.listen); err != nil {
		return fmt.Errorf("--listen %q: want host:port, e.g. 127.0.0.1:8080: %w", cfg.listen, err)
	}
	if cfg.otlp != "" {
		if err := checkBaseURL("--otlp", cfg.otlp); err != nil {
			return err
		}
	}
	if strings.TrimSpace(cfg.serviceName) == "" {
		return errors.New("--service-name is empty: give a name such as " + cfg.kind)
	}
	if strings.TrimSpace(cfg.environment) == "" {
		return errors.New("--environment is empty: use primary or secondary")
	}
	if cfg.memoryLimit < 0 {
		return fmt.Errorf("--memory-limit %d: use a number of bytes, or 0 for no limit", cfg.memoryLimit)
	}
	if cfg.upstreamTimeout <= 0 || cfg.shutdownTimeout <= 0 {
		return errors.New("--upstream-timeout and --shutdown-timeout must be positive durations, e.g. 30s")
	}
	switch cfg.kind {
	case kindGateway:
		return checkBaseURL("--orders", cfg.ordersURL)
	case kindOrders:
		if cfg.dataDir == "" {
			return errors.New("--data is required: give the directory of the order log, e.g. --data /var/lib/shop/orders")
		}
		return checkBaseURL("--inventory", cfg.inventoryURL)
	}
	return nil
}

// checkBaseURL requires an absolute http(s) URL with a host.
func checkBaseURL(flagName, raw string) error {
	if raw == "" {
		return fmt.Errorf("%s is required: give a base URL such as http://127.0.0.1:8081", flagName)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s %q: %w", flagName, raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s %q: want an http:// or https:// URL with a host, e.g. http://127.0.0.1:8081", flagName, raw)
	}
	return nil
}
