package depmap

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixsre/phoenix"
)

// clientEnv makes the test binary a client process: it connects to the
// address in the variable, says "connected" on stdout and holds the
// connection until stdin closes.
const clientEnv = "DEPMAP_TEST_CLIENT_OF"

func TestMain(m *testing.M) {
	if addr := os.Getenv(clientEnv); addr != "" {
		os.Exit(runClient(addr))
	}
	os.Exit(m.Run())
}

func runClient(addr string) int {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	fmt.Println("connected")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the test closes stdin
	return 0
}

// startClient starts the test binary as a client of addr, through
// "sh -c" when viaShell (so that the client is the shell's child), and
// returns the PID of the process started.
func startClient(t *testing.T, addr string, viaShell bool) int {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	if viaShell {
		cmd = exec.Command("/bin/sh", "-c", `"$0"; true`, exe)
	} else {
		cmd = exec.Command(exe)
	}
	cmd.Env = append(os.Environ(), clientEnv+"="+addr)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "connected\n" {
		t.Fatalf("client: %q %v", line, err)
	}
	return cmd.Process.Pid
}

// acceptAddr accepts one connection on ln and returns its client address,
// as a proxy sees it; the connection stays open until the test ends.
func acceptAddr(t *testing.T, ln net.Listener) netip.AddrPort {
	t.Helper()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.RemoteAddr().(*net.TCPAddr).AddrPort()
}

func runObserver(t *testing.T, ob *Observer) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- ob.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("observer: %v", err)
		}
	})
}

// TestProcResolver has three real client processes connect to a proxy's
// listener on loopback, where they all share 127.0.0.1: the test process
// itself (gateway), a child (reports) and a child of a shell (billing: the
// shell's PID is the one known). The resolver tells them apart by who
// holds each socket.
func TestProcResolver(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("ProcResolver reads Linux's /proc")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()

	self, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	gatewayFrom := acceptAddr(t, ln)
	reportsPID := startClient(t, addr, false)
	reportsFrom := acceptAddr(t, ln)
	billingPID := startClient(t, addr, true)
	billingFrom := acceptAddr(t, ln)

	pids := PIDMap{os.Getpid(): "gateway", reportsPID: "reports", billingPID: "billing"}
	res, err := NewProcResolver(pids, "")
	if err != nil {
		t.Fatal(err)
	}
	g := newTestGraph(t, Options{})
	ob, err := NewObserver(ObserverOptions{Graph: g, Resolver: res})
	if err != nil {
		t.Fatal(err)
	}
	runObserver(t, ob)
	for _, from := range []netip.AddrPort{gatewayFrom, reportsFrom, billingFrom} {
		if !ob.Observe("orders", from) {
			t.Fatal("observation dropped")
		}
	}
	ob.Observe("orders", netip.MustParseAddrPort("127.0.0.1:1")) // nobody's
	if err := ob.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := []Edge{
		{From: "billing", To: "orders", Sources: []string{SourceProxy}},
		{From: "gateway", To: "orders", Sources: []string{SourceProxy}},
		{From: "reports", To: "orders", Sources: []string{SourceProxy}},
	}
	if diff := cmp.Diff(want, g.Edges(), cmpIgnoreLastSeen); diff != "" {
		t.Errorf("edges (-want +got):\n%s", diff)
	}
	if s := ob.Stats(); s != (ObserverStats{Observed: 4, Resolved: 3, Unknown: 1}) {
		t.Errorf("stats %+v, want 4 observed, 3 resolved, 1 unknown", s)
	}

	// A process started by a component's process counts as that component
	// (here the test process, gateway); one whose ancestors are none of
	// the components' is unknown.
	strangerFrom := func() netip.AddrPort { startClient(t, addr, false); return acceptAddr(t, ln) }()
	if c, err := res.ResolveClient(t.Context(), strangerFrom); c != "gateway" || err != nil {
		t.Errorf("a child of gateway's process: %q, %v; want gateway", c, err)
	}
	narrow, err := NewProcResolver(PIDMap{reportsPID: "reports"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := narrow.ResolveClient(t.Context(), strangerFrom); !errors.Is(err, ErrUnknownClient) {
		t.Errorf("a process of no component: %q, %v; want ErrUnknownClient", c, err)
	}
}

// TestAddrTable resolves real connections made from distinct loopback
// addresses, as containers with addresses of their own would, by longest
// prefix.
func TestAddrTable(t *testing.T) {
	table, err := NewAddrTable(map[netip.Prefix]phoenix.ComponentID{
		netip.MustParsePrefix("127.0.0.2/32"):  "billing",
		netip.MustParsePrefix("127.0.0.0/24"):  "local",
		netip.MustParsePrefix("fd00::/8"):      "cluster",
		netip.MustParsePrefix("10.1.0.0/16"):   "pods",
		netip.MustParsePrefix("10.1.2.128/25"): "batch",
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dialFrom := func(src string) netip.AddrPort {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c, err := d.DialContext(t.Context(), "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return acceptAddr(t, ln)
	}
	for _, tc := range []struct {
		from netip.AddrPort
		want phoenix.ComponentID
	}{
		{dialFrom("127.0.0.2"), "billing"},
		{dialFrom("127.0.0.3"), "local"},
		{netip.MustParseAddrPort("[::ffff:127.0.0.2]:80"), "billing"},
		{netip.MustParseAddrPort("[fd12::1]:80"), "cluster"},
		{netip.MustParseAddrPort("10.1.2.200:80"), "batch"},
		{netip.MustParseAddrPort("10.1.2.1:80"), "pods"},
		{netip.MustParseAddrPort("192.0.2.1:80"), ""},
	} {
		got, err := table.ResolveClient(t.Context(), tc.from)
		if got != tc.want || (tc.want == "") != errors.Is(err, ErrUnknownClient) {
			t.Errorf("ResolveClient(%v) = %q, %v; want %q", tc.from, got, err, tc.want)
		}
	}
	if _, err := NewAddrTable(map[netip.Prefix]phoenix.ComponentID{{}: "x"}); err == nil {
		t.Error("an invalid prefix was taken")
	}
	if _, err := NewAddrTable(map[netip.Prefix]phoenix.ComponentID{netip.MustParsePrefix("10.0.0.0/8"): "Bad Name"}); err == nil {
		t.Error("an invalid component name was taken")
	}
}

// failingResolver answers with a fixed component or error.
type failingResolver struct {
	c   phoenix.ComponentID
	err error
}

func (r failingResolver) ResolveClient(context.Context, netip.AddrPort) (phoenix.ComponentID, error) {
	return r.c, r.err
}

func TestResolversAndObserverOutcomes(t *testing.T) {
	boom := errors.New("boom")
	from := netip.MustParseAddrPort("10.0.0.1:4000")
	for _, tc := range []struct {
		name    string
		r       Resolver
		want    phoenix.ComponentID
		wantErr error
		stats   ObserverStats
	}{
		{"first known wins", Resolvers{failingResolver{err: ErrUnknownClient}, failingResolver{c: "a"}, failingResolver{c: "b"}}, "a", nil, ObserverStats{Resolved: 1}},
		{"none knows", Resolvers{failingResolver{err: ErrUnknownClient}}, "", ErrUnknownClient, ObserverStats{Unknown: 1}},
		{"a failure is reported", Resolvers{failingResolver{err: boom}, failingResolver{err: ErrUnknownClient}}, "", boom, ObserverStats{Failed: 1}},
		{"self", failingResolver{c: "orders"}, "orders", nil, ObserverStats{Self: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newTestGraph(t, Options{})
			ob, err := NewObserver(ObserverOptions{Graph: g, Resolver: tc.r})
			if err != nil {
				t.Fatal(err)
			}
			got, err := ob.Record(t.Context(), "orders", from)
			if got != tc.want || !errors.Is(err, tc.wantErr) {
				t.Errorf("Record = %q, %v; want %q, %v", got, err, tc.want, tc.wantErr)
			}
			if s := ob.Stats(); s != tc.stats {
				t.Errorf("stats %+v, want %+v", s, tc.stats)
			}
		})
	}
}

func TestObserverDropsWhenFull(t *testing.T) {
	ob, err := NewObserver(ObserverOptions{Graph: newTestGraph(t, Options{}), Resolver: Resolvers{}, Queue: 1})
	if err != nil {
		t.Fatal(err)
	}
	from := netip.MustParseAddrPort("10.0.0.1:4000")
	if !ob.Observe("orders", from) || ob.Observe("orders", from) {
		t.Error("want the first observation queued and the second dropped")
	}
	if s := ob.Stats(); s.Observed != 2 || s.Dropped != 1 {
		t.Errorf("stats %+v", s)
	}
	if _, err := NewObserver(ObserverOptions{}); err == nil {
		t.Error("an observer without graph and resolver was made")
	}
}
