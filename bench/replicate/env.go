package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const benchToken = "bench-agent-token"

// env holds the processes of a run.
type env struct {
	o         options
	tokenFile string
	mu        sync.Mutex
	procs     []*exec.Cmd
	proxies   []net.Listener
}

func startEnv(_ context.Context, o options, _ io.Writer) (*env, error) {
	e := &env{o: o, tokenFile: filepath.Join(o.work, "agent.token")}
	if err := os.WriteFile(e.tokenFile, []byte(benchToken+"\n"), 0o600); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *env) stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.procs {
		stopProc(c)
	}
	e.procs = nil
	for _, l := range e.proxies {
		l.Close()
	}
}

// stopProc stops c: SIGTERM, then SIGKILL after 5 s.
func stopProc(c *exec.Cmd) {
	_ = c.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = c.Process.Kill()
		<-done
	}
}

// stopAgent stops the agent started for dir before the run ends: a target
// agent goes on working after a transfer (it chunks the files it was sent,
// for the next round), which on this one machine would compete with the
// next contender's timing, as it would not on a target host of its own.
func (e *env) stopAgent(dir string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, c := range e.procs {
		if slices.Contains(c.Args, dir) {
			stopProc(c)
			e.procs = slices.Delete(e.procs, i, i+1)
			return
		}
	}
}

// agent starts a phoenix agent and returns its URL.
func (e *env) agent(ctx context.Context, role, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, e.o.phoenix, "agent", "--role", role, "--dir", dir, "--listen", "127.0.0.1:0",
		"--token-file", e.tokenFile)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	e.mu.Lock()
	e.procs = append(e.procs, cmd)
	e.mu.Unlock()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "listening" {
				addr <- rec.Addr
			}
		}
	}()
	select {
	case a := <-addr:
		return "http://" + a, nil
	case <-time.After(20 * time.Second):
		return "", fmt.Errorf("%s agent on %s did not start", role, dir)
	}
}

// rsyncDaemon starts "rsync --daemon" serving each directory as the
// module of its name, and returns its address.
func (e *env) rsyncDaemon(ctx context.Context, modules map[string]string) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	conf := filepath.Join(e.o.work, "rsyncd.conf")
	text := fmt.Sprintf("use chroot = no\npid file = %s\n", filepath.Join(e.o.work, "rsyncd.pid"))
	for name, dir := range modules {
		text += fmt.Sprintf("[%s]\n  path = %s\n  read only = no\n  uid = root\n  gid = root\n", name, dir)
	}
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "rsync", "--daemon", "--no-detach", "--config="+conf, "--address=127.0.0.1", fmt.Sprintf("--port=%d", port))
	if err := cmd.Start(); err != nil {
		return "", err
	}
	e.mu.Lock()
	e.procs = append(e.procs, cmd)
	e.mu.Unlock()
	a := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", a)
		if err == nil {
			c.Close()
			return a, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("rsync daemon did not listen on %s", a)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// counter is a TCP proxy that counts the bytes it carries both ways: the
// same wire measure for rsync and for the agents.
type counter struct {
	ln       net.Listener
	up, down atomic.Int64
}

func (e *env) proxy(target string) (*counter, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.proxies = append(e.proxies, ln)
	e.mu.Unlock()
	c := &counter{ln: ln}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			go pipe(out, in, &c.up)
			go pipe(in, out, &c.down)
		}
	}()
	return c, nil
}

func pipe(dst, src net.Conn, n *atomic.Int64) {
	buf := make([]byte, 256<<10)
	for {
		m, err := src.Read(buf)
		if m > 0 {
			n.Add(int64(m))
			if _, werr := dst.Write(buf[:m]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	} else {
		dst.Close()
	}
}

func (c *counter) addr() string { return c.ln.Addr().String() }

// take returns the bytes carried since the last take.
func (c *counter) take() int64 { return c.up.Swap(0) + c.down.Swap(0) }

// shell runs a shell command and returns its duration.
func shell(ctx context.Context, script string) (time.Duration, error) {
	start := time.Now()
	out, err := exec.CommandContext(ctx, "/bin/sh", "-c", script).CombinedOutput()
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("%s: %v\n%s", script, err, strings.TrimSpace(string(out)))
	}
	return d, nil
}
