package replicate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phoenixsre/phoenix/examples/shop"
)

const shopAdminToken = "test-shop-admin"

// startShop runs a shop service as a child process.
func startShop(t *testing.T, args ...string) *child {
	t.Helper()
	args = append(args, "--listen", "127.0.0.1:0")
	c := startChild(t, "shop", []string{shop.AdminTokenEnv + "=" + shopAdminToken}, args, func(line string) string {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
			return rec.Addr
		}
		return ""
	})
	return c
}

// trackedMethod records whether a round is in flight and how the rounds
// interrupted by a cancel ended.
type trackedMethod struct {
	Method
	inflight    atomic.Bool
	rounds      atomic.Int64
	interrupted atomic.Int64
	lastErr     atomic.Pointer[error] // of a round that failed
}

func (m *trackedMethod) Incremental(ctx context.Context) (Stats, error) {
	m.inflight.Store(true)
	defer m.inflight.Store(false)
	st, err := m.Method.Incremental(ctx)
	if err != nil && ctx.Err() != nil {
		m.interrupted.Add(1)
	} else if err == nil {
		m.rounds.Add(1)
	} else {
		m.lastErr.Store(&err)
	}
	return st, err
}

// writers put unique keys to the current primary and record the ones
// acknowledged (204). Pausing lets in-flight requests finish and holds new
// ones, as the traffic switcher does during a planned switch.
type writers struct {
	client *http.Client
	mu     sync.Mutex
	target string
	paused bool
	cond   *sync.Cond
	busy   int
	acked  map[string][]byte
	failed atomic.Int64
	stop   atomic.Bool
	wg     sync.WaitGroup
}

func newWriters(target string) *writers {
	w := &writers{client: &http.Client{Timeout: 10 * time.Second}, target: target, acked: make(map[string][]byte)}
	w.cond = sync.NewCond(&w.mu)
	return w
}

func valueFor(key string) []byte {
	return bytes.Repeat([]byte(key+";"), 4096/(len(key)+1))
}

func (w *writers) start(n int) {
	for g := range n {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for i := 0; !w.stop.Load(); i++ {
				w.mu.Lock()
				for w.paused {
					w.cond.Wait()
				}
				target := w.target
				w.busy++
				w.mu.Unlock()
				key := fmt.Sprintf("w%d-%d", g, i)
				ok := w.put(target, key)
				w.mu.Lock()
				w.busy--
				if ok {
					w.acked[key] = valueFor(key)
				}
				w.cond.Broadcast()
				w.mu.Unlock()
			}
		}()
	}
}

func (w *writers) put(target, key string) bool {
	req, _ := http.NewRequest(http.MethodPut, target+"/orders/"+key, bytes.NewReader(valueFor(key)))
	resp, err := w.client.Do(req)
	if err != nil {
		w.failed.Add(1)
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		w.failed.Add(1)
	}
	return resp.StatusCode == http.StatusNoContent
}

// pause holds new requests and waits for the in-flight ones.
func (w *writers) pause() {
	w.mu.Lock()
	w.paused = true
	for w.busy > 0 {
		w.cond.Wait()
	}
	w.mu.Unlock()
}

func (w *writers) resumeOn(target string) {
	w.mu.Lock()
	w.target, w.paused = target, false
	w.cond.Broadcast()
	w.mu.Unlock()
}

func (w *writers) ackedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

func (w *writers) finish() map[string][]byte {
	w.stop.Store(true)
	w.resumeOn(w.target)
	w.wg.Wait()
	return w.acked
}

// TestNoLostWritesAcrossSwitch replicates the example shop's orders service
// (its fsynced order log) from a primary to a standby that follows its copy
// of the log, through a target agent process, with an incremental stream
// kept busy by a throttle, and switches in the middle of a round: with the
// primary alive (writes held, in-flight ones drained) or SIGKILLed. After
// the final catch-up and the standby's promotion, every write the primary
// acknowledged is read back from the new primary, key by key.
func TestNoLostWritesAcrossSwitch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the shop and an agent")
	}
	for _, kill := range []bool{false, true} {
		name := "planned switch"
		if kill {
			name = "primary killed"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			inventory := startShop(t, "inventory")
			invURL := "http://" + inventory.addr
			primaryDir, standbyDir := t.TempDir(), t.TempDir()
			primary := startShop(t, "orders", "--data", primaryDir, "--inventory", invURL)
			standby := startShop(t, "orders", "--data", standbyDir, "--inventory", invURL, "--follow")
			_, agentURL := startAgent(t, RoleTarget, standbyDir, "")

			cfg := MethodConfig{Kind: MethodIncremental, Src: Endpoint{Dir: primaryDir}, Dst: Endpoint{Agent: agentURL},
				Token: testToken, Throttle: 256 << 10, Logger: testLogger(t)}
			base, err := NewMethod(cfg)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Throttle = 0
			final, err := NewMethod(cfg) // the catch-up at the switch runs unthrottled
			if err != nil {
				t.Fatal(err)
			}
			if _, err := base.Full(ctx); err != nil {
				t.Fatal(err)
			}
			m := &trackedMethod{Method: base}
			stream, err := NewStream(StreamConfig{Name: "orders", Method: m, Interval: 5 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			sctx, cancel := context.WithCancel(ctx)
			streamDone := make(chan error, 1)
			go func() { streamDone <- stream.Run(sctx) }()

			w := newWriters("http://" + primary.addr)
			w.start(4)
			start := time.Now()
			// Writes outpace the throttle, so rounds run back to back.
			waitFor(t, "two completed rounds and 300 acknowledged writes", func() bool {
				ok := m.rounds.Load() >= 2 && w.ackedCount() >= 300
				if !ok && time.Since(start) > 15*time.Second {
					var last error
					if e := m.lastErr.Load(); e != nil {
						last = *e
					}
					t.Logf("after %v: %d rounds, %d writes acknowledged, %d failed, round in flight %v, last round error %v",
						time.Since(start).Round(time.Second), m.rounds.Load(), w.ackedCount(), w.failed.Load(), m.inflight.Load(), last)
					start = time.Now() // once
				}
				return ok
			})
			waitFor(t, "a round in flight", m.inflight.Load)

			if kill {
				primary.kill9()
			} else {
				w.pause()
			}
			cancel() // the switch stops the stream in the middle of its round
			if err := <-streamDone; err != nil {
				t.Fatal(err)
			}
			if m.interrupted.Load() == 0 {
				t.Fatal("the switch did not interrupt a round: the test did not test the mid-round case")
			}
			st, err := final.Incremental(ctx)
			if err != nil {
				t.Fatalf("final catch-up: %v", err)
			}
			t.Logf("final catch-up: %+v", st)
			promote(t, "http://"+standby.addr)
			if kill {
				w.pause()
			}
			w.resumeOn("http://" + standby.addr)
			before := w.ackedCount()
			waitFor(t, "writes on the new primary", func() bool { return w.ackedCount() >= before+50 })
			acked := w.finish()

			lost := 0
			for key, want := range acked {
				got, code := get(t, "http://"+standby.addr+"/orders/"+key)
				if code != http.StatusOK || !bytes.Equal(got, want) {
					if lost++; lost <= 5 {
						t.Errorf("acknowledged write %s: GET answered %d with %d bytes", key, code, len(got))
					}
				}
			}
			t.Logf("%d acknowledged writes (%d failed requests), %d rounds completed, %d interrupted, %d lost",
				len(acked), w.failed.Load(), m.rounds.Load(), m.interrupted.Load(), lost)
			if lost > 0 {
				t.Fatalf("%d of %d acknowledged writes lost", lost, len(acked))
			}
		})
	}
}

func promote(t *testing.T, base string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/admin/promote", nil)
	req.Header.Set("Authorization", "Bearer "+shopAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("promote: %d %s", resp.StatusCode, body)
	}
	t.Logf("promoted: %s", strings.TrimSpace(string(body)))
}

func get(t *testing.T, u string) ([]byte, int) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return b, resp.StatusCode
}
