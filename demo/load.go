package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// loadGen sends steady traffic through the gateway's proxy, as users would:
// it never retries, and every non-2xx answer or transport error is a failed
// request. Half the requests write a new key, half read back a key written
// earlier and check its value. Acknowledged writes are remembered so that
// every one of them can be read back at the end.
type loadGen struct {
	base    string
	rate    int
	workers int
	client  *http.Client

	total, failed atomic.Int64

	mu       sync.Mutex
	acked    map[string]string
	keys     []string
	failures map[string]int // reason -> count
	firstErr time.Time
	lastErr  time.Time
	next     int
}

func newLoadGen(base string, rate, workers int) *loadGen {
	return &loadGen{
		base: base, rate: rate, workers: workers,
		client: &http.Client{
			// Longer than the proxy's hold: a held request is slow, not failed.
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				MaxIdleConns:        workers * 2,
				MaxIdleConnsPerHost: workers * 2,
				IdleConnTimeout:     30 * time.Second,
			},
		},
		acked:    map[string]string{},
		failures: map[string]int{},
	}
}

// run sends requests at the configured rate until ctx ends.
func (g *loadGen) run(ctx context.Context) {
	jobs := make(chan struct{})
	var wg sync.WaitGroup
	for range g.workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-jobs:
					g.one(ctx)
				}
			}
		})
	}
	tick := time.NewTicker(time.Second / time.Duration(g.rate))
	defer tick.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			select {
			case jobs <- struct{}{}:
			case <-ctx.Done():
				break loop
			default:
				// Every worker is busy (requests are being held): the tick
				// is dropped rather than queued, as an open-loop client
				// with a fixed concurrency would.
			}
		}
	}
	wg.Wait()
}

func (g *loadGen) one(ctx context.Context) {
	g.mu.Lock()
	write := len(g.keys) == 0 || g.next%2 == 0
	g.next++
	var key, want string
	if write {
		key = fmt.Sprintf("key-%07d", g.next)
		want = fmt.Sprintf("value-%d-%x", g.next, rand.Uint64())
	} else {
		key = g.keys[rand.IntN(len(g.keys))]
		want = g.acked[key]
	}
	g.mu.Unlock()

	// A request cut short by the end of the run is not counted either way.
	reqCtx := context.WithoutCancel(ctx)
	var err error
	if write {
		err = g.put(reqCtx, key, want)
	} else {
		err = g.get(reqCtx, key, want)
	}
	g.total.Add(1)
	if err != nil {
		g.failed.Add(1)
		g.mu.Lock()
		g.failures[err.Error()]++
		now := time.Now()
		if g.firstErr.IsZero() {
			g.firstErr = now
		}
		g.lastErr = now
		g.mu.Unlock()
		return
	}
	if write {
		g.mu.Lock()
		g.acked[key] = want
		g.keys = append(g.keys, key)
		g.mu.Unlock()
	}
}

func (g *loadGen) put(ctx context.Context, key, value string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, g.base+"/orders/"+key, bytes.NewReader([]byte(value)))
	if err != nil {
		return err
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return fmt.Errorf("PUT: transport error")
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("PUT: %s", resp.Status)
	}
	return nil
}

func (g *loadGen) get(ctx context.Context, key, want string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/orders/"+key, nil)
	if err != nil {
		return err
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return fmt.Errorf("GET: transport error")
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return fmt.Errorf("GET: body cut off")
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET: %s", resp.Status)
	}
	if string(body) != want {
		return fmt.Errorf("GET: wrong value")
	}
	return nil
}

// verify reads every acknowledged key back and returns how many are missing
// or wrong. A read that fails in transport is tried again (this is the
// audit, not the users' traffic); a 404 or a wrong value is a lost write.
func (g *loadGen) verify(ctx context.Context) (written, lost int64, err error) {
	g.mu.Lock()
	keys := append([]string(nil), g.keys...)
	acked := make(map[string]string, len(g.acked))
	for k, v := range g.acked {
		acked[k] = v
	}
	g.mu.Unlock()

	var lostN atomic.Int64
	var firstErr error
	var errOnce sync.Once
	work := make(chan string)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for k := range work {
				ok, err := g.readBack(ctx, k, acked[k])
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					continue
				}
				if !ok {
					lostN.Add(1)
				}
			}
		})
	}
	for _, k := range keys {
		select {
		case work <- k:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if ctx.Err() != nil {
		return int64(len(keys)), lostN.Load(), ctx.Err()
	}
	return int64(len(keys)), lostN.Load(), firstErr
}

func (g *loadGen) readBack(ctx context.Context, key, want string) (bool, error) {
	var last error
	for attempt := 0; attempt < 5; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/orders/"+key, nil)
		if err != nil {
			return false, err
		}
		resp, err := g.client.Do(req)
		if err != nil {
			last = err
			time.Sleep(100 * time.Millisecond)
			continue
		}
		body, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		switch {
		case rerr != nil:
			last = rerr
			continue
		case resp.StatusCode == http.StatusNotFound:
			return false, nil
		case resp.StatusCode/100 != 2:
			last = fmt.Errorf("read back %s: %s", key, resp.Status)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		return string(body) == want, nil
	}
	return false, fmt.Errorf("read back %s: %w", key, last)
}

func (g *loadGen) failureReasons() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]int, len(g.failures))
	for k, v := range g.failures {
		out[k] = v
	}
	return out
}
