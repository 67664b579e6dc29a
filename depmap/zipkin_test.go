package depmap

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/openzipkin/zipkin-go"
	zipkinhttp "github.com/openzipkin/zipkin-go/middleware/http"
	"github.com/openzipkin/zipkin-go/model"
	"github.com/openzipkin/zipkin-go/proto/zipkin_proto3"
	"github.com/openzipkin/zipkin-go/reporter"
	reporterhttp "github.com/openzipkin/zipkin-go/reporter/http"

	"github.com/phoenixsre/phoenix/internal/shareddata"
)

// zipkinData is where the real Zipkin v2 traces are (see its README).
func zipkinData(t testing.TB) string { return shareddata.Require(t, "data/zipkin") }

// TestZipkinRealTraces posts each file of real traces to the Zipkin
// receiver and checks the graph against the edges a reader draws from
// them. Service names are made component names: "coreSrv" is coresrv,
// "yelp_main/api_proxy" is yelp_main-api_proxy. "=>" marks message flow.
func TestZipkinRealTraces(t *testing.T) {
	for _, tc := range []struct {
		file  string
		edges []string
		// virtual nodes and their kind
		virtual map[string]NodeKind
	}{
		{file: "ascend.json", edges: []string{
			// mobile-gateway's two client spans, each shared with the
			// callee's server span; content-service's own client span
			// names no peer and gets no answer: no edge.
			"mobile-gateway->auth-service", "mobile-gateway->content-service",
		}},
		{file: "envoy.json", edges: nil}, // one span with no local service
		{file: "messaging.json", edges: []string{
			// frontend publishes to rabbitmq, backend consumes from it.
			"backend->rabbitmq", "frontend->backend=>", "frontend->rabbitmq",
		}, virtual: map[string]NodeKind{"rabbitmq": NodeMessaging}},
		{file: "messaging2.json", edges: []string{
			// auth-service's shared server span lacks its client half:
			// its parent is mobile-gateway's root span. The producer and
			// consumer are siblings under a span that is not there, so
			// only the broker links them.
			"mobile-gateway->auth-service", "notification-service->rabbitmq", "transfer-service->rabbitmq",
		}, virtual: map[string]NodeKind{"rabbitmq": NodeMessaging}},
		{file: "messaging-kafka.json", edges: []string{
			// servicea consumes, produces and consumes again; serviceb
			// consumes what servicea produced.
			"servicea->kafka", "servicea->serviceb=>", "serviceb->kafka",
		}, virtual: map[string]NodeKind{"kafka": NodeMessaging}},
		{file: "simple-db-p6.json", edges: []string{"bootifulmeters->app_db"},
			virtual: map[string]NodeKind{"app_db": NodeExternal}},
		{file: "skew.json", edges: []string{"servicea->serviceb"}}, // skewed clocks change nothing
		{file: "yelp.json", edges: []string{
			// routing's root span calls "unknown" (which calls the API
			// proxy) and yelp-main; yelp-main runs under the proxy's server
			// span, calls mobile_api, its caches and MySQL; mobile_api
			// calls spectre (answered), blt and memcache (not).
			"mobile_api->blt", "mobile_api->memcache", "mobile_api->spectre",
			"routing->unknown", "routing->yelp-main",
			"unknown->yelp_main-api_proxy", "yelp-main->memcache", "yelp-main->mobile_api", "yelp-main->mysql",
			"yelp_main-api_proxy->yelp-main",
		}, virtual: map[string]NodeKind{"blt": NodeExternal, "memcache": NodeExternal, "mysql": NodeExternal}},
		{file: "smartthings-oauth-authorization.json", edges: []string{
			"bouncer->pusher", "datamgmt->account", "datamgmt->auth", "datamgmt->bouncer", "datamgmt->stlogin",
			"pusher->dove", "pusher->paperboy", "stlogin->auth", "stlogin->datamgmt",
		}},
		{file: "smartthings-mobile-web-install.json", edges: []string{
			"account->auth", "bookie->account", "bookie->auth", "bookie->coresrv", "bookie->execution",
			"bouncer->auth", "bouncer->pusher", "coresrv->auth", "coresrv->strongman",
			"execution->alice", "execution->auth", "execution->bookie", "execution->bouncer", "execution->guardian",
			// platformapi's spans have no kind; they run under the server
			// spans of guardian, stLogin and strongman (Jaeger's rule).
			"guardian->platformapi", "paperboy->auth",
			"platformapi->bookie", "platformapi->execution", "platformapi->gizmo", "platformapi->paperboy",
			"pusher->dove", "pusher->oreck", "stlogin->auth", "stlogin->platformapi", "stlogin->strongman",
			"strongman->auth", "strongman->platformapi", "strongman->stlogin",
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join(zipkinData(t), tc.file))
			if err != nil {
				t.Fatalf("read the traces: %v", err)
			}
			clk := newClock()
			g := newTestGraph(t, Options{Now: clk.Now})
			srv := httptest.NewServer(NewZipkinHandler(g, HandlerOptions{}))
			defer srv.Close()
			resp, err := http.Post(srv.URL+"/api/v2/spans", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("POST: %s, want 202", resp.Status)
			}
			clk.Advance(DefaultPendingTTL + DefaultIndexTTL)
			if diff := cmp.Diff(orEmpty(tc.edges), arrows(g.Edges())); diff != "" {
				t.Errorf("edges (-want +got):\n%s", diff)
			}
			for _, n := range g.Snapshot().Nodes {
				want := NodeService
				if k, ok := tc.virtual[string(n.Name)]; ok {
					want = k
				}
				if n.Kind != want {
					t.Errorf("node %s is a %s, want %s", n.Name, n.Kind, want)
				}
			}
		})
	}
}

// arrows renders edges as "from->to", with "=>" after async ones.
func arrows(edges []Edge) []string {
	out := []string{}
	for _, e := range edges {
		s := string(e.From) + "->" + string(e.To)
		if e.Async {
			s += "=>"
		}
		out = append(out, s)
	}
	return out
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// TestZipkinReporter runs gateway -> orders -> inventory -> stock-db as
// real HTTP servers instrumented with zipkin-go's middleware, reporting
// through zipkin-go's HTTP reporter: gateway in JSON, orders in protobuf,
// inventory in JSON. gateway and inventory share their server spans with
// the caller's client span (Zipkin's default); orders does not. inventory
// records its database query as a client span naming stock-db.
func TestZipkinReporter(t *testing.T) {
	clk := newClock()
	g := newTestGraph(t, Options{Now: clk.Now})
	receiver := httptest.NewServer(NewZipkinHandler(g, HandlerOptions{}))
	defer receiver.Close()
	url := receiver.URL + "/api/v2/spans"

	newTracer := func(service string, shared bool, opts ...reporterhttp.ReporterOption) (*zipkin.Tracer, reporter.Reporter) {
		rep := reporterhttp.NewReporter(url, append(opts, reporterhttp.BatchInterval(50*time.Millisecond))...)
		ep, err := zipkin.NewEndpoint(service, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tr, err := zipkin.NewTracer(rep, zipkin.WithLocalEndpoint(ep), zipkin.WithSharedSpans(shared))
		if err != nil {
			t.Fatal(err)
		}
		return tr, rep
	}
	gwTracer, gwRep := newTracer("gateway", true)
	ordTracer, ordRep := newTracer("orders", false, reporterhttp.Serializer(zipkin_proto3.SpanSerializer{}))
	invTracer, invRep := newTracer("inventory", true)

	inventory := httptest.NewServer(zipkinhttp.NewServerMiddleware(invTracer)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parent := zipkin.SpanFromContext(r.Context())
		db, _ := zipkin.NewEndpoint("stock-db", "127.0.0.1:5432")
		sp := invTracer.StartSpan("select stock", zipkin.Kind(model.Client), zipkin.Parent(parent.Context()), zipkin.RemoteEndpoint(db))
		sp.Finish()
		if r.URL.Query().Has("fail") {
			http.Error(w, "out of stock", http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "3 left")
	})))
	forward := func(tr *zipkin.Tracer, next string) http.Handler {
		client, err := zipkinhttp.NewClient(tr)
		if err != nil {
			t.Fatal(err)
		}
		return zipkinhttp.NewServerMiddleware(tr)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, next+r.URL.RequestURI(), nil)
			resp, err := client.DoWithAppSpan(req, "call")
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			w.WriteHeader(resp.StatusCode)
			_, _ = io.Copy(w, resp.Body)
		}))
	}
	orders := httptest.NewServer(forward(ordTracer, inventory.URL))
	gateway := httptest.NewServer(forward(gwTracer, orders.URL))

	for _, path := range []string{"/buy", "/buy?fail=1", "/buy"} {
		resp, err := http.Get(gateway.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// Servers finish their spans after answering: closing them waits for
	// that; closing the reporters sends what they hold.
	for _, s := range []*httptest.Server{gateway, orders, inventory} {
		s.Close()
	}
	for _, rep := range []reporter.Reporter{gwRep, ordRep, invRep} {
		if err := rep.Close(); err != nil {
			t.Fatalf("reporter: %v", err)
		}
	}
	clk.Advance(DefaultIndexTTL) // stock-db's client spans get no answer

	want := []string{"gateway->orders", "inventory->stock-db", "orders->inventory"}
	edges := g.Edges()
	if diff := cmp.Diff(want, arrows(edges)); diff != "" {
		t.Fatalf("edges (-want +got):\n%s\nstats %+v", diff, g.Stats())
	}
	for _, e := range edges {
		if e.Calls != 3 {
			t.Errorf("%s -> %s: %d calls, want 3", e.From, e.To, e.Calls)
		}
		if e.P50 <= 0 {
			t.Errorf("%s -> %s: no latency measured", e.From, e.To)
		}
	}
	if e := edges[2]; e.Errors != 1 { // orders -> inventory: inventory answered 500 once
		t.Errorf("orders -> inventory: %d errors, want 1", e.Errors)
	}
	if s := g.Stats(); s.Orphans != 0 || s.Pending != 0 {
		t.Errorf("stats %+v, want no orphan", s)
	}
}

func TestZipkinHandlerRefuses(t *testing.T) {
	g := newTestGraph(t, Options{})
	srv := httptest.NewServer(NewZipkinHandler(g, HandlerOptions{MaxBodyBytes: 1024}))
	defer srv.Close()
	for _, tc := range []struct {
		name, method, contentType, encoding string
		body                                []byte
		status                              int
		reason                              string
	}{
		{"get", http.MethodGet, "application/json", "", nil, http.StatusMethodNotAllowed, "send Zipkin v2 spans with POST"},
		{"thrift", http.MethodPost, "application/x-thrift", "", []byte("x"), http.StatusUnsupportedMediaType, "content type"},
		{"deflate", http.MethodPost, "application/json", "deflate", []byte("[]"), http.StatusUnsupportedMediaType, "content encoding"},
		{"too large", http.MethodPost, "application/json", "", bytes.Repeat([]byte(" "), 2048), http.StatusRequestEntityTooLarge, "larger than 1024"},
		{"gzip bomb", http.MethodPost, "application/json", "gzip", gzipped(t, bytes.Repeat([]byte(" "), 4096)), http.StatusRequestEntityTooLarge, "expands beyond"},
		{"not json", http.MethodPost, "application/json", "", []byte("{"), http.StatusBadRequest, "decode Zipkin v2 spans"},
		{"no span id", http.MethodPost, "", "", []byte(`[{"traceId":"0000000000000001"}]`), http.StatusBadRequest, "valid span id required"},
		{"bad proto", http.MethodPost, "application/x-protobuf", "", []byte{0x0a, 0x05, 0x01}, http.StatusBadRequest, "decode Zipkin v2 spans"},
		{"empty list", http.MethodPost, "application/json", "", []byte("[]"), http.StatusAccepted, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := send(t, tc.method, srv.URL+"/api/v2/spans", tc.contentType, tc.encoding, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.status, body)
			}
			if !bytes.Contains(body, []byte(tc.reason)) {
				t.Errorf("body %q does not say %q", body, tc.reason)
			}
		})
	}
}

// FuzzZipkinHandler checks that no body makes the Zipkin receiver panic or
// answer anything but 202 or a 4xx with a reason.
func FuzzZipkinHandler(f *testing.F) {
	// Real traces as seeds where the shared tree is here; the inline seeds
	// below stand on their own.
	if dir, err := shareddata.Find("data/zipkin"); err == nil {
		for _, name := range []string{"skew.json", "messaging.json"} {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b, false)
		}
	}
	proto, err := zipkin_proto3.SpanSerializer{}.Serialize([]*model.SpanModel{{
		SpanContext: model.SpanContext{TraceID: model.TraceID{Low: 1}, ID: 2},
		Kind:        model.Client, LocalEndpoint: &model.Endpoint{ServiceName: "a"},
		RemoteEndpoint: &model.Endpoint{ServiceName: "db"},
	}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(proto, true)
	f.Add([]byte(`[{"traceId":"1","id":"2","parentId":"","kind":"SERVER","shared":true}]`), false)
	g := newTestGraph(f, Options{MaxIndex: 64, MaxPending: 64, MaxEdges: 16})
	h := NewZipkinHandler(g, HandlerOptions{MaxBodyBytes: 1 << 16})
	f.Fuzz(func(t *testing.T, body []byte, isProto bool) {
		ct := "application/json"
		if isProto {
			ct = "application/x-protobuf"
		}
		req := httptest.NewRequestWithContext(context.Background(), http.MethodPost, "/api/v2/spans", bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch {
		case w.Code == http.StatusAccepted:
		case w.Code >= 400 && w.Code < 500 && w.Body.Len() > 0:
		default:
			t.Fatalf("status %d body %q", w.Code, w.Body.String())
		}
	})
}
