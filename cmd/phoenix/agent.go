package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/alecthomas/units"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/phoenixsre/phoenix/replicate"
)

// agentFlags are the flags of "phoenix agent".
type agentFlags struct {
	role, dir, listen, tokenFile string
	tlsCert, tlsKey, tlsCA       string
	throttle, logLevel           string
	preHook, postHook            string
}

func newAgentCmd() *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent --role source|target --dir DIR --token-file FILE",
		Short: "Serve a component's data directory to Phoenix, or apply state into a replica's",
		Long: `Run next to a stateful component and move its state for the Phoenix controller.

--role source serves the component's data directory: on the controller's request it
reads the directory (never writes it) and pushes a snapshot or an incremental round to
a target agent. --role target applies that state into the replica's data directory:
every file is verified on arrival (BLAKE3 of the whole file, CRC-32C of every chunk),
written to a temp file and renamed; an interrupted transfer resumes from its verified
part; a full disk fails the transfer with a clear reason.

Every request needs "Authorization: Bearer TOKEN", TOKEN being the content of
--token-file (the same file for the controller and all its agents; keep it mode 0600).
A bearer token rather than mTLS: Phoenix already secures its API with one, it needs no
certificate authority, and with --tls-cert/--tls-key the agent serves HTTPS so the token
never crosses the network in clear. The agent listens on loopback unless --listen says
otherwise; GET /healthz needs no token.`,
		Example: `  phoenix agent --role source --dir /var/lib/orders --token-file /etc/phoenix/agent.token
  phoenix agent --role target --dir /srv/replica/orders --listen 0.0.0.0:7071 \
      --token-file /etc/phoenix/agent.token --tls-cert agent.pem --tls-key agent-key.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgent(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.role, "role", "", "source (serve --dir, read only) or target (apply state into --dir) (required)")
	fl.StringVar(&f.dir, "dir", "", "the data directory served or written (required)")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:7071", "host:port to serve on; loopback by default")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the bearer token, not readable by group or others (required)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate to serve HTTPS with (with --tls-key)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fl.StringVar(&f.tlsCA, "tls-ca", "", "PEM CA bundle a source agent trusts for target agents' HTTPS (default: the system's)")
	fl.StringVar(&f.throttle, "throttle", "0", "source role: most bytes per second read from --dir, e.g. 50MiB; 0 for no cap")
	fl.StringVar(&f.preHook, "pre-hook", "", "source role: shell command run before a snapshot (quiesce), e.g. \"sqlite3 db.sqlite 'PRAGMA wal_checkpoint'\"")
	fl.StringVar(&f.postHook, "post-hook", "", "source role: shell command run after a snapshot, also a failed one (resume)")
	fl.StringVar(&f.logLevel, "log-level", "info", "least severe log level written to stderr: debug, info, warn or error")
	return cmd
}

func runAgent(cmd *cobra.Command, f agentFlags) error {
	if f.role == "" || f.dir == "" || f.tokenFile == "" {
		return usageErr("agent needs --role, --dir and --token-file")
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return usageErr("--tls-cert and --tls-key go together")
	}
	level, err := parseLevel(f.logLevel)
	if err != nil {
		return err
	}
	throttle, err := units.ParseBase2Bytes(f.throttle)
	if err != nil || throttle < 0 {
		return usageErr("--throttle %q: want bytes per second such as 50MiB, or 0", f.throttle)
	}
	token, err := readTokenFile(f.tokenFile)
	if err != nil {
		return err
	}
	client, err := agentClient(f.tlsCA)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level})).With("role", f.role)
	var hooks replicate.Hooks
	if f.preHook != "" {
		hooks.Pre = []string{"/bin/sh", "-c", f.preHook}
	}
	if f.postHook != "" {
		hooks.Post = []string{"/bin/sh", "-c", f.postHook}
	}
	reg := prometheus.NewRegistry()
	a, err := replicate.NewAgent(replicate.AgentConfig{Role: f.role, Dir: f.dir, Token: token, Throttle: int64(throttle),
		Hooks: hooks, Client: client, Logger: log, Registerer: reg})
	if err != nil {
		return err
	}
	defer a.Close()
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("agent: listen: %w", err)
	}
	scheme := "http"
	if f.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("agent: TLS certificate: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		scheme = "https"
	}
	log.Info("listening", "addr", ln.Addr().String(), "scheme", scheme, "dir", f.dir)
	return a.Serve(cmd.Context(), ln)
}

// readTokenFile reads a bearer token from a file that only its owner may
// read, as ssh does for keys: a token others can read is no secret.
func readTokenFile(path string) (string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("token file %s has mode %04o: make it readable by its owner only (chmod 600)", path, info.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", errors.New("token file " + path + " is empty: write the controller's agent token in it")
	}
	return token, nil
}

// agentClient is the HTTP client a source agent pushes with.
func agentClient(caFile string) (*http.Client, error) {
	if caFile == "" {
		return &http.Client{}, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--tls-ca %s: no PEM certificate in it", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}, nil
}
