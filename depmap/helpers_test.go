package depmap

import (
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/phoenixsre/phoenix"
)

// clock is a manual clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// span describes one test span; ids are small numbers for readability and
// parent 0 means a root span. An empty service leaves service.name unset.
type span struct {
	service       string
	trace         uint64
	id, parent    uint64
	failed        bool
	serviceNotStr bool
}

func traceID(n uint64) pcommon.TraceID {
	var b [16]byte
	binary.BigEndian.PutUint64(b[8:], n)
	return b
}

func spanID(n uint64) pcommon.SpanID {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return b
}

// traces builds one ResourceSpans per span, as separate processes would.
func traces(spans ...span) ptrace.Traces {
	td := ptrace.NewTraces()
	for _, s := range spans {
		rs := td.ResourceSpans().AppendEmpty()
		switch {
		case s.serviceNotStr:
			rs.Resource().Attributes().PutInt("service.name", 7)
		case s.service != "":
			rs.Resource().Attributes().PutStr("service.name", s.service)
		}
		sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		sp.SetTraceID(traceID(s.trace))
		sp.SetSpanID(spanID(s.id))
		if s.parent != 0 {
			sp.SetParentSpanID(spanID(s.parent))
		}
		sp.SetName("op")
		if s.failed {
			sp.Status().SetCode(ptrace.StatusCodeError)
		}
	}
	return td
}

func newTestGraph(t testing.TB, o Options) *Graph {
	t.Helper()
	g, err := NewGraph(o)
	if err != nil {
		t.Fatalf("NewGraph: %v", err)
	}
	return g
}

// pairs renders edges as "from->to" for compact comparisons.
func pairs(edges []Edge) []string {
	out := []string{}
	for _, e := range edges {
		out = append(out, string(e.From)+"->"+string(e.To))
	}
	return out
}

func ids(ss ...string) []phoenix.ComponentID {
	if len(ss) == 0 {
		return nil
	}
	out := make([]phoenix.ComponentID, len(ss))
	for i, s := range ss {
		out[i] = phoenix.ComponentID(s)
	}
	return out
}

func id(s string) phoenix.ComponentID { return phoenix.ComponentID(s) }
