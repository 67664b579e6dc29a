package depmap

import (
	"context"
	"crypto/subtle"
	"log/slog"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// GRPCOptions configures the OTLP/gRPC trace receiver.
type GRPCOptions struct {
	// Token, when set, must come as the "authorization: Bearer <token>"
	// metadata of every export; others get Unauthenticated. The OTLP
	// exporters send it with their headers option.
	Token  string
	Logger *slog.Logger // nil discards
}

// NewOTLPGRPCServer returns the OTLP/gRPC trace service
// (opentelemetry.proto.collector.trace.v1.TraceService): it hands every
// export's spans to sink. Register it with RegisterOTLPGRPC, or
// ptraceotlp.RegisterGRPCServer, on a grpc.Server of the caller's; bound
// message sizes there (grpc.MaxRecvMsgSize, 4 MiB by default).
func NewOTLPGRPCServer(sink TraceSink, o GRPCOptions) ptraceotlp.GRPCServer {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var want []byte
	if o.Token != "" {
		want = []byte("Bearer " + o.Token)
	}
	return &otlpGRPC{sink: sink, want: want, log: o.Logger}
}

// RegisterOTLPGRPC registers the OTLP/gRPC trace service on s.
func RegisterOTLPGRPC(s *grpc.Server, sink TraceSink, o GRPCOptions) {
	ptraceotlp.RegisterGRPCServer(s, NewOTLPGRPCServer(sink, o))
}

type otlpGRPC struct {
	ptraceotlp.UnimplementedGRPCServer
	sink TraceSink
	want []byte // nil: no token required
	log  *slog.Logger
}

func (s *otlpGRPC) Export(ctx context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	if s.want != nil {
		md, _ := metadata.FromIncomingContext(ctx)
		got := md.Get("authorization")
		if len(got) != 1 || subtle.ConstantTimeCompare([]byte(got[0]), s.want) != 1 {
			return ptraceotlp.NewExportResponse(), status.Error(codes.Unauthenticated, "missing or invalid authorization: send the daemon's token as \"authorization: Bearer <token>\" metadata")
		}
	}
	taken := s.sink.AddTraces(req.Traces())
	if s.log.Enabled(ctx, slog.LevelDebug) {
		remote := ""
		if p, ok := peer.FromContext(ctx); ok {
			remote = p.Addr.String()
		}
		s.log.Debug("otlp grpc traces received", "remote", remote, "spans", req.Traces().SpanCount(), "taken", taken)
	}
	return ptraceotlp.NewExportResponse(), nil
}
