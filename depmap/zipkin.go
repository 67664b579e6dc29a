package depmap

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"time"

	"github.com/openzipkin/zipkin-go/model"
	"github.com/openzipkin/zipkin-go/proto/zipkin_proto3"
)

// ZipkinSink takes decoded Zipkin v2 spans. *Graph is one.
type ZipkinSink interface {
	AddZipkinSpans(spans []*model.SpanModel) int
}

var _ ZipkinSink = (*Graph)(nil)

// NewZipkinHandler returns the Zipkin v2 span receiver: mount it at
// /api/v2/spans (it does not look at the path). It accepts POST with
// Content-Type application/json (also assumed when there is none) or
// application/x-protobuf, optionally Content-Encoding gzip, decodes the
// list of spans with openzipkin/zipkin-go's model and proto3 decoder, hands
// them to sink and answers 202 Accepted, as a Zipkin server does. In JSON a
// span that does not decode is skipped, not the whole list (see
// decodeZipkinJSON). Errors are 405, 415, 413 and 400 with a plain-text
// reason. It does not authenticate: wrap it.
func NewZipkinHandler(sink ZipkinSink, o HandlerOptions) http.Handler {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &zipkinHandler{sink: sink, max: o.MaxBodyBytes, log: o.Logger}
}

type zipkinHandler struct {
	sink ZipkinSink
	max  int64
	log  *slog.Logger
}

func (h *zipkinHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, r, &requestError{http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: send Zipkin v2 spans with POST", r.Method)})
		return
	}
	ct := r.Header.Get("Content-Type")
	proto := false
	if ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		switch {
		case err == nil && mt == contentTypeJSON:
		case err == nil && mt == contentTypeProto:
			proto = true
		default:
			h.fail(w, r, &requestError{http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q not supported: use %s or %s", ct, contentTypeJSON, contentTypeProto)})
			return
		}
	}
	body, rerr := readBody(w, r, h.max)
	if rerr != nil {
		h.fail(w, r, rerr)
		return
	}
	var (
		spans   []*model.SpanModel
		skipped int
		err     error
	)
	if proto {
		spans, err = zipkin_proto3.ParseSpans(body, false)
	} else {
		spans, skipped, err = decodeZipkinJSON(body)
	}
	if err != nil {
		h.fail(w, r, &requestError{http.StatusBadRequest, fmt.Sprintf("decode Zipkin v2 spans: %v", err)})
		return
	}
	taken := h.sink.AddZipkinSpans(spans)
	h.log.Debug("zipkin spans received", "remote", r.RemoteAddr, "spans", len(spans), "taken", taken, "undecodable", skipped)
	w.WriteHeader(http.StatusAccepted)
}

// decodeZipkinJSON decodes a JSON list of spans one span at a time, so that
// one bad span does not cost the others: a span that does not decode is
// decoded again without its endpoints' IP addresses (real reporters send
// some Go does not parse, such as 52.0.0.04, and the graph needs none), and
// skipped if it still fails. It fails when the list is not a JSON array,
// or when no span of a non-empty list decodes.
func decodeZipkinJSON(body []byte) ([]*model.SpanModel, int, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, 0, err
	}
	spans := make([]*model.SpanModel, 0, len(raw))
	var firstErr error
	for _, r := range raw {
		s := new(model.SpanModel)
		err := json.Unmarshal(r, s)
		if err != nil {
			s = new(model.SpanModel)
			err = json.Unmarshal(withoutEndpointIPs(r), s)
		}
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		spans = append(spans, s)
	}
	if len(spans) == 0 && firstErr != nil {
		return nil, len(raw), firstErr
	}
	return spans, len(raw) - len(spans), nil
}

// withoutEndpointIPs returns span with the ipv4 and ipv6 fields of its
// endpoints removed, or span itself if it is not a JSON object.
func withoutEndpointIPs(span []byte) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(span, &m) != nil {
		return span
	}
	for _, k := range []string{"localEndpoint", "remoteEndpoint"} {
		var ep map[string]json.RawMessage
		if json.Unmarshal(m[k], &ep) != nil {
			continue
		}
		delete(ep, "ipv4")
		delete(ep, "ipv6")
		b, err := json.Marshal(ep)
		if err != nil {
			continue
		}
		m[k] = b
	}
	b, err := json.Marshal(m)
	if err != nil {
		return span
	}
	return b
}

func (h *zipkinHandler) fail(w http.ResponseWriter, r *http.Request, e *requestError) {
	h.log.Debug("zipkin request refused", "remote", r.RemoteAddr, "status", e.status, "reason", e.msg)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.Error(w, e.msg, e.status)
}

// AddZipkinSpans folds Zipkin v2 spans into the graph, like AddTraces, and
// returns how many it took. A server span marked shared is the server side
// of the client span with the same id; nil spans are skipped.
func (g *Graph) AddZipkinSpans(spans []*model.SpanModel) int {
	now := g.opts.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expireLocked(now)
	taken := 0
	var r spanRec
	for _, s := range spans {
		if s == nil {
			continue
		}
		g.fromZipkin(&r, s)
		if g.addSpanLocked(&r, now) {
			taken++
		}
	}
	return taken
}

// fromZipkin fills r from a Zipkin span. A span without a kind is a local
// span, or a client one when it names a remote service (Zipkin's reading).
func (g *Graph) fromZipkin(r *spanRec, s *model.SpanModel) {
	*r = spanRec{dur: int64(max(s.Duration, 0) / time.Nanosecond)}
	binary.BigEndian.PutUint64(r.key.trace[:8], s.TraceID.High)
	binary.BigEndian.PutUint64(r.key.trace[8:], s.TraceID.Low)
	binary.BigEndian.PutUint64(r.key.span[:], uint64(s.ID))
	if s.ParentID != nil {
		binary.BigEndian.PutUint64(r.parent[:], uint64(*s.ParentID))
	}
	r.skip = noService
	if s.LocalEndpoint != nil && s.LocalEndpoint.ServiceName != "" {
		var ok bool
		if r.service, ok = g.names.name(s.LocalEndpoint.ServiceName); ok {
			r.skip = keep
		} else {
			r.skip = invalidService
		}
	}
	remote := ""
	if s.RemoteEndpoint != nil {
		remote = s.RemoteEndpoint.ServiceName
	}
	switch s.Kind {
	case model.Client:
		r.kind = kindClient
	case model.Server:
		r.kind, r.shared = kindServer, s.Shared
	case model.Producer:
		r.kind = kindProducer
	case model.Consumer:
		r.kind = kindConsumer
	default:
		r.kind = kindInternal
		if remote != "" {
			r.kind = kindClient
		}
	}
	_, r.failed = s.Tags["error"]
	switch r.kind {
	case kindClient, kindProducer, kindConsumer:
		p := peerAttrs{remoteService: remote}
		for k, v := range s.Tags {
			p.set(k, v)
		}
		r.peer, r.peerCls = g.peerName(&p, r.kind)
	case kindServer:
		if s.ParentID == nil && remote != "" {
			r.caller, _ = g.names.name(remote)
		}
	}
}
