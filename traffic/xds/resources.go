package xds

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	router "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/traffic"
)

// componentRoute is what is served for one component.
type componentRoute struct {
	protocol  traffic.Protocol
	endpoints []netip.AddrPort
	names     []string
}

// endpointsOf turns backends into socket addresses. xDS endpoints are IP
// addresses: a name would need a DNS cluster, which loses the point of
// pushing the route.
func endpointsOf(bs []traffic.Backend) ([]netip.AddrPort, []string, error) {
	var eps []netip.AddrPort
	var names []string
	for _, b := range bs {
		if b.URL == nil {
			return nil, nil, fmt.Errorf("backend %s has no URL", b.Name)
		}
		port := b.URL.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[b.URL.Scheme]
		}
		addr, err := netip.ParseAddr(b.URL.Hostname())
		if err != nil {
			return nil, nil, fmt.Errorf("backend %s: host %q is not an IP address: xDS endpoints need one, write the backend URL with its IP", b.Name, b.URL.Hostname())
		}
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return nil, nil, fmt.Errorf("backend %s: port %q: write a port from 1 to 65535", b.Name, port)
		}
		eps = append(eps, netip.AddrPortFrom(addr.Unmap(), uint16(n)))
		names = append(names, b.Name)
	}
	return eps, names, nil
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		// Only our own well-formed messages are marshalled here.
		panic(fmt.Sprintf("xds: marshal %T: %v", m, err))
	}
	return a
}

func socketAddress(ap netip.AddrPort) *core.Address {
	return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Address:       ap.Addr().String(),
		PortSpecifier: &core.SocketAddress_PortValue{PortValue: uint32(ap.Port())},
	}}}
}

var adsSource = &core.ConfigSource{
	ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
	ResourceApiVersion:    core.ApiVersion_V3,
}

func makeCluster(name string) *cluster.Cluster {
	return &cluster.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
		EdsClusterConfig:     &cluster.Cluster_EdsClusterConfig{EdsConfig: adsSource},
		ConnectTimeout:       durationpb.New(2 * time.Second),
		LbPolicy:             cluster.Cluster_ROUND_ROBIN,
	}
}

// makeEndpoints puts every backend in one locality with a weight: gRPC
// ignores localities without one.
func makeEndpoints(name string, r componentRoute) *endpoint.ClusterLoadAssignment {
	lbs := make([]*endpoint.LbEndpoint, 0, len(r.endpoints))
	for i, ap := range r.endpoints {
		lbs = append(lbs, &endpoint.LbEndpoint{
			HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
				Address:  socketAddress(ap),
				Hostname: r.names[i],
			}},
			HealthStatus:        core.HealthStatus_HEALTHY,
			LoadBalancingWeight: wrapperspb.UInt32(1),
		})
	}
	return &endpoint.ClusterLoadAssignment{
		ClusterName: name,
		Endpoints: []*endpoint.LocalityLbEndpoints{{
			Locality:            &core.Locality{Region: "phoenix"},
			LoadBalancingWeight: wrapperspb.UInt32(1),
			LbEndpoints:         lbs,
		}},
	}
}

func makeRoute(name string) *route.RouteConfiguration {
	return &route.RouteConfiguration{
		Name: name,
		VirtualHosts: []*route.VirtualHost{{
			Name:    name,
			Domains: []string{"*"},
			Routes: []*route.Route{{
				Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: ""}},
				Action: &route.Route_Route{Route: &route.RouteAction{
					ClusterSpecifier: &route.RouteAction_Cluster{Cluster: name},
				}},
			}},
		}},
	}
}

func routerFilter() []*hcm.HttpFilter {
	return []*hcm.HttpFilter{{
		Name:       wellknown.Router,
		ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: mustAny(&router.Router{})},
	}}
}

// apiListener is the listener gRPC's xds:/// resolver asks for by name,
// with the route inline.
func apiListener(name string) *listener.Listener {
	manager := &hcm.HttpConnectionManager{
		StatPrefix:     name,
		RouteSpecifier: &hcm.HttpConnectionManager_RouteConfig{RouteConfig: makeRoute(name)},
		HttpFilters:    routerFilter(),
	}
	return &listener.Listener{
		Name:        name,
		ApiListener: &listener.ApiListener{ApiListener: mustAny(manager)},
	}
}

// envoyListener is a socket listener for Envoy: HTTP through RDS, or a
// TCP proxy to the cluster.
func envoyListener(name string, at netip.AddrPort, proto traffic.Protocol) *listener.Listener {
	var filter *listener.Filter
	if proto == traffic.TCP {
		filter = &listener.Filter{Name: wellknown.TCPProxy, ConfigType: &listener.Filter_TypedConfig{TypedConfig: mustAny(&tcpproxy.TcpProxy{
			StatPrefix:       name,
			ClusterSpecifier: &tcpproxy.TcpProxy_Cluster{Cluster: name},
		})}}
	} else {
		filter = &listener.Filter{Name: wellknown.HTTPConnectionManager, ConfigType: &listener.Filter_TypedConfig{TypedConfig: mustAny(&hcm.HttpConnectionManager{
			StatPrefix:     name,
			RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{ConfigSource: adsSource, RouteConfigName: name}},
			HttpFilters:    routerFilter(),
		})}}
	}
	return &listener.Listener{
		Name:         name,
		Address:      socketAddress(at),
		FilterChains: []*listener.FilterChain{{Filters: []*listener.Filter{filter}}},
	}
}

// snapshots builds the gRPC and the Envoy snapshot of routes at version.
func snapshots(version string, routes map[phoenix.ComponentID]componentRoute, envoyAt map[phoenix.ComponentID]netip.AddrPort) (grpcSnap, envoySnap *cachev3.Snapshot, err error) {
	var clusters, endpoints, apiListeners, listeners, rdsRoutes []types.Resource
	for c, r := range routes {
		name := string(c)
		clusters = append(clusters, makeCluster(name))
		endpoints = append(endpoints, makeEndpoints(name, r))
		apiListeners = append(apiListeners, apiListener(name))
		if at, ok := envoyAt[c]; ok {
			listeners = append(listeners, envoyListener(name, at, r.protocol))
			if r.protocol != traffic.TCP {
				rdsRoutes = append(rdsRoutes, makeRoute(name))
			}
		}
	}
	grpcSnap, err = cachev3.NewSnapshot(version, map[resource.Type][]types.Resource{
		resource.ClusterType: clusters, resource.EndpointType: endpoints, resource.ListenerType: apiListeners,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("grpc snapshot: %w", err)
	}
	envoySnap, err = cachev3.NewSnapshot(version, map[resource.Type][]types.Resource{
		resource.ClusterType: clusters, resource.EndpointType: endpoints, resource.ListenerType: listeners, resource.RouteType: rdsRoutes,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("envoy snapshot: %w", err)
	}
	for _, s := range []*cachev3.Snapshot{grpcSnap, envoySnap} {
		if err := s.Consistent(); err != nil {
			return nil, nil, fmt.Errorf("snapshot %s inconsistent: %w", version, err)
		}
	}
	return grpcSnap, envoySnap, nil
}
