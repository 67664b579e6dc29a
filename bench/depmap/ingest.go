package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/phoenixsre/phoenix/depmap"
	"github.com/phoenixsre/phoenix/depmap/depmaptest"
)

// workload is the same export requests for every receiver.
type workload struct {
	bodies [][]byte
	spans  int
	bytes  int
}

func newWorkload(requests, batch int) (*workload, error) {
	batches, spans := depmaptest.Shop(depmaptest.Options{Seed: 1, Requests: requests, BatchSpans: batch, DropOrders: 0.05, Shuffle: 2})
	w := &workload{spans: spans}
	for _, td := range batches {
		b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		if err != nil {
			return nil, err
		}
		w.bodies = append(w.bodies, b)
		w.bytes += len(b)
	}
	return w, nil
}

// send posts every body to url from clients concurrent clients and returns
// when all were answered 2xx.
func send(ctx context.Context, url string, bodies [][]byte, clients int) error {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, DisableCompression: true}, Timeout: time.Minute}
	defer hc.CloseIdleConnections()
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	for range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(bodies) || ctx.Err() != nil {
					return
				}
				if err := post(ctx, hc, url, bodies[i]); err != nil {
					errOnce.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

func post(ctx context.Context, hc *http.Client, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s", url, resp.Status)
	}
	return nil
}

// result is one receiver's figures.
type result struct {
	name       string
	spansPerS  []float64 // per round
	edges      []string  // "from->to", "=>" for async
	heapMB     float64   // heap in use after ingestion, beyond the workload's
	extraNotes string
}

func (r *result) median() float64 {
	s := slices.Clone(r.spansPerS)
	sort.Float64s(s)
	return s[len(s)/2]
}

// benchPhoenix runs rounds of ingestion into a fresh graph behind
// depmap's OTLP/HTTP handler on loopback. The graph's clock can be moved
// past the TTLs afterwards, so that the edge list includes the peers
// that become virtual nodes only when their spans retire.
func benchPhoenix(ctx context.Context, w *workload, clients, rounds int) (*result, error) {
	r := &result{name: "Phoenix (depmap OTLP/HTTP receiver)"}
	for round := range rounds {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		var offset atomic.Int64
		g, err := depmap.NewGraph(depmap.Options{Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }})
		if err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		mux := http.NewServeMux()
		mux.Handle("/v1/traces", depmap.NewOTLPHandler(g, depmap.HandlerOptions{}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()

		start := time.Now()
		err = send(ctx, "http://"+ln.Addr().String()+"/v1/traces", w.bodies, clients)
		elapsed := time.Since(start)
		_ = srv.Close()
		if err != nil {
			return nil, err
		}
		if s := g.Stats(); s.Spans != uint64(w.spans) {
			return nil, fmt.Errorf("round %d: the graph took %d spans of %d (%+v)", round, s.Spans, w.spans, s)
		}
		r.spansPerS = append(r.spansPerS, float64(w.spans)/elapsed.Seconds())
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		r.heapMB = float64(int64(after.HeapInuse)-int64(before.HeapInuse)) / 1e6
		offset.Store(int64(depmap.DefaultIndexTTL + depmap.DefaultPendingTTL))
		r.edges = r.edges[:0]
		for _, e := range g.Edges() {
			r.edges = append(r.edges, edgeString(string(e.From), string(e.To), e.Async))
		}
		s := g.Stats()
		r.extraNotes = fmt.Sprintf("spans taken %d, orphans %d, late %d, peer calls %d, ambiguous %d", s.Spans, s.Orphans, s.Late, s.PeerCalls, s.PeerAmbiguous)
		runtime.KeepAlive(g)
	}
	return r, nil
}

func edgeString(from, to string, async bool) string {
	s := from + "->" + to
	if async {
		s += "=>"
	}
	return s
}
