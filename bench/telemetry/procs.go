package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a server process a benchmark started.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	logs *strings.Builder
}

// startProc starts a process; its output is kept for error reports.
func startProc(name string, bin string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), logs: &strings.Builder{}}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// startSelf starts this benchmark binary with a subcommand and waits for
// its first output line, which must start with "ready".
func startSelf(name string, args ...string) (*proc, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), logs: &strings.Builder{}}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s: %w", name, err)
	}
	rd := bufio.NewReader(out)
	line, err := rd.ReadString('\n')
	go func() { _, _ = io.Copy(io.Discard, rd); _ = cmd.Wait(); close(p.done) }()
	if err != nil || !strings.HasPrefix(line, "ready") {
		p.stop()
		return nil, "", fmt.Errorf("%s did not start: %q %v", name, line, err)
	}
	return p, strings.TrimSpace(strings.TrimPrefix(line, "ready")), nil
}

// stop sends SIGTERM, then SIGKILL after 10 s.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitHTTP waits until GET url answers 200.
func waitHTTP(ctx context.Context, p *proc, url string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return fmt.Errorf("%s exited: %s", p.name, p.logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready at %s after 60s", p.name, url)
}

// memory is a process's resident memory: the peak and the current one.
type memory struct{ peak, now int64 }

func readMemory(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	var m memory
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmHWM:":
			m.peak = kb << 10
		case "VmRSS:":
			m.now = kb << 10
		}
	}
	if m.peak == 0 {
		return m, errors.New("no VmHWM in /proc status")
	}
	return m, nil
}

// cpuTime is the user and system CPU a process has used, from
// /proc/PID/stat (in clock ticks of 1/100 s, the Linux USER_HZ).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bad /proc stat")
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
