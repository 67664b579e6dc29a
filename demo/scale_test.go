package demo

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/config"
	"github.com/phoenixsre/phoenix/daemon"
)

// TestScaleAfterSwitch: a stateless component (the shop's inventory) is
// killed; Phoenix rebuilds it in the secondary environment and switches;
// demand is then more than one replica serves, so the scaling engine adds
// replicas of it to the proxy's pool, with no failed request throughout.
func TestScaleAfterSwitch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes for about 20 s; not in -short mode")
	}
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pe := processEnv{exe: phoenixBin, work: work}
	inv, _, err := pe.start(ctx, "inventory", nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer inv.stop()
	if err := waitHealthy(ctx, inv, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(work, "state")
	cfg, err := config.Parse(fmt.Appendf(nil, `
state_dir: %s
api: {listen: 127.0.0.1:0}
receivers: {otlp_http: {listen: ""}}
telemetry: {scrape_interval: 500ms, scrape_timeout: 400ms}
traffic: {health_interval: 300ms, health_timeout: 300ms}
components:
  - name: inventory
    proxy: 127.0.0.1:0
    primary: {url: "http://%s"}
    replica: {command: ["{phoenix}", "shop", "inventory", "--listen", "{addr}", "--environment", "secondary"]}
    scale: {enabled: true, policy: hpa, capacity_rps: 30, max_replicas: 6, measure: 1s, sync: 1s, startup: 1s}
`, stateDir, inv.addr()))
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.New(ctx, cfg, daemon.Options{Executable: phoenixBin})
	if err != nil {
		t.Fatal(err)
	}
	dctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(dctx) }()
	defer func() {
		stop()
		<-done
		releaseSecondary(cfg.Secondary.Process.Root)
	}()

	// 100 requests/s, no retries, every failure counted.
	var total, failed atomic.Int64
	lctx, lstop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for w := range 10 {
		wg.Go(func() {
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-lctx.Done():
					return
				case <-tick.C:
				}
				resp, err := client.Get(fmt.Sprintf("http://%s/stock/sku-%d", d.ProxyAddr("inventory"), w))
				total.Add(1)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
			}
		})
	}
	time.Sleep(3 * time.Second)
	inv.kill(ctx)

	pool := func() int {
		for _, c := range d.Controller().Status().Components {
			if c.Name == "inventory" {
				return len(c.Traffic.Pool)
			}
		}
		return 0
	}
	deadline := time.Now().Add(60 * time.Second)
	for pool() < 3 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	lstop()
	wg.Wait()
	evs, _ := d.Store().Events(0, 0)
	var switched, scaled bool
	for _, e := range evs {
		t.Logf("%s %s %s", e.Kind, e.Component, e.Message)
		switched = switched || e.Kind == phoenix.EventSwitched
		scaled = scaled || e.Kind == phoenix.EventScaled
	}
	if !switched || !scaled {
		t.Fatalf("switched %v, scaling started %v", switched, scaled)
	}
	if n := pool(); n < 3 {
		t.Errorf("pool of %d backends; 100 requests/s at 30 per replica needs at least 3", n)
	}
	t.Logf("%d requests, %d failed", total.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed", failed.Load(), total.Load())
	}
}
