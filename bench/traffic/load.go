package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// load is an open-loop generator: requests are sent on a fixed schedule,
// each in its own goroutine, whatever the answers, and a request's latency
// counts from when it was due (so a stall is not hidden by the client
// waiting: no coordinated omission). Every other request is a PUT of a new
// key (idempotent), the others GET /who. Every transport error or non-2xx
// answer is a failure.
type load struct {
	base   string
	rate   int
	client *http.Client
	stop   chan struct{}
	wg     sync.WaitGroup
	sent   sync.WaitGroup

	mu      sync.Mutex
	results []result
}

type result struct {
	due, end time.Time
	servedBy string
	err      string
}

func startLoad(base string, rate int, timeout time.Duration) *load {
	l := &load{
		base: base,
		rate: rate,
		client: &http.Client{
			Transport: &http.Transport{MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute},
			Timeout:   timeout,
		},
		stop: make(chan struct{}),
	}
	l.wg.Go(l.schedule)
	return l
}

func (l *load) schedule() {
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	n := 0
	for {
		select {
		case <-l.stop:
			return
		case now := <-tick.C:
			due := int(now.Sub(start).Seconds() * float64(l.rate))
			for ; n < due; n++ {
				at := start.Add(time.Duration(float64(n) / float64(l.rate) * float64(time.Second)))
				l.sent.Go(func() { l.do(n, at) })
			}
		}
	}
}

func (l *load) do(n int, due time.Time) {
	var req *http.Request
	if n%2 == 0 {
		req, _ = http.NewRequest(http.MethodGet, l.base+"/who", nil)
	} else {
		req, _ = http.NewRequest(http.MethodPut, l.base+"/k/"+strconv.Itoa(n), bytes.NewReader([]byte("value "+strconv.Itoa(n))))
	}
	r := result{due: due}
	resp, err := l.client.Do(req)
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		r.servedBy = resp.Header.Get("X-Served-By")
		if resp.StatusCode/100 != 2 {
			err = fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(body))
		}
	}
	r.end = time.Now()
	if err != nil {
		r.err = fmt.Sprintf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	l.mu.Lock()
	l.results = append(l.results, r)
	l.mu.Unlock()
}

// halt stops sending and waits for every request sent to end.
func (l *load) halt() {
	close(l.stop)
	l.wg.Wait()
	l.sent.Wait()
	l.client.CloseIdleConnections()
}

// firstServed is when the first successful answer from backend ended,
// among those ending after since.
func (l *load) firstServed(backend string, since time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first time.Time
	for _, r := range l.results {
		if r.err == "" && r.servedBy == backend && r.end.After(since) && (first.IsZero() || r.end.Before(first)) {
			first = r.end
		}
	}
	return first
}

// summary is what a run reports.
type summary struct {
	Requests, Failed int     // Requests counts those summarized, Failed every failure
	Rate             float64 // achieved, requests per second
	P50, P99, Max    time.Duration
	FirstErrors      []string
}

// summarize reports on the requests due from since on (the warm-up's cold
// connections are left out), and counts every failure.
func (l *load) summarize(since time.Time) summary {
	l.mu.Lock()
	defer l.mu.Unlock()
	var s summary
	lat := make([]time.Duration, 0, len(l.results))
	var first, last time.Time
	for i, r := range l.results {
		if i == 0 {
			first, last = r.due, r.due
		}
		first, last = minTime(first, r.due), maxTime(last, r.due)
		if r.err == "" && r.due.Before(since) {
			continue
		}
		s.Requests++
		lat = append(lat, r.end.Sub(r.due))
		if r.err != "" {
			s.Failed++
			if len(s.FirstErrors) < 3 {
				s.FirstErrors = append(s.FirstErrors, r.err)
			}
		}
	}
	if len(lat) == 0 {
		return s
	}
	slices.Sort(lat)
	s.P50, s.P99, s.Max = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	if d := last.Sub(first).Seconds(); d > 0 {
		s.Rate = float64(len(l.results)) / d // over the whole run
	}
	return s
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// timeline prints, per slot of width from start, the requests due in it,
// how many failed, their p99 latency and who served them; slots are labelled
// relative to zero.
func (l *load) timeline(w io.Writer, start, zero time.Time, width time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	type slot struct {
		lat    []time.Duration
		failed int
		by     map[string]int
	}
	slots := map[int]*slot{}
	maxI := 0
	for _, r := range l.results {
		i := int(r.due.Sub(start) / width)
		s := slots[i]
		if s == nil {
			s = &slot{by: map[string]int{}}
			slots[i] = s
		}
		s.lat = append(s.lat, r.end.Sub(r.due))
		if r.err != "" {
			s.failed++
		}
		s.by[r.servedBy]++
		maxI = max(maxI, i)
	}
	for i := 0; i <= maxI; i++ {
		s := slots[i]
		if s == nil {
			continue
		}
		slices.Sort(s.lat)
		at := start.Add(time.Duration(i) * width).Sub(zero).Round(time.Millisecond)
		fmt.Fprintf(w, "  %8s  n=%-5d failed=%-4d p99=%-10s served=%v\n", at, len(s.lat), s.failed,
			s.lat[len(s.lat)*99/100].Round(100*time.Microsecond), s.by)
	}
}
