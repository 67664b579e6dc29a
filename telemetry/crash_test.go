package telemetry

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
)

// receiverEnv, set to a directory, makes the test binary a receiver
// process: the daemon's push chain (limits, component view, store in that
// directory) behind the remote-write handler, until it is killed.
const receiverEnv = "PHOENIX_TELEMETRY_RECEIVER_DIR"

func runReceiver(dir string) int {
	store, err := OpenStore(StoreConfig{Dir: dir})
	if err == nil {
		var m *Mapper
		if m, err = NewMapper(MappingConfig{}, store); err == nil {
			var lim *Limiter
			if lim, err = NewLimiter(LimitsConfig{}, m); err == nil {
				var h http.Handler
				if h, err = NewRemoteWriteHandler(RemoteWriteConfig{}, lim); err == nil {
					var ln net.Listener
					if ln, err = net.Listen("tcp", "127.0.0.1:0"); err == nil {
						fmt.Printf("URL http://%s\n", ln.Addr())
						err = http.Serve(ln, h) // until killed
					}
				}
			}
		}
	}
	fmt.Fprintln(os.Stderr, "receiver:", err)
	return 2
}

// TestKill9KeepsAcknowledgedSamples kills the receiver process with
// SIGKILL while four senders are writing to it with client_golang's
// remote-write client, reopens its store, and checks, one by one, that
// every sample of every acknowledged request is there with its value.
func TestKill9KeepsAcknowledgedSamples(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), receiverEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "URL ") {
		t.Fatalf("receiver did not start: %q %v", line, err)
	}
	url := strings.TrimSpace(strings.TrimPrefix(line, "URL "))

	const senders, seriesPerSender, killAfter = 4, 50, 300
	base := time.Now().Add(-time.Minute).UnixMilli()
	type ack struct{ sender, seq int }
	var (
		mu       sync.Mutex
		acked    []ack
		unacked  atomic.Int64
		ackCount atomic.Int64
	)
	enough := make(chan struct{})
	var once sync.Once
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			api, err := remoteapi.NewAPI(url, remoteapi.WithAPIBackoff(remoteapi.BackoffConfig{Min: time.Millisecond, Max: time.Millisecond, MaxRetries: 1}))
			if err != nil {
				t.Error(err)
				return
			}
			for seq := 0; ; seq++ {
				req := &prompb.WriteRequest{}
				for k := range seriesPerSender {
					req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
						Labels:  []prompb.Label{{Name: "__name__", Value: "crash_test"}, {Name: "k", Value: strconv.Itoa(k)}, {Name: "sender", Value: strconv.Itoa(s)}},
						Samples: []prompb.Sample{{Timestamp: base + int64(seq), Value: float64(seq*1000 + k)}},
					})
				}
				if _, err := api.Write(ctx, remoteapi.WriteV1MessageType, req); err != nil {
					unacked.Add(1)
					return // the receiver is gone
				}
				mu.Lock()
				acked = append(acked, ack{s, seq})
				mu.Unlock()
				if ackCount.Add(1) >= killAfter {
					once.Do(func() { close(enough) })
				}
			}
		})
	}
	select {
	case <-enough:
	case <-time.After(2 * time.Minute):
		t.Fatal("senders did not get enough acknowledgements")
	}
	// Kill in the middle of the senders' stream: they are all writing.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed = true
	wg.Wait()
	if unacked.Load() == 0 {
		t.Fatal("no request failed: the kill did not happen during ingestion")
	}

	store := openTestStore(t, StoreConfig{Dir: dir})
	have := make(map[string]float64) // "sender/k/t" -> value
	err = store.Select(context.Background(), time.UnixMilli(base), time.UnixMilli(base+1e6), []*labels.Matcher{
		labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, "crash_test")}, func(ls labels.Labels, ts int64, v float64) {
		have[ls.Get("sender")+"/"+ls.Get("k")+"/"+strconv.FormatInt(ts, 10)] = v
	})
	if err != nil {
		t.Fatal(err)
	}
	missing := 0
	for _, a := range acked {
		for k := range seriesPerSender {
			key := fmt.Sprintf("%d/%d/%d", a.sender, k, base+int64(a.seq))
			if v, ok := have[key]; !ok || v != float64(a.seq*1000+k) {
				missing++
				if missing <= 5 {
					t.Errorf("acknowledged sample %s = %v (present %v), want %d", key, v, ok, a.seq*1000+k)
				}
			}
		}
	}
	t.Logf("%d acknowledged requests (%d samples) checked one by one after kill -9, %d missing; %d samples in the store, %d requests cut by the kill",
		len(acked), len(acked)*seriesPerSender, missing, len(have), unacked.Load())
}
