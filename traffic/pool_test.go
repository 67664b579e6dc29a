package traffic

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

func names2(bs []Backend) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.Name)
	}
	return out
}

// TestPoolScaleOutAndIn plays the scaling engine: under steady load a
// replica is added and joins, then the first one is removed while slow
// requests are in flight on it and killed as soon as RemoveBackend returns.
// No request may fail, and RemoveBackend must wait for the slow ones.
func TestPoolScaleOutAndIn(t *testing.T) {
	b1 := startBackend(t, "orders-1")
	b2 := startBackend(t, "orders-2")
	p := startProxy(t, Config{}, b1.backend())
	l := startLoad(t, p)
	l.awaitServed(t, b1.name, time.Time{}, 50)

	if err := p.AddBackend(b2.backend()); err != nil {
		t.Fatal(err)
	}
	l.awaitServed(t, b2.name, time.Time{}, 50)
	if got := names2(p.Backends()); !slices.Equal(got, []string{b1.name, b2.name}) {
		t.Fatalf("Backends() = %v, want [%s %s]", got, b1.name, b2.name)
	}

	base := "http://" + p.Addr().String()
	var slow sync.WaitGroup
	var mu sync.Mutex
	var onB1 []time.Time // when the slow requests b1 served ended
	var slowErrs []error
	slowGet := func() {
		resp, err := http.Get(base + "/slow/700")
		by := ""
		if err == nil {
			by = resp.Header.Get("X-Served-By")
			if resp.StatusCode != http.StatusOK {
				err = errors.New(resp.Status)
			}
			readAll(t, resp)
		}
		mu.Lock()
		if by == b1.name {
			onB1 = append(onB1, time.Now())
		}
		if err != nil {
			slowErrs = append(slowErrs, err)
		}
		mu.Unlock()
	}
	// Slow requests until orders-1 is serving two of them.
	serving := func() int { n, _ := strconv.Atoi(b1.get(t, "/admin/slow")); return n }
	for i := 0; i < 40 && serving() < 2; i++ {
		slow.Go(slowGet)
		time.Sleep(5 * time.Millisecond) // let the request reach a backend before asking
	}
	removeAt := time.Now()
	if err := p.RemoveBackend(context.Background(), b1.name); err != nil {
		t.Fatalf("RemoveBackend: %v", err)
	}
	removed := time.Now()
	b1.signal(t, syscall.SIGKILL)
	slow.Wait()
	l.awaitServed(t, b2.name, removed, 100)
	l.halt()

	l.checkNoFailures(t)
	if len(slowErrs) > 0 {
		t.Errorf("slow requests failed: %v", slowErrs)
	}
	if n := l.served(b1.name, removeAt); n > 0 {
		t.Errorf("%d requests started after RemoveBackend was called were served by %s", n, b1.name)
	}
	if got := names2(p.Backends()); !slices.Equal(got, []string{b2.name}) {
		t.Errorf("Backends() after removal = %v, want [%s]", got, b2.name)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(onB1) == 0 {
		t.Fatalf("no slow request went to %s; the test proves nothing", b1.name)
	}
	// orders-1 was killed as soon as RemoveBackend returned: had it not
	// waited for them, its slow requests would have failed above.
	t.Logf("%d slow requests finished on %s; RemoveBackend took %s", len(onB1), b1.name, removed.Sub(removeAt))
}

func TestPoolErrors(t *testing.T) {
	b1 := startBackend(t, "orders-1")
	b2 := startBackend(t, "orders-2")
	p := startProxy(t, Config{}, b1.backend())
	ctx := context.Background()

	dupName := Backend{Name: b1.name, URL: b2.url}
	dupURL := Backend{Name: "other", URL: b1.url}
	tcpURL, _ := url.Parse("tcp://127.0.0.1:1")
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"duplicate name", p.AddBackend(dupName), ErrDuplicate},
		{"duplicate url", p.AddBackend(dupURL), ErrDuplicate},
		{"tcp backend on an http proxy", p.AddBackend(Backend{Name: "t", URL: tcpURL}), nil},
		{"remove unknown", p.RemoveBackend(ctx, "nobody"), ErrNotFound},
		{"remove the last", p.RemoveBackend(ctx, b1.name), ErrLastBackend},
	} {
		if tc.err == nil || (tc.want != nil && !errors.Is(tc.err, tc.want)) {
			t.Errorf("%s: err = %v, want %v", tc.name, tc.err, tc.want)
		}
	}

	// A backend that fails its checks never joins and gets no request.
	b2.put(t, "/admin/health/500")
	if err := p.AddBackend(b2.backend()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "checks of the added backend", func() bool {
		s := p.Status()
		return len(s.Pool) == 2 && !s.Pool[1].LastCheck.IsZero()
	})
	for range 20 {
		resp, err := http.Get("http://" + p.Addr().String() + "/who")
		if err != nil {
			t.Fatal(err)
		}
		if who := readAll(t, resp); who != b1.name {
			t.Fatalf("a request went to %q before it joined", who)
		}
	}
	if s := p.Status(); s.Pool[1].Joined {
		t.Errorf("backend failing its checks joined: %+v", s.Pool[1])
	}
	if err := p.RemoveBackend(ctx, b1.name); !errors.Is(err, ErrLastBackend) {
		t.Errorf("removing the only joined backend: err = %v, want ErrLastBackend", err)
	}
	b2.put(t, "/admin/health/200")
	waitFor(t, 5*time.Second, "the added backend to join", func() bool { return p.Status().Pool[1].Joined })
	if err := p.RemoveBackend(ctx, b1.name); err != nil {
		t.Errorf("RemoveBackend once another joined: %v", err)
	}
}

// TestSwitchMovesWholeSet: a switch takes every member of the active set
// out, and the standby alone serves.
func TestSwitchMovesWholeSet(t *testing.T) {
	b1 := startBackend(t, "orders-1")
	b2 := startBackend(t, "orders-2")
	sb := startBackend(t, "orders@standby")
	var routes []RouteChange
	var mu sync.Mutex
	p := startProxy(t, Config{OnRoute: func(c RouteChange) {
		mu.Lock()
		routes = append(routes, c)
		mu.Unlock()
	}}, b1.backend())
	if err := p.AddBackend(b2.backend()); err != nil {
		t.Fatal(err)
	}
	l := startLoad(t, p)
	l.awaitServed(t, b2.name, time.Time{}, 50)
	standby := sb.backend()
	if err := p.SetStandby(&standby); err != nil {
		t.Fatal(err)
	}
	if err := p.Switch(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	switched := time.Now()
	l.awaitServed(t, sb.name, switched, 100)
	l.halt()
	l.checkNoFailures(t)
	if n := l.served(b1.name, switched) + l.served(b2.name, switched); n > 0 {
		t.Errorf("%d requests started after the switch went to the old set", n)
	}
	if got := names2(p.Backends()); !slices.Equal(got, []string{sb.name}) {
		t.Errorf("Backends() = %v, want [%s]", got, sb.name)
	}
	mu.Lock()
	defer mu.Unlock()
	var causes []string
	for _, r := range routes {
		causes = append(causes, r.Cause)
	}
	if !slices.Equal(causes, []string{"start", "join", "switch"}) || !slices.Equal(names2(routes[2].Active), []string{sb.name}) {
		t.Errorf("OnRoute calls = %+v, want start, a join, then a switch to %s", routes, sb.name)
	}
}
