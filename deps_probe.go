//go:build depsprobe

package phoenix

// This file only keeps in go.mod the modules that work in progress needs
// before it imports them. It is never built.
import (
	_ "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	_ "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	_ "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	_ "github.com/golang/snappy"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/moby/moby/client"
	_ "github.com/openzipkin/zipkin-go/model"
	_ "github.com/openzipkin/zipkin-go/reporter/http"
	_ "github.com/prometheus/prometheus/prompb"
	_ "github.com/prometheus/prometheus/storage/remote"
	_ "github.com/prometheus/prometheus/tsdb"
	_ "go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	_ "go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	_ "go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	_ "go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	_ "go.opentelemetry.io/otel/sdk/metric"
	_ "golang.org/x/sync/errgroup"
	_ "golang.org/x/time/rate"
	_ "google.golang.org/grpc/xds"
	_ "k8s.io/api/apps/v1"
	_ "k8s.io/client-go/kubernetes"
	_ "sigs.k8s.io/controller-runtime/pkg/envtest"
)
