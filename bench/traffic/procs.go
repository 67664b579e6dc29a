package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/phoenixsre/phoenix/traffic"
)

// backendCmd serves the benchmark's backend: /who names it, /k/{id} stores
// a value, /healthz answers 200. It prints "ADDR host:port" when ready.
func backendCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	name := fs.String("name", "backend", "the name /who answers and X-Served-By carries")
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	kv := map[string][]byte{}
	mux := http.NewServeMux()
	who := []byte(*name)
	mux.HandleFunc("GET /who", func(w http.ResponseWriter, r *http.Request) { w.Write(who) })
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("PUT /k/{id}", func(w http.ResponseWriter, r *http.Request) {
		v, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		kv[r.PathValue("id")] = v
		mu.Unlock()
		w.Write([]byte("stored"))
	})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", *name)
		mux.ServeHTTP(w, r)
	})}
	fmt.Printf("ADDR %s\n", ln.Addr())
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// proxyCmd runs Phoenix's proxy in its own process, as HAProxy runs in
// its own. With -standby it also plays the control loop (see switchOnFailure).
func proxyCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	backend := fs.String("backend", "", "the active backend, name=URL")
	standby := fs.String("standby", "", "the standby, name=URL; the proxy switches to it when the failure is confirmed")
	verbose := fs.Bool("v", false, "log the proxy's decisions")
	tcp := fs.Bool("tcp", false, "proxy TCP connections (tcp:// backends) rather than HTTP requests")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the proxy to this file (until it stops)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	raiseFileLimit()
	proto := traffic.HTTP
	if *tcp {
		proto = traffic.TCP
	}
	b, err := traffic.ParseBackend(*backend)
	if err != nil {
		return err
	}
	level := slog.LevelError
	if *verbose {
		level = slog.LevelInfo
	}
	health := make(chan struct{}, 1)
	p, err := traffic.New(traffic.Config{
		Component:      "bench",
		Protocol:       proto,
		Listen:         *listen,
		HealthInterval: 200 * time.Millisecond,
		HealthTimeout:  150 * time.Millisecond,
		Logger:         slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		OnHealth: func(traffic.Backend, bool, string) {
			select {
			case health <- struct{}{}:
			default:
			}
		},
	}, b)
	if err != nil {
		return err
	}
	if *standby != "" {
		sb, err := traffic.ParseBackend(*standby)
		if err != nil {
			return err
		}
		if err := p.SetStandby(&sb); err != nil {
			return err
		}
		go switchOnFailure(ctx, p, health)
	}
	fmt.Printf("ADDR %s\n", p.Addr())
	return p.Run(ctx)
}

// switchOnFailure is a stand-in for the control loop: on every health
// transition it asks traffic.Confirmation whether the active has failed, and
// switches when it has. There is no telemetry or prediction here, so one
// signal (the proxy's health verdict) is required; the daemon's default
// asks for two.
func switchOnFailure(ctx context.Context, p *traffic.Proxy, health <-chan struct{}) {
	confirm := traffic.Confirmation{MinSignals: 1}.WithDefaults()
	for {
		select {
		case <-ctx.Done():
			return
		case <-health:
		}
		if v := confirm.Confirm(p.Status().Evidence(0, 0)); !v.Confirmed {
			continue
		}
		if err := p.Switch(ctx, nil); err != nil && !errors.Is(err, traffic.ErrNoStandby) {
			fmt.Fprintln(os.Stderr, "switch:", err)
		}
	}
}

// raiseFileLimit lifts the open-file limit as far as root may: requests held
// through a failover each keep two sockets open.
func raiseFileLimit() {
	lim := syscall.Rlimit{Cur: 1 << 20, Max: 1 << 20}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) != nil {
		var cur syscall.Rlimit
		if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &cur) == nil {
			cur.Cur = cur.Max
			syscall.Setrlimit(syscall.RLIMIT_NOFILE, &cur)
		}
	}
}

// proc is a child process that reported its address.
type proc struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

// startSelf starts this program with args, optionally wrapped (ip netns
// exec ...), and waits for its "ADDR" line.
func startSelf(ctx context.Context, wrap []string, args ...string) (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	argv := append(append(append([]string(nil), wrap...), self), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the benchmark
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %v: %w", argv, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
		io.Copy(io.Discard, out)
	}()
	select {
	case s := <-line:
		p.addr = strings.TrimSpace(strings.TrimPrefix(s, "ADDR "))
	case <-time.After(20 * time.Second):
		p.kill()
		return nil, fmt.Errorf("%v did not report its address", argv)
	}
	if p.addr == "" {
		p.kill()
		return nil, fmt.Errorf("%v exited before reporting its address", argv)
	}
	return p, nil
}

func (p *proc) signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGCONT)
	p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) url() *url.URL { return &url.URL{Scheme: "http", Host: p.addr} }

// startHAProxy runs Debian's haproxy with cfg in the foreground until ctx
// ends, and returns once it listens on addr.
func startHAProxy(ctx context.Context, cfg, addr string) error {
	path, err := exec.LookPath("haproxy")
	if err != nil {
		return errors.New("haproxy is not installed: apt-get install -y haproxy")
	}
	f, err := os.CreateTemp("", "phoenix-bench-haproxy-*.cfg")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // read at start; gone once haproxy listens
	if _, err := f.WriteString(cfg); err != nil {
		return err
	}
	f.Close()
	if out, err := exec.Command(path, "-c", "-f", f.Name()).CombinedOutput(); err != nil {
		return fmt.Errorf("haproxy config: %v: %s", err, out)
	}
	cmd := exec.CommandContext(ctx, path, "-db", "-f", f.Name())
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		cmd.Process.Kill()
		cmd.Wait()
	}()
	return waitListening(addr)
}

// waitListening waits until addr accepts connections.
func waitListening(addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
