package traffic

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

// load is the test's client population: workers sending requests at a
// steady pace through the proxy, never retrying. Every transport error or
// non-2xx answer is a failure.
type load struct {
	base   string
	client *http.Client
	stop   chan struct{}
	wg     sync.WaitGroup

	mu      sync.Mutex
	results []result
	acked   map[string]string // PUT keys the proxy acknowledged, and values
}

type result struct {
	start, end time.Time
	servedBy   string
	err        string // empty when the request succeeded
}

const loadWorkers = 8

func startLoad(t testing.TB, p *Proxy) *load {
	l := &load{
		base: "http://" + p.Addr().String(),
		client: &http.Client{
			Transport: &http.Transport{MaxIdleConnsPerHost: loadWorkers},
			Timeout:   30 * time.Second,
		},
		stop:  make(chan struct{}),
		acked: map[string]string{},
	}
	for w := range loadWorkers {
		l.wg.Go(func() { l.worker(w) })
	}
	t.Cleanup(l.halt)
	return l
}

func (l *load) worker(w int) {
	tick := time.NewTicker(4 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		if i%2 == 0 {
			l.do(http.MethodGet, "/who", "", "")
		} else {
			key := fmt.Sprintf("w%d-%d", w, i)
			l.do(http.MethodPut, "/k/"+key, key, fmt.Sprintf("value of %s", key))
		}
	}
}

func (l *load) do(method, path, key, value string) {
	var body io.Reader
	if value != "" {
		body = bytes.NewBufferString(value)
	}
	req, err := http.NewRequest(method, l.base+path, body)
	if err != nil {
		panic(err)
	}
	r := result{start: time.Now()}
	resp, err := l.client.Do(req)
	if err == nil {
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		r.servedBy = resp.Header.Get("X-Served-By")
		if resp.StatusCode/100 != 2 {
			err = fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
		}
	}
	r.end = time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		r.err = fmt.Sprintf("%s %s: %v", method, path, err)
	} else if key != "" {
		l.acked[key] = value
	}
	l.results = append(l.results, r)
}

// halt stops the workers and waits for their last requests.
func (l *load) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// served counts successful responses from backend, among requests that
// started after since.
func (l *load) served(backend string, since time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.results {
		if r.err == "" && r.servedBy == backend && !r.start.Before(since) {
			n++
		}
	}
	return n
}

func (l *load) awaitServed(t testing.TB, backend string, since time.Time, n int) {
	t.Helper()
	waitFor(t, 15*time.Second, fmt.Sprintf("%d responses from %s", n, backend), func() bool {
		return l.served(backend, since) >= n
	})
}

// checkNoFailures fails the test if any request failed, showing a few.
func (l *load) checkNoFailures(t testing.TB) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var failed []string
	for _, r := range l.results {
		if r.err != "" {
			failed = append(failed, r.err)
		}
	}
	if len(failed) > 0 {
		t.Errorf("%d of %d requests failed; first: %q", len(failed), len(l.results), failed[:min(5, len(failed))])
	}
	t.Logf("%d requests, 0 failed", len(l.results))
}

// firstServed returns when the first successful response from backend
// arrived, among requests that started after since.
func (l *load) firstServed(backend string, since time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first time.Time
	for _, r := range l.results {
		if r.err == "" && r.servedBy == backend && !r.end.Before(since) && (first.IsZero() || r.end.Before(first)) {
			first = r.end
		}
	}
	return first
}

func (l *load) ackedWrites() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]string, len(l.acked))
	for k, v := range l.acked {
		out[k] = v
	}
	return out
}
