package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// service is one process of the shop's primary environment.
type service struct {
	svcName string
	address string
	cmd     *exec.Cmd

	mu       sync.Mutex
	done     bool
	exitedAt time.Time
	state    *os.ProcessState
	waited   chan struct{}
}

// shopEnv says whom the shop's primary services call: Phoenix's proxies and
// its OTLP receiver.
type shopEnv struct {
	proxy      map[string]string // service -> host:port of Phoenix's proxy for it
	otlp       string            // host:port of Phoenix's OTLP receiver
	token      string            // Phoenix's API token, for the OTLP receiver
	adminToken string            // the shop's admin token
}

// shopService is one running primary service, whatever runs it.
type shopService interface {
	name() string
	addr() string // host:port
	// detail says what runs it, for people: "pid 42", "container x".
	detail() string
	exited() bool
	// kill kills it with SIGKILL, as a crash would.
	kill(ctx context.Context) error
	exitTime() time.Time
	exitReason() string
	stop()
}

// primaryEnv runs the shop's primary environment: local processes or
// containers.
type primaryEnv interface {
	// start runs `phoenix shop NAME` with args (it adds --listen, and
	// --data for a stateful service) and env; it returns the service and
	// its data directory as the controller can read it.
	start(ctx context.Context, name string, args, env []string, stateful bool) (shopService, string, error)
	// host is the address Phoenix's proxies must listen on for the
	// services to reach them.
	host() string
	close()
}

// startShop starts inventory, orders and gateway in the primary
// environment. Each calls its dependency through Phoenix's proxy of it, so
// all traffic crosses a proxy, as it would behind a load balancer. It
// returns the services and orders' data directory.
func startShop(ctx context.Context, pe primaryEnv, e shopEnv, say func(format string, args ...any)) (map[string]shopService, string, error) {
	env := []string{
		"SHOP_ADMIN_TOKEN=" + e.adminToken,
		// The OTLP receiver wants the daemon's token (W3C baggage format:
		// the space is percent-encoded).
		"OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20" + e.token,
		"OTEL_BSP_SCHEDULE_DELAY=500",
	}
	specs := []struct {
		name     string
		args     []string
		stateful bool
	}{
		{"inventory", nil, false},
		{"orders", []string{"--inventory", "http://" + e.proxy["inventory"], "--memory-limit", "167772160"}, true},
		{"gateway", []string{"--orders", "http://" + e.proxy["orders"]}, false},
	}
	services := map[string]shopService{}
	var ordersDir string
	for _, s := range specs {
		args := append(s.args, "--otlp", "http://"+e.otlp, "--environment", "primary")
		svc, dataDir, err := pe.start(ctx, s.name, args, env, s.stateful)
		if err != nil {
			stopAll(services)
			return nil, "", err
		}
		services[s.name] = svc
		if s.stateful {
			ordersDir = dataDir
		}
		if err := waitHealthy(ctx, svc, 30*time.Second); err != nil {
			stopAll(services)
			return nil, "", err
		}
		say("%s@primary up on %s (%s)", s.name, svc.addr(), svc.detail())
	}
	return services, ordersDir, nil
}

func stopAll(services map[string]shopService) {
	for _, s := range services {
		s.stop()
	}
}

// processEnv runs the primary services as local processes.
type processEnv struct {
	exe   string
	work  string
	ports *portSet // the run's, so that no port is found twice; nil for none
}

func (p processEnv) host() string { return "127.0.0.1" }
func (p processEnv) close()       {}

func (p processEnv) start(ctx context.Context, name string, args, env []string, stateful bool) (shopService, string, error) {
	ports, err := p.ports.free("127.0.0.1", 1)
	if err != nil {
		return nil, "", err
	}
	var dataDir string
	full := append([]string{"shop", name, "--listen", ports[0]}, args...)
	if stateful {
		dataDir = filepath.Join(p.work, "primary", name)
		full = append(full, "--data", dataDir)
	}
	svc, err := startService(p.exe, name, ports[0], full, env, filepath.Join(p.work, "logs", name+".log"))
	return svc, dataDir, err
}

func startService(exe, name, addr string, args, env []string, logPath string) (*service, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &service{svcName: name, address: addr, cmd: cmd, waited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		s.mu.Lock()
		s.done, s.exitedAt, s.state = true, time.Now(), cmd.ProcessState
		s.mu.Unlock()
		close(s.waited)
	}()
	return s, nil
}

func (s *service) name() string   { return s.svcName }
func (s *service) addr() string   { return s.address }
func (s *service) detail() string { return "pid " + strconv.Itoa(s.cmd.Process.Pid) }

func (s *service) kill(context.Context) error {
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill %s: %w", s.svcName, err)
	}
	return nil
}

func (s *service) exited() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done
}

func (s *service) exitTime() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exitedAt
}

func (s *service) exitReason() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == nil {
		return "running"
	}
	if ws, ok := s.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by " + unix.SignalName(ws.Signal())
	}
	return s.state.String()
}

// waitHealthy polls a service's /healthz until it answers 200.
func waitHealthy(ctx context.Context, s shopService, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var last error
	for {
		if s.exited() {
			return fmt.Errorf("%s exited at start (%s); see its log", s.name(), s.exitReason())
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr()+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy after %s: %v", s.name(), d, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// fault posts a fault to the service's admin endpoint.
func fault(ctx context.Context, s shopService, token, body string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.addr()+"/admin/fault", bytes.NewReader([]byte(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("inject fault into %s: %w", s.name(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("inject fault into %s: %s: %s", s.name(), resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// stop ends the service: SIGTERM to its group, SIGKILL after 3 s.
func (s *service) stop() {
	if s.exited() {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.waited:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.waited
	}
}
