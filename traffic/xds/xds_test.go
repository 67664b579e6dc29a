package xds

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	_ "google.golang.org/grpc/xds" // registers the xds:/// resolver, configured by GRPC_XDS_BOOTSTRAP_CONFIG

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/traffic"
)

// clientEnv, when set, makes the test binary a gRPC client of that xds:///
// target: one UnaryCall per line on stdin, one answer line on stdout.
const clientEnv = "PHOENIX_XDS_TEST_CLIENT"

func TestMain(m *testing.M) {
	if target := os.Getenv(clientEnv); target != "" {
		os.Exit(runClient(target))
	}
	os.Exit(m.Run())
}

// runClient is a proxyless gRPC client: grpc-go's own xds resolver, its
// bootstrap from the environment, pointing at our server.
func runClient(target string) int {
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer conn.Close()
	client := testgrpc.NewTestServiceClient(conn)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.WaitForReady(true))
		cancel()
		if err != nil {
			fmt.Printf("ERR %v\n", strings.ReplaceAll(err.Error(), "\n", " "))
			continue
		}
		fmt.Printf("OK %s\n", resp.GetServerId())
	}
	return 0
}

// named is a gRPC test service that says which server answered.
type named struct {
	testgrpc.UnimplementedTestServiceServer
	name string
}

func (n named) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{ServerId: n.name}, nil
}

func startGRPC(t *testing.T, name string) traffic.Backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, named{name: name})
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return traffic.Backend{Name: name, URL: &url.URL{Scheme: "tcp", Host: ln.Addr().String()}}
}

// xdsClient is the child process, driven call by call.
type xdsClient struct {
	in  io.WriteCloser
	out *bufio.Scanner
}

func startClient(t *testing.T, server net.Addr, target string) *xdsClient {
	t.Helper()
	bootstrap := fmt.Sprintf(`{"xds_servers":[{"server_uri":%q,"channel_creds":[{"type":"insecure"}],"server_features":["xds_v3"]}],"node":{"id":"phoenix-test-client"}}`, server.String())
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), clientEnv+"="+target, "GRPC_XDS_BOOTSTRAP_CONFIG="+bootstrap)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("xds client: %v", err)
		}
	})
	return &xdsClient{in: in, out: bufio.NewScanner(out)}
}

// call makes one RPC and returns the server that answered, or the error.
func (c *xdsClient) call(t *testing.T) (server string, err error) {
	t.Helper()
	if _, err := io.WriteString(c.in, "call\n"); err != nil {
		t.Fatal(err)
	}
	if !c.out.Scan() {
		t.Fatalf("xds client exited: %v", c.out.Err())
	}
	line := c.out.Text()
	if s, ok := strings.CutPrefix(line, "OK "); ok {
		return s, nil
	}
	return "", fmt.Errorf("%s", line)
}

// TestGRPCClientFollowsSwitch: a real gRPC client resolving xds:///orders
// through our server calls the primary, and after the traffic proxy's
// switch, the standby, without a failed call.
func TestGRPCClientFollowsSwitch(t *testing.T) {
	primary := startGRPC(t, "orders@primary")
	standby := startGRPC(t, "orders@standby")
	x, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- x.Run(ctx) }()

	p, err := traffic.New(traffic.Config{Component: "orders", Protocol: traffic.TCP, OnRoute: x.Update}, primary)
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	})
	if err := p.SetStandby(&standby); err != nil {
		t.Fatal(err)
	}

	c := startClient(t, x.Addr(), "xds:///orders")
	failed := 0
	for got, err := c.call(t); got != primary.Name; got, err = c.call(t) {
		t.Fatalf("first call: served by %q, err %v; want %s", got, err, primary.Name)
	}
	before := x.Version()
	if err := p.Switch(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if x.Version() == before {
		t.Fatalf("the switch published no new snapshot (version %d)", before)
	}
	deadline := time.Now().Add(20 * time.Second)
	calls := 0
	for {
		got, err := c.call(t)
		calls++
		if err != nil {
			failed++
			t.Logf("call failed: %v", err)
		}
		if got == standby.Name {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d calls the client still reaches %q, not %s", calls, got, standby.Name)
		}
	}
	for range 20 {
		if got, err := c.call(t); got != standby.Name {
			t.Errorf("after the move: served by %q, err %v; want %s", got, err, standby.Name)
		}
	}
	if failed > 0 {
		t.Errorf("%d calls failed across the switch", failed)
	}
	t.Logf("the client moved to the standby after %d calls; version %d", calls, x.Version())
}

var typeURL = map[string]string{
	"listener": resource.ListenerType, "route": resource.RouteType,
	"cluster": resource.ClusterType, "endpoint": resource.EndpointType,
}

func TestSnapshots(t *testing.T) {
	b := func(name, raw string) traffic.Backend {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return traffic.Backend{Name: name, URL: u}
	}
	x, err := New(Config{EnvoyListeners: map[phoenix.ComponentID]string{"orders": "0.0.0.0:10000", "db": "0.0.0.0:15432"}})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if err := x.SetRoute("orders", traffic.HTTP, []traffic.Backend{b("o1", "http://127.0.0.1:8081"), b("o2", "http://[::1]:8082")}); err != nil {
		t.Fatal(err)
	}
	if err := x.SetRoute("db", traffic.TCP, []traffic.Backend{b("d1", "tcp://10.0.0.5:5432")}); err != nil {
		t.Fatal(err)
	}
	if err := x.SetRoute("inventory", traffic.HTTP, []traffic.Backend{b("i1", "http://localhost:8083")}); err == nil || !strings.Contains(err.Error(), "not an IP address") {
		t.Errorf("a host name: err = %v, want a refusal naming the IP rule", err)
	}
	if _, err := New(Config{EnvoyListeners: map[phoenix.ComponentID]string{"orders": "nowhere"}}); err == nil || !strings.Contains(err.Error(), "EnvoyListeners[orders]") {
		t.Errorf("bad Envoy listener address: err = %v", err)
	}
	for class, want := range map[string]map[string]int{
		classGRPC:  {"listener": 2, "route": 0, "cluster": 2, "endpoint": 2},
		classEnvoy: {"listener": 2, "route": 1, "cluster": 2, "endpoint": 2},
	} {
		rs, err := x.cache.GetSnapshot(class)
		if err != nil {
			t.Fatal(err)
		}
		snap := rs.(*cachev3.Snapshot)
		if err := snap.Consistent(); err != nil {
			t.Errorf("%s snapshot: %v", class, err)
		}
		for kind, n := range want {
			if got := len(snap.GetResources(typeURL[kind])); got != n {
				t.Errorf("%s snapshot: %d %s resources, want %d", class, got, kind, n)
			}
		}
		for _, r := range snap.GetResources(typeURL["listener"]) {
			if err := r.(interface{ ValidateAll() error }).ValidateAll(); err != nil {
				t.Errorf("%s listener invalid: %v", class, err)
			}
		}
	}
}
