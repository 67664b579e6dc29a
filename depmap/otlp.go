package depmap

import (
	"fmt"
	"log/slog"
	"mime"
	"net/http"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// TraceSink takes decoded spans. *Graph is one.
type TraceSink interface {
	AddTraces(td ptrace.Traces) int
}

var _ TraceSink = (*Graph)(nil)

// DefaultMaxBodyBytes bounds an OTLP request body unless HandlerOptions say
// otherwise.
const DefaultMaxBodyBytes = 8 << 20

// HandlerOptions configures NewOTLPHandler.
type HandlerOptions struct {
	// MaxBodyBytes bounds the body both as sent and after gzip expansion;
	// a larger one gets 413. Zero or less means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	Logger       *slog.Logger // nil discards
}

// NewOTLPHandler returns the OTLP/HTTP trace receiver: mount it at
// /v1/traces (it does not look at the path). It accepts POST with
// Content-Type application/x-protobuf or application/json, optionally
// Content-Encoding gzip, hands the spans to sink and answers with an
// ExportTraceServiceResponse in the request's encoding. Errors are 405
// (method), 415 (content type or encoding), 413 (too large) and 400
// (malformed body), with a google.rpc.Status body in the request's encoding
// (plain text when the encoding is unknown) whose message says what is
// wrong. It does not authenticate: wrap it.
func NewOTLPHandler(sink TraceSink, o HandlerOptions) http.Handler {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &otlpHandler{sink: sink, max: o.MaxBodyBytes, log: o.Logger}
}

type otlpHandler struct {
	sink TraceSink
	max  int64
	log  *slog.Logger
}

// encoding is one of the two OTLP/HTTP payload encodings.
type encoding int

const (
	encUnknown encoding = iota
	encProto
	encJSON
)

const (
	contentTypeProto = "application/x-protobuf"
	contentTypeJSON  = "application/json"
)

func encodingOf(contentType string) encoding {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return encUnknown
	}
	switch mt {
	case contentTypeProto:
		return encProto
	case contentTypeJSON:
		return encJSON
	}
	return encUnknown
}

func (h *otlpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	enc := encodingOf(r.Header.Get("Content-Type"))
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, r, enc, &requestError{http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed: send OTLP spans with POST", r.Method)})
		return
	}
	if enc == encUnknown {
		h.fail(w, r, enc, &requestError{http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q not supported: use %s or %s", r.Header.Get("Content-Type"), contentTypeProto, contentTypeJSON)})
		return
	}
	body, rerr := readBody(w, r, h.max)
	if rerr != nil {
		h.fail(w, r, enc, rerr)
		return
	}
	req := ptraceotlp.NewExportRequest()
	var err error
	if enc == encProto {
		err = req.UnmarshalProto(body)
	} else {
		err = req.UnmarshalJSON(body)
	}
	if err != nil {
		h.fail(w, r, enc, &requestError{http.StatusBadRequest, fmt.Sprintf("decode OTLP trace request: %v", err)})
		return
	}
	taken := h.sink.AddTraces(req.Traces())
	h.log.Debug("otlp traces received", "remote", r.RemoteAddr, "spans", req.Traces().SpanCount(), "taken", taken)

	resp := ptraceotlp.NewExportResponse()
	var out []byte
	if enc == encProto {
		out, err = resp.MarshalProto()
	} else {
		out, err = resp.MarshalJSON()
	}
	if err != nil { // an empty response always encodes; this is a bug if reached
		h.log.Error("encode OTLP response", "err", err)
		http.Error(w, "encode OTLP response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentTypeOf(enc))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// fail answers with e as a google.rpc.Status in the request's encoding, as
// OTLP/HTTP asks, or as plain text when the encoding is unknown.
func (h *otlpHandler) fail(w http.ResponseWriter, r *http.Request, enc encoding, e *requestError) {
	h.log.Debug("otlp request refused", "remote", r.RemoteAddr, "status", e.status, "reason", e.msg)
	st := &status.Status{Code: int32(rpcCode(e.status)), Message: e.msg}
	var (
		out []byte
		err error
	)
	switch enc {
	case encProto:
		out, err = proto.Marshal(st)
	case encJSON:
		out, err = protojson.Marshal(st)
	}
	if enc == encUnknown || err != nil {
		http.Error(w, e.msg, e.status)
		return
	}
	w.Header().Set("Content-Type", contentTypeOf(enc))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.status)
	_, _ = w.Write(out)
}

func rpcCode(httpStatus int) code.Code {
	switch httpStatus {
	case http.StatusRequestEntityTooLarge:
		return code.Code_RESOURCE_EXHAUSTED
	case http.StatusMethodNotAllowed, http.StatusUnsupportedMediaType:
		return code.Code_UNIMPLEMENTED
	}
	return code.Code_INVALID_ARGUMENT
}

func contentTypeOf(enc encoding) string {
	if enc == encJSON {
		return contentTypeJSON
	}
	return contentTypeProto
}
