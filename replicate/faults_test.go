package replicate

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// partialBytes returns the size of the largest resumable partial in dir.
func partialBytes(dir string) int64 {
	var most int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if isPartialName(e.Name()) {
			if info, err := e.Info(); err == nil && info.Size() > most {
				most = info.Size()
			}
		}
	}
	return most
}

// TestKillTargetAgentMidTransfer SIGKILLs the target agent while a snapshot
// streams a 24 MiB file to it, starts it again on the same port, and checks
// that the same snapshot call resumes from the agent's partial copy rather
// than starting over, and ends with a verified replica.
func TestKillTargetAgentMidTransfer(t *testing.T) {
	const size = 24 << 20
	src, dst := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "big.db"), pattern(21, size))
	ageTree(t, src)
	agent, u := startAgent(t, RoleTarget, dst, "")
	m, err := NewMethod(MethodConfig{Kind: MethodSnapshot, Src: Endpoint{Dir: src}, Dst: Endpoint{Agent: u},
		Token: testToken, Throttle: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		st  Stats
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := m.Full(context.Background())
		done <- result{st, err}
	}()
	waitFor(t, "half the file at the agent", func() bool { return partialBytes(dst) >= size/2 })
	agent.kill9()
	killedAt := partialBytes(dst)
	addr := strings.TrimPrefix(u, "http://")
	restarted, _ := startAgent(t, RoleTarget, dst, addr)

	r := <-done
	if r.err != nil {
		t.Fatalf("snapshot across the kill: %v", r.err)
	}
	t.Logf("killed with %d of %d bytes at the agent; stats %+v", killedAt, size, r.st)
	if r.st.Retries == 0 {
		t.Error("no retry recorded: the kill did not hit the transfer")
	}
	// Resumed: the restarted agent was asked to continue from its partial
	// copy (what it held at the kill, less at most one unverified frame),
	// not to start over.
	resumed := regexp.MustCompile(`msg=receiving path=big.db from=(\d+)`).FindStringSubmatch(restarted.logs())
	if resumed == nil {
		t.Fatalf("the restarted agent received no transfer:\n%s", restarted.logs())
	}
	if from, _ := strconv.ParseInt(resumed[1], 10, 64); from < killedAt-copyChunk-frameHeader {
		t.Errorf("the transfer resumed at %d, but the agent held %d bytes at the kill", from, killedAt)
	}
	assertSameTree(t, src, dst)
}

// TestDamagedTransfer puts a proxy between the round and the agent that
// flips one byte, or cuts the connection, in the middle of a file's body:
// the damage is detected, and the file is re-sent from the last good chunk.
func TestDamagedTransfer(t *testing.T) {
	const size = 6 << 20
	for _, truncate := range []bool{false, true} {
		name := "corrupt"
		if truncate {
			name = "truncated"
		}
		t.Run(name, func(t *testing.T) {
			src, dst := t.TempDir(), t.TempDir()
			writeFile(t, filepath.Join(src, "big.db"), pattern(22, size))
			ageTree(t, src)
			agentURL, reg := inProcessAgentMetrics(t, RoleTarget, dst)
			au, _ := url.Parse(agentURL)
			const cut = 3 << 20
			proxy := startFaultProxy(t, au.Host, cut, truncate)
			m, err := NewMethod(MethodConfig{Kind: MethodSnapshot, Src: Endpoint{Dir: src}, Dst: Endpoint{Agent: proxy.url()}, Token: testToken})
			if err != nil {
				t.Fatal(err)
			}
			st, err := m.Full(context.Background())
			if err != nil {
				t.Fatalf("snapshot: %v", err)
			}
			if !proxy.didFire() || st.Retries == 0 {
				t.Fatalf("fault fired %v, retries %d: the damage went unnoticed", proxy.didFire(), st.Retries)
			}
			// Re-sent from the start, the agent would receive the cut part
			// twice; resumed, it receives the file once plus what was in
			// flight when the damage was found.
			got := receivedBytes(t, reg)
			if got > size+cut/2 {
				t.Errorf("the agent received %d bytes for a %d-byte file damaged at %d: the transfer started over", got, size, cut)
			}
			t.Logf("agent received %d bytes; stats %+v", got, st)
			assertSameTree(t, src, dst)
		})
	}
}

// TestTargetAgentDiskFull gives the target agent a 1 MiB tmpfs: the
// snapshot of 2 MiB fails with ErrDestinationFull and a clear reason, the
// source is untouched and no partial copy is left taking space.
func TestTargetAgentDiskFull(t *testing.T) {
	src, dst := t.TempDir(), tinyDisk(t)
	writeFile(t, filepath.Join(src, "small"), pattern(1, 100<<10))
	writeFile(t, filepath.Join(src, "big.db"), pattern(2, 2<<20))
	before := readTree(t, src, true)
	_, u := startAgent(t, RoleTarget, dst, "")
	for _, viaSource := range []bool{false, true} {
		s := Endpoint{Dir: src}
		if viaSource {
			_, su := startAgent(t, RoleSource, src, "")
			s = Endpoint{Agent: su}
		}
		m, err := NewMethod(MethodConfig{Kind: MethodIncremental, Src: s, Dst: Endpoint{Agent: u}, Token: testToken})
		if err != nil {
			t.Fatal(err)
		}
		_, err = m.Full(context.Background())
		if !errors.Is(err, ErrDestinationFull) {
			t.Fatalf("source agent %v: err = %v, want ErrDestinationFull", viaSource, err)
		}
		if !strings.Contains(err.Error(), "no space left") {
			t.Errorf("err = %v, want the reason (no space left on device)", err)
		}
		t.Logf("source agent %v: %v", viaSource, err)
		if n := partialBytes(dst); n != 0 {
			t.Errorf("a %d-byte partial copy was left on the full disk", n)
		}
		readTree(t, dst, true) // no temp file either
		after := readTree(t, src, true)
		for p, e := range before {
			if after[p] != e {
				t.Errorf("source %s changed", p)
			}
		}
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dst, &fs); err == nil && fs.Bfree == 0 {
		t.Error("the full transfer left the disk full")
	}
}

// TestThrottle checks that a throttled round reads the source no faster
// than the limit: 2 MiB at 4 MiB/s cannot take less than about half a
// second, whatever the machine (this is a lower bound set by the limiter,
// not a speed measurement).
func TestThrottle(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src, "f"), pattern(3, 2<<20))
	m, err := NewMethod(MethodConfig{Kind: MethodSnapshot, Src: Endpoint{Dir: src}, Dst: Endpoint{Dir: dst}, Throttle: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := m.Full(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The limiter starts with one burst (1 MiB) in hand: the other 1 MiB
	// waits for 250 ms at least.
	if d := time.Since(start); d < 240*time.Millisecond {
		t.Errorf("2 MiB at 4 MiB/s took %s: the throttle did not hold", d)
	}
	assertSameTree(t, src, dst)
}
