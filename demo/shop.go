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
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// service is one process of the shop's primary environment.
type service struct {
	name string
	addr string
	cmd  *exec.Cmd

	mu       sync.Mutex
	done     bool
	exitedAt time.Time
	state    *os.ProcessState
	waited   chan struct{}
}

// shopEnv is where the shop's primary services run and whom they call.
type shopEnv struct {
	exe        string
	work       string
	primary    map[string]string // service -> host:port it listens on
	proxy      map[string]string // service -> host:port of Phoenix's proxy for it
	otlp       string            // host:port of Phoenix's OTLP receiver
	token      string            // Phoenix's API token, for the OTLP receiver
	adminToken string            // the shop's admin token
}

// startShop starts inventory, orders and gateway in the primary
// environment. Each calls its dependency through Phoenix's proxy of it, so
// all traffic crosses a proxy, as it would behind a load balancer.
func startShop(ctx context.Context, e shopEnv, say func(format string, args ...any)) (map[string]*service, error) {
	env := []string{
		"SHOP_ADMIN_TOKEN=" + e.adminToken,
		// The OTLP receiver wants the daemon's token (W3C baggage format:
		// the space is percent-encoded).
		"OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20" + e.token,
		"OTEL_BSP_SCHEDULE_DELAY=500",
	}
	dataDir := filepath.Join(e.work, "primary", "orders")
	specs := []struct {
		name string
		args []string
	}{
		{"inventory", []string{"--listen", e.primary["inventory"]}},
		{"orders", []string{"--listen", e.primary["orders"], "--data", dataDir,
			"--inventory", "http://" + e.proxy["inventory"], "--memory-limit", "167772160"}},
		{"gateway", []string{"--listen", e.primary["gateway"], "--orders", "http://" + e.proxy["orders"]}},
	}
	services := map[string]*service{}
	for _, s := range specs {
		args := append([]string{"shop", s.name}, s.args...)
		args = append(args, "--otlp", "http://"+e.otlp, "--environment", "primary")
		svc, err := startService(e.exe, s.name, e.primary[s.name], args, env, filepath.Join(e.work, "logs", s.name+".log"))
		if err != nil {
			stopAll(services)
			return nil, err
		}
		services[s.name] = svc
		if err := svc.waitHealthy(ctx, 15*time.Second); err != nil {
			stopAll(services)
			return nil, err
		}
		say("%s@primary up on %s (pid %d)", s.name, svc.addr, svc.cmd.Process.Pid)
	}
	return services, nil
}

func stopAll(services map[string]*service) {
	for _, s := range services {
		s.stop()
	}
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
	s := &service{name: name, addr: addr, cmd: cmd, waited: make(chan struct{})}
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

func (s *service) waitHealthy(ctx context.Context, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var last error
	for {
		if s.exited() {
			return fmt.Errorf("%s exited at start (%s); see its log", s.name, s.exitReason())
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr+"/healthz", nil)
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
			return fmt.Errorf("%s not healthy after %s: %v", s.name, d, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// fault posts a fault to the service's admin endpoint.
func (s *service) fault(ctx context.Context, token, body string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.addr+"/admin/fault", bytes.NewReader([]byte(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("inject fault into %s: %w", s.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("inject fault into %s: %s: %s", s.name, resp.Status, strings.TrimSpace(string(b)))
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
