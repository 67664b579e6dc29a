package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/phoenixsre/phoenix"
)

// Config is the whole of a Phoenix daemon's configuration.
type Config struct {
	// StateDir holds Phoenix's own persisted state (event log, allocations,
	// the API token) and, by default, the secondary environment's instances.
	StateDir   string      `yaml:"state_dir"`
	API        API         `yaml:"api"`
	Receivers  Receivers   `yaml:"receivers"`
	Telemetry  Telemetry   `yaml:"telemetry"`
	Predict    Predict     `yaml:"predict"`
	Thresholds Thresholds  `yaml:"thresholds"`
	Traffic    Traffic     `yaml:"traffic"`
	Secondary  Secondary   `yaml:"secondary"`
	XDS        XDS         `yaml:"xds"`
	Components []Component `yaml:"components"`
}

// XDS configures the xDS server that gives Envoy (or gRPC's xDS client) the
// same routes as Phoenix's proxies, updated on every switch.
type XDS struct {
	// Listen is the gRPC address of the xDS server; empty disables it.
	Listen string `yaml:"listen"`
	// EnvoyListeners gives, per component, the address Envoy should listen
	// on for it (e.g. "0.0.0.0:10000"); components not listed are served to
	// gRPC clients only.
	EnvoyListeners map[phoenix.ComponentID]string `yaml:"envoy_listeners"`
}

// API configures the daemon's HTTP API, which the CLI and dashboards use.
type API struct {
	// Listen is the API's address. Loopback by default; expose it on purpose.
	Listen string `yaml:"listen"`
	// TokenFile holds the bearer token every API call must present. If the
	// file does not exist the daemon creates it with a random token (mode
	// 0600). Default: <state_dir>/token.
	TokenFile string `yaml:"token_file"`
}

// Receivers configures the telemetry receivers other programs push to.
type Receivers struct {
	// OTLPHTTP is the HTTP listener for pushed telemetry: OTLP spans
	// (POST /v1/traces) and metrics (POST /v1/metrics), Prometheus
	// remote-write (POST /api/v1/write) and Zipkin v2 spans (POST
	// /api/v2/spans). It requires the API token as a bearer token.
	OTLPHTTP Listener `yaml:"otlp_http"`
	// OTLPGRPC is the OTLP/gRPC listener (traces and metrics), with the
	// same token; empty (the default) disables it.
	OTLPGRPC Listener `yaml:"otlp_grpc"`
}

// Listener is one listening socket.
type Listener struct {
	// Listen is host:port; empty disables the listener.
	Listen string `yaml:"listen"`
}

// Telemetry configures how components' metrics are collected.
type Telemetry struct {
	ScrapeInterval Duration `yaml:"scrape_interval"`
	ScrapeTimeout  Duration `yaml:"scrape_timeout"`
	// Retention is how long history is kept in memory.
	Retention Duration `yaml:"retention"`
	// Metrics names the metric behind each standard signal.
	Metrics SignalMetrics `yaml:"metrics"`
	// SeriesLimit bounds the series one scraped target may expose (0: the
	// default 50,000; negative: no limit).
	SeriesLimit int `yaml:"series_limit"`
	// Store keeps every sample in an embedded Prometheus TSDB with a
	// write-ahead log under <state_dir>/tsdb.
	Store Store `yaml:"store"`
	// Mapping says which labels of pushed series name their component.
	Mapping Mapping `yaml:"mapping"`
	// Limits protect the receivers from a flood.
	Limits IngestLimits `yaml:"limits"`
	// Source, if its URL is set, reads the components' signals from an
	// existing Prometheus (or Mimir, Thanos) query API instead of scraping
	// them.
	Source Source `yaml:"source"`
}

// Store configures the embedded time-series store.
type Store struct {
	Retention      Duration `yaml:"retention"`       // default 15d
	WALCompression bool     `yaml:"wal_compression"` // snappy in the WAL: less disk, more CPU
}

// Mapping configures how pushed series are mapped to components.
type Mapping struct {
	// ComponentLabels are tried in order; default component, service, job.
	ComponentLabels []string `yaml:"component_labels"`
	// EnvironmentLabel names the environment; default "environment".
	EnvironmentLabel string `yaml:"environment_label"`
}

// IngestLimits bound what a tenant may push (0 means the default).
type IngestLimits struct {
	MaxSeriesPerTenant int     `yaml:"max_series_per_tenant"` // default 500,000; negative: none
	SamplesPerSecond   float64 `yaml:"samples_per_second"`    // default 0: no rate limit
	Burst              int     `yaml:"burst"`                 // default 10 x the rate
}

// Source is an external Prometheus-compatible query API.
type Source struct {
	URL string `yaml:"url"`
	// ComponentLabel names the component in its series; default
	// "component".
	ComponentLabel string   `yaml:"component_label"`
	Interval       Duration `yaml:"interval"` // default 15s
	Timeout        Duration `yaml:"timeout"`  // default 10s
	// Headers are sent with every query (e.g. X-Scope-OrgID for Mimir).
	Headers map[string]string `yaml:"headers"`
}

// SignalMetrics names, for each standard signal, the Prometheus metric it is
// computed from. An empty name means the signal is not collected.
type SignalMetrics struct {
	Memory   string `yaml:"memory"`
	CPU      string `yaml:"cpu"`
	Disk     string `yaml:"disk"`
	Latency  string `yaml:"latency"`
	Requests string `yaml:"requests"`
	Errors   string `yaml:"errors"`
}

// Predict configures the Predictive Failure Engine.
type Predict struct {
	// Horizon is H in "probability of failure within H".
	Horizon Duration `yaml:"horizon"`
	// Window is how much recent history a forecast is fitted on.
	Window Duration `yaml:"window"`
	// MinPoints is how many observations a signal needs before it is forecast.
	MinPoints int `yaml:"min_points"`
}

// Thresholds are the failure probabilities at which Phoenix acts.
type Thresholds struct {
	// Prewarm: at or above, the component and its dependency closure are
	// provisioned in the secondary environment and its state copied there.
	Prewarm float64 `yaml:"prewarm"`
	// Switch: at or above, traffic moves to the replica before the failure
	// (pre-emptive switch). Must be above Prewarm.
	Switch float64 `yaml:"switch"`
	// SwitchWithin: a pre-emptive switch also needs the failure to be
	// expected within this time. A failure that is certain but far off is
	// better met by a standby that waits, in case the trend turns.
	SwitchWithin Duration `yaml:"switch_within"`
	// Release: a replica is released once the risk has stayed below this for
	// ReleaseAfter. Must be below Prewarm (hysteresis).
	Release      float64  `yaml:"release"`
	ReleaseAfter Duration `yaml:"release_after"`
}

// Traffic configures the proxies Phoenix runs in front of each component.
type Traffic struct {
	HealthInterval Duration `yaml:"health_interval"`
	HealthTimeout  Duration `yaml:"health_timeout"`
	// UnhealthyAfter consecutive failed health checks confirm a failure.
	UnhealthyAfter int `yaml:"unhealthy_after"`
	// HoldTimeout bounds how long a request is held, instead of failed, while
	// the active backend is failing and a switch may come.
	HoldTimeout Duration `yaml:"hold_timeout"`
	// DrainTimeout bounds how long a switch waits for in-flight requests.
	DrainTimeout Duration `yaml:"drain_timeout"`
	// ClientTimeout disconnects a client that takes no byte of its
	// response for this long, so it cannot hold a backend connection.
	ClientTimeout Duration `yaml:"client_timeout"`
	// Confirm says which signals must agree before a failure is confirmed.
	Confirm Confirm `yaml:"confirm"`
	// Outlier ejects a backend of a pool that fails requests (passive).
	Outlier Outlier `yaml:"outlier"`
	// Failback keeps the old route after a switch so traffic can move back.
	Failback Failback `yaml:"failback"`
}

// Confirm configures failure confirmation: a failure is confirmed when at
// least MinSignals of these agree: health checks failing, Errors requests
// failed in a row, telemetry silent for Silence, predicted risk >= Risk.
type Confirm struct {
	MinSignals int      `yaml:"min_signals"` // default 2
	Errors     int      `yaml:"errors"`      // default 3
	Silence    Duration `yaml:"silence"`     // default 3 x telemetry.scrape_interval
	Risk       float64  `yaml:"risk"`        // default 0.5
}

// Outlier configures passive outlier detection (0 means the default).
type Outlier struct {
	Disabled          bool     `yaml:"disabled"`
	ConsecutiveErrors int      `yaml:"consecutive_errors"`  // default 5
	ErrorRate         float64  `yaml:"error_rate"`          // default 0.5
	MinRequests       int      `yaml:"min_requests"`        // default 20
	Interval          Duration `yaml:"interval"`            // default 10s
	EjectionTime      Duration `yaml:"ejection_time"`       // default 30s
	MaxEjectionTime   Duration `yaml:"max_ejection_time"`   // default 5m
	MaxEjectedPercent int      `yaml:"max_ejected_percent"` // default 50
}

// Failback configures the way back after a switch.
type Failback struct {
	// Enabled keeps the old route as a fallback, for "phoenix failback".
	Enabled bool `yaml:"enabled"`
	// Auto moves traffic back by itself once the old route has been
	// healthy for HealthyFor and the new one has served for MinDwell.
	Auto       bool     `yaml:"auto"`
	HealthyFor Duration `yaml:"healthy_for"` // default 30s
	MinDwell   Duration `yaml:"min_dwell"`   // default 2m
}

// Secondary configures the environment replicas are built in.
type Secondary struct {
	// Provider is "process" (local processes; the default) or "docker"
	// (containers on a Docker engine).
	Provider string  `yaml:"provider"`
	Process  Process `yaml:"process"`
	Docker   Docker  `yaml:"docker"`
	// Kubernetes is EXPERIMENTAL: tested against an API server only (no
	// kubelet ran its Pods); see provider/kubernetes.
	Kubernetes Kubernetes `yaml:"kubernetes"`
	// Budget caps what pre-warming may spend.
	Budget Budget `yaml:"budget"`
	// Sizing sets the least a replica is given, whatever its history says.
	Sizing Sizing `yaml:"sizing"`
}

// Kubernetes configures the kubernetes provider (experimental).
type Kubernetes struct {
	Kubeconfig string `yaml:"kubeconfig"` // default: in-cluster, then $KUBECONFIG / ~/.kube/config
	Context    string `yaml:"context"`
	Namespace  string `yaml:"namespace"` // required
	Image      string `yaml:"image"`     // required: the image replicas run
	Owner      string `yaml:"owner"`     // labels Phoenix's objects; default phoenix
	Port       int    `yaml:"port"`      // default 8080
	DataPath   string `yaml:"data_path"` // default /data
	// StorageClass of the claims made for stateful replicas; default the
	// cluster's.
	StorageClass string `yaml:"storage_class"`
	// ServiceType is ClusterIP (Phoenix runs in the cluster) or NodePort
	// (with NodeAddress, a node the daemon can reach).
	ServiceType string `yaml:"service_type"`
	NodeAddress string `yaml:"node_address"`
}

// Budget caps the secondary environment's use.
type Budget struct {
	// InstanceHoursPerDay caps instance-hours over any 24 hours; 0 means no
	// cap. A pre-warm that would pass it is refused and logged; a replica
	// built after a confirmed failure is never refused (but logged).
	InstanceHoursPerDay float64 `yaml:"instance_hours_per_day"`
}

// Sizing floors the requirements derived from measured history.
type Sizing struct {
	MinMilliCPU int64    `yaml:"min_milli_cpu"` // default 250
	MinMemory   ByteSize `yaml:"min_memory"`    // default 64MiB
}

// Docker configures the docker provider.
type Docker struct {
	// Image replicas run. Empty: the daemon builds a FROM-scratch image
	// holding its own (static) executable, so {phoenix} works in commands.
	Image string `yaml:"image"`
	// Network replicas join, created if missing.
	Network string `yaml:"network"`
	// Namespace prefixes and labels Phoenix's containers, so installations
	// sharing an engine never touch each other's.
	Namespace string `yaml:"namespace"`
	// Root is the host directory holding each instance's data directory
	// (bind-mounted into it). Default: <state_dir>/secondary.
	Root string `yaml:"root"`
	// Port instances listen on inside their container ({addr} is
	// 0.0.0.0:port).
	Port int `yaml:"port"`
	// DataPath is where the data directory appears in the container
	// ({data_dir}).
	DataPath string `yaml:"data_path"`
	// User runs the instances, "uid:gid"; default the daemon's own, so both
	// can write the data directory.
	User        string      `yaml:"user"`
	StopTimeout Duration    `yaml:"stop_timeout"`
	Offer       DockerOffer `yaml:"offer"`
}

// DockerOffer is what the engine sells: one size, at a price, up to a
// capacity (zero: the engine's own CPUs and memory).
type DockerOffer struct {
	ID           string  `yaml:"id"`
	Zone         string  `yaml:"zone"`
	PricePerHour float64 `yaml:"price_per_hour"`
	Performance  float64 `yaml:"performance"`
	Size         Size    `yaml:"size"`
	Capacity     Size    `yaml:"capacity"`
}

// Size is an amount of CPU and memory.
type Size struct {
	// MilliCPU is thousandths of a core.
	MilliCPU int64    `yaml:"milli_cpu"`
	Memory   ByteSize `yaml:"memory"`
}

// Process configures the process provider.
type Process struct {
	// Root is where instances get their directories. Default:
	// <state_dir>/secondary.
	Root string `yaml:"root"`
	// Host is the address replicas listen on. Default 127.0.0.1.
	Host string `yaml:"host"`
}

// Component is one protected component of the application.
type Component struct {
	Name phoenix.ComponentID `yaml:"name"`
	// Proxy is the listen address of the proxy Phoenix puts in front of the
	// component. Clients of the component must call this address.
	Proxy string `yaml:"proxy"`
	// Protocol is what the proxy speaks: http (the default) or tcp (any
	// other TCP protocol; health checks are then TCP connects).
	Protocol string `yaml:"protocol"`
	// HealthPath is probed on every instance; 2xx means healthy.
	HealthPath string  `yaml:"health_path"`
	Primary    Primary `yaml:"primary"`
	Limits     Limits  `yaml:"limits"`
	// DependsOn lists components this one needs, in addition to what the
	// dependency graph learns from traces.
	DependsOn []phoenix.ComponentID `yaml:"depends_on"`
	Replica   Replica               `yaml:"replica"`
	State     State                 `yaml:"state"`
	// Scale sizes the component's pool in the secondary environment to
	// its demand once traffic has moved there (stateless components only).
	Scale Scale `yaml:"scale"`
}

// Scale configures the Dynamic Scaling Engine for one component.
type Scale struct {
	Enabled bool `yaml:"enabled"`
	// Policy is predictive (the default: ahead of demand, never below
	// what the reactive rule asks) or hpa (the Kubernetes HPA's rule).
	Policy      string `yaml:"policy"`
	MinReplicas int    `yaml:"min_replicas"` // default 1
	MaxReplicas int    `yaml:"max_replicas"` // default 10
	// CapacityRPS is the requests per second one replica serves at its
	// limit (required when enabled).
	CapacityRPS float64 `yaml:"capacity_rps"`
	// TargetUtilization is the share of capacity the HPA aims for.
	TargetUtilization float64 `yaml:"target_utilization"` // default 0.8
	// Risk is the predictive policy's lowest accepted miss rate, above 0
	// and at most 0.5 (scale.NewPredictive's bounds).
	Risk    float64  `yaml:"risk"`    // default 0.002, as scale.DefaultRisk
	Measure Duration `yaml:"measure"` // demand measurement period, default 15s
	Sync    Duration `yaml:"sync"`    // decision period, default = measure
	// Startup is how long a new replica takes to serve; default 5s.
	Startup Duration `yaml:"startup"`
}

// Primary locates the running primary instance of a component.
type Primary struct {
	// URL is the instance's base URL, e.g. http://10.0.0.5:8081.
	URL string `yaml:"url"`
	// Metrics is its Prometheus endpoint. Default: URL + "/metrics".
	Metrics string `yaml:"metrics"`
}

// Limits are the values at which a component fails. A zero limit is not
// watched.
type Limits struct {
	Memory     ByteSize `yaml:"memory"`
	Disk       ByteSize `yaml:"disk"`
	LatencyP99 Duration `yaml:"latency_p99"`
	// ErrorRate is the share of requests answered with an error, 0..1.
	ErrorRate float64 `yaml:"error_rate"`
}

// Replica says how to start the component in the secondary environment.
type Replica struct {
	// Command is the argv. Placeholders: {addr} (host:port to listen on),
	// {port}, {data_dir} (the instance's data directory), {phoenix} (this
	// executable), {url:NAME} (base URL of component NAME in the same
	// environment as the replica, or of NAME's proxy if it has no instance
	// there).
	Command []string `yaml:"command"`
	// Env is added to the instance's environment. Values take the same
	// placeholders as Command.
	Env map[string]string `yaml:"env"`
}

// State says how a stateful component's data moves to its replica.
type State struct {
	// Method is "none" (stateless, the default), "snapshot" (one full copy
	// before the switch) or "incremental" (a full copy, then continuous
	// incremental rounds until the switch).
	Method string `yaml:"method"`
	// Dir is the primary's data directory.
	Dir string `yaml:"dir"`
	// Promote is the request that turns the replica into a primary once its
	// state is complete, as "METHOD /path", e.g. "POST /admin/promote".
	Promote string `yaml:"promote"`
	// Headers are sent with the promote request; values may be
	// "env:NAME" to read them from the daemon's environment.
	Headers map[string]string `yaml:"headers"`
	// Hooks are the owner's commands: pre/post around a copy (to quiesce
	// the component), and, for method "hook", the command that replicates.
	Hooks Hooks `yaml:"hooks"`
	// Throttle caps replication's read rate, bytes per second (0: none),
	// so that replication never starves the component it saves.
	Throttle ByteSize `yaml:"throttle"`
	// MaxPasses bounds the passes a snapshot makes to get a consistent
	// copy without a quiesce hook (default 5).
	MaxPasses int `yaml:"max_passes"`
	// Agent, if its Source is set, reads the primary's data through a
	// "phoenix agent" running next to it instead of from a local path.
	Agent StateAgent `yaml:"agent"`
}

// Hooks are argv lists; {src}, {dst} and {mode} are replaced.
type Hooks struct {
	Pre     []string          `yaml:"pre"`
	Command []string          `yaml:"command"`
	Post    []string          `yaml:"post"`
	Env     map[string]string `yaml:"env"`
	Timeout Duration          `yaml:"timeout"` // default 5m
}

// StateAgent locates the agent serving the primary's data.
type StateAgent struct {
	Source    string `yaml:"source"`     // e.g. https://10.0.0.5:7071
	TokenFile string `yaml:"token_file"` // the agents' bearer token
}

// Replication methods.
const (
	StateNone        = "none"
	StateSnapshot    = "snapshot"
	StateIncremental = "incremental"
	StateHook        = "hook"
)

// Default returns the configuration every file is decoded over.
func Default() Config {
	return Config{
		StateDir:  "phoenix-state",
		API:       API{Listen: "127.0.0.1:7070"},
		Receivers: Receivers{OTLPHTTP: Listener{Listen: "127.0.0.1:4318"}},
		Telemetry: Telemetry{
			ScrapeInterval: Duration(time.Second),
			ScrapeTimeout:  Duration(800 * time.Millisecond),
			Retention:      Duration(time.Hour),
			Metrics: SignalMetrics{
				Memory:   "process_resident_memory_bytes",
				CPU:      "process_cpu_seconds_total",
				Latency:  "http_request_duration_seconds",
				Requests: "http_requests_total",
				Errors:   "http_request_errors_total",
			},
		},
		Predict: Predict{Horizon: Duration(30 * time.Second), Window: Duration(20 * time.Second), MinPoints: 10},
		Thresholds: Thresholds{
			Prewarm:      0.5,
			Switch:       0.95,
			SwitchWithin: Duration(5 * time.Second),
			Release:      0.2,
			ReleaseAfter: Duration(10 * time.Second),
		},
		Traffic: Traffic{
			HealthInterval: Duration(200 * time.Millisecond),
			HealthTimeout:  Duration(150 * time.Millisecond),
			UnhealthyAfter: 3,
			HoldTimeout:    Duration(15 * time.Second),
			DrainTimeout:   Duration(5 * time.Second),
			ClientTimeout:  Duration(time.Minute),
		},
		Secondary: Secondary{
			Provider: "process",
			Process:  Process{Host: "127.0.0.1"},
			Sizing:   Sizing{MinMilliCPU: 250, MinMemory: 64 << 20},
			Docker: Docker{
				Network: "phoenix-secondary", Namespace: "phoenix", Port: 8080, DataPath: "/data",
				StopTimeout: Duration(5 * time.Second),
				Offer: DockerOffer{ID: "docker", Zone: "local", Performance: 1,
					Size: Size{MilliCPU: 1000, Memory: 512 << 20}},
			},
		},
	}
}

// Load reads, decodes over the defaults, and validates a configuration file.
// Relative paths in the file are taken relative to the file's directory.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	base, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	c.resolvePaths(base)
	return c, nil
}

// Parse decodes YAML over the defaults and validates the result. Unknown
// fields are errors, so a typo is caught instead of silently ignored.
func Parse(b []byte) (Config, error) {
	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return Config{}, errors.New("config is empty: at least one component is needed under 'components:'")
		}
		return Config{}, fmt.Errorf("decode config: %w", explainYAML(err))
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

var unknownField = regexp.MustCompile(`^(line \d+): field (.+) not found in type`)

// explainYAML rewords the YAML decoder's errors where its wording hides the
// fix ("field x not found in type config.Limits").
func explainYAML(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		if m := unknownField.FindStringSubmatch(e); m != nil {
			e = fmt.Sprintf("%s: %q is not a known setting (check its spelling and indentation; see examples/phoenix.yaml)", m[1], m[2])
		}
		msgs = append(msgs, e)
	}
	return errors.New(strings.Join(msgs, "; "))
}

func (c *Config) applyDefaults() {
	if c.API.TokenFile == "" {
		c.API.TokenFile = filepath.Join(c.StateDir, "token")
	}
	if c.Secondary.Process.Root == "" {
		c.Secondary.Process.Root = filepath.Join(c.StateDir, "secondary")
	}
	if c.Secondary.Docker.Root == "" {
		c.Secondary.Docker.Root = filepath.Join(c.StateDir, "secondary")
	}
	for i := range c.Components {
		comp := &c.Components[i]
		if comp.HealthPath == "" {
			comp.HealthPath = "/healthz"
		}
		if comp.Primary.Metrics == "" && comp.Primary.URL != "" {
			comp.Primary.Metrics = strings.TrimRight(comp.Primary.URL, "/") + "/metrics"
		}
		if comp.State.Method == "" {
			comp.State.Method = StateNone
		}
		if comp.Protocol == "" {
			comp.Protocol = "http"
		}
		if sc := &comp.Scale; sc.Enabled {
			if sc.Policy == "" {
				sc.Policy = "predictive"
			}
			if sc.MinReplicas == 0 {
				sc.MinReplicas = 1
			}
			if sc.MaxReplicas == 0 {
				sc.MaxReplicas = 10
			}
			if sc.TargetUtilization == 0 {
				sc.TargetUtilization = 0.8
			}
			if sc.Risk == 0 {
				sc.Risk = 0.002 // scale.DefaultRisk
			}
			if sc.Measure == 0 {
				sc.Measure = Duration(15 * time.Second)
			}
			if sc.Sync == 0 {
				sc.Sync = sc.Measure
			}
			if sc.Startup == 0 {
				sc.Startup = Duration(5 * time.Second)
			}
		}
	}
}

// resolvePaths makes relative paths relative to base (the config file's
// directory), as a user reading the file would expect.
func (c *Config) resolvePaths(base string) {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	tokenDefault := c.API.TokenFile == filepath.Join(c.StateDir, "token")
	rootDefault := c.Secondary.Process.Root == filepath.Join(c.StateDir, "secondary")
	dockerRootDefault := c.Secondary.Docker.Root == filepath.Join(c.StateDir, "secondary")
	c.StateDir = abs(c.StateDir)
	if tokenDefault {
		c.API.TokenFile = filepath.Join(c.StateDir, "token")
	} else {
		c.API.TokenFile = abs(c.API.TokenFile)
	}
	if rootDefault {
		c.Secondary.Process.Root = filepath.Join(c.StateDir, "secondary")
	} else {
		c.Secondary.Process.Root = abs(c.Secondary.Process.Root)
	}
	if dockerRootDefault {
		c.Secondary.Docker.Root = filepath.Join(c.StateDir, "secondary")
	} else {
		c.Secondary.Docker.Root = abs(c.Secondary.Docker.Root)
	}
	for i := range c.Components {
		c.Components[i].State.Dir = abs(c.Components[i].State.Dir)
		c.Components[i].State.Agent.TokenFile = abs(c.Components[i].State.Agent.TokenFile)
	}
}

// Component returns the named component's configuration.
func (c *Config) Component(name phoenix.ComponentID) (Component, bool) {
	for _, comp := range c.Components {
		if comp.Name == name {
			return comp, true
		}
	}
	return Component{}, false
}

// Validate checks the whole configuration and returns every problem found,
// each naming the field and what to write instead.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.StateDir == "" {
		bad("state_dir", "must not be empty; write a directory Phoenix may create, e.g. state_dir: /var/lib/phoenix")
	}
	checkAddr := func(field, addr string, optional bool) {
		if addr == "" {
			if !optional {
				bad(field, "must not be empty; write host:port, e.g. 127.0.0.1:7070")
			}
			return
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(field, "%q is not host:port (e.g. 127.0.0.1:7070): %v", addr, err)
		}
	}
	checkAddr("api.listen", c.API.Listen, false)
	checkAddr("receivers.otlp_http.listen", c.Receivers.OTLPHTTP.Listen, true)

	positive := func(field string, d Duration, example string) {
		if d <= 0 {
			bad(field, "must be a positive duration, e.g. %s", example)
		}
	}
	positive("telemetry.scrape_interval", c.Telemetry.ScrapeInterval, "1s")
	positive("telemetry.scrape_timeout", c.Telemetry.ScrapeTimeout, "800ms")
	positive("telemetry.retention", c.Telemetry.Retention, "1h")
	if c.Telemetry.ScrapeTimeout > c.Telemetry.ScrapeInterval {
		bad("telemetry.scrape_timeout", "%s is longer than scrape_interval %s; make it shorter", c.Telemetry.ScrapeTimeout, c.Telemetry.ScrapeInterval)
	}
	positive("predict.horizon", c.Predict.Horizon, "30s")
	positive("predict.window", c.Predict.Window, "20s")
	if c.Predict.MinPoints < 3 {
		bad("predict.min_points", "%d is too few to fit a trend with its uncertainty; write 3 or more (default 10)", c.Predict.MinPoints)
	}

	t := c.Thresholds
	prob := func(field string, v float64) bool {
		if !(v > 0 && v < 1) {
			bad(field, "%v is not a probability strictly between 0 and 1", v)
			return false
		}
		return true
	}
	okP, okS, okR := prob("thresholds.prewarm", t.Prewarm), prob("thresholds.switch", t.Switch), prob("thresholds.release", t.Release)
	if okP && okS && t.Switch <= t.Prewarm {
		bad("thresholds.switch", "%v must be above thresholds.prewarm (%v): a replica is pre-warmed before traffic can move to it", t.Switch, t.Prewarm)
	}
	if okP && okR && t.Release >= t.Prewarm {
		bad("thresholds.release", "%v must be below thresholds.prewarm (%v), or a replica would be released as soon as it is made", t.Release, t.Prewarm)
	}
	positive("thresholds.release_after", t.ReleaseAfter, "10s")
	positive("thresholds.switch_within", t.SwitchWithin, "5s")

	positive("traffic.health_interval", c.Traffic.HealthInterval, "200ms")
	positive("traffic.health_timeout", c.Traffic.HealthTimeout, "150ms")
	positive("traffic.hold_timeout", c.Traffic.HoldTimeout, "15s")
	positive("traffic.drain_timeout", c.Traffic.DrainTimeout, "5s")
	positive("traffic.client_timeout", c.Traffic.ClientTimeout, "1m")
	if c.Traffic.HealthTimeout > c.Traffic.HealthInterval {
		bad("traffic.health_timeout", "%s is longer than health_interval %s: checks would overlap; make it shorter", c.Traffic.HealthTimeout, c.Traffic.HealthInterval)
	}
	if c.Traffic.UnhealthyAfter < 1 {
		bad("traffic.unhealthy_after", "%d: write how many failed health checks in a row confirm a failure, 1 or more (default 3)", c.Traffic.UnhealthyAfter)
	}

	if b := c.Secondary.Budget.InstanceHoursPerDay; b < 0 || b != b {
		bad("secondary.budget.instance_hours_per_day", "%v: write a positive number of instance-hours, or 0 for no cap", b)
	}
	if c.Secondary.Sizing.MinMilliCPU < 0 || c.Secondary.Sizing.MinMemory < 0 {
		bad("secondary.sizing", "floors must not be negative")
	}
	checkAddr("receivers.otlp_grpc.listen", c.Receivers.OTLPGRPC.Listen, true)
	checkAddr("xds.listen", c.XDS.Listen, true)
	for name, addr := range c.XDS.EnvoyListeners {
		checkAddr("xds.envoy_listeners."+string(name), addr, false)
	}
	if c.Telemetry.Source.URL != "" {
		checkURL(bad, "telemetry.source.url", c.Telemetry.Source.URL, false)
	}
	if cf := c.Traffic.Confirm; cf.MinSignals < 0 || cf.Errors < 0 || cf.Silence < 0 || cf.Risk < 0 || cf.Risk > 1 {
		bad("traffic.confirm", "counts and durations must not be negative, risk must be within 0..1")
	}
	if o := c.Traffic.Outlier; o.ErrorRate < 0 || o.ErrorRate > 1 || o.MaxEjectedPercent < 0 || o.MaxEjectedPercent > 100 {
		bad("traffic.outlier", "error_rate must be within 0..1 and max_ejected_percent within 0..100")
	}
	switch c.Secondary.Provider {
	case "process":
	case "docker":
		d := c.Secondary.Docker
		if d.Network == "" || d.Namespace == "" {
			bad("secondary.docker", "network and namespace must not be empty (defaults: phoenix-secondary, phoenix)")
		}
		if d.Port < 1 || d.Port > 65535 {
			bad("secondary.docker.port", "%d is not a port; write 1-65535 (default 8080)", d.Port)
		}
		if !strings.HasPrefix(d.DataPath, "/") {
			bad("secondary.docker.data_path", "%q must be an absolute path in the container, e.g. /data", d.DataPath)
		}
		if d.Offer.Size.MilliCPU < 0 || d.Offer.Size.Memory < 0 || d.Offer.Capacity.MilliCPU < 0 || d.Offer.Capacity.Memory < 0 || d.Offer.PricePerHour < 0 {
			bad("secondary.docker.offer", "sizes, capacity and price must not be negative")
		}
	case "kubernetes":
		k := c.Secondary.Kubernetes
		if k.Namespace == "" || k.Image == "" {
			bad("secondary.kubernetes", "namespace and image are required (the namespace replicas go to, and the image they run)")
		}
		if k.ServiceType == "NodePort" && k.NodeAddress == "" {
			bad("secondary.kubernetes.node_address", "service_type NodePort needs the address of a node the daemon can reach")
		}
		for i, comp := range c.Components {
			if comp.State.Method != StateNone {
				bad(fmt.Sprintf("components[%d] (%s).state.method", i, comp.Name), "state transfer into Kubernetes replicas is not supported yet (their data directory is inside the Pod); use method none, or the process or docker provider")
			}
		}
	default:
		bad("secondary.provider", "%q is not a provider; write \"process\", \"docker\" or \"kubernetes\"", c.Secondary.Provider)
	}

	if len(c.Components) == 0 {
		bad("components", "no component to protect; list at least one (see examples/phoenix.yaml)")
	}
	c.validateComponents(bad, checkAddr)
	return errors.Join(errs...)
}

func (c *Config) validateComponents(bad func(field, format string, args ...any), checkAddr func(field, addr string, optional bool)) {
	names := map[phoenix.ComponentID]bool{}
	proxies := map[string]string{}
	for i, comp := range c.Components {
		f := func(name string) string { return fmt.Sprintf("components[%d].%s", i, name) }
		if comp.Name != "" {
			f = func(name string) string { return fmt.Sprintf("components[%d] (%s).%s", i, comp.Name, name) }
		}
		if err := comp.Name.Validate(); err != nil {
			bad(f("name"), "%v", err)
		} else if names[comp.Name] {
			bad(f("name"), "%q is listed twice; each component needs its own name", comp.Name)
		}
		names[comp.Name] = true
		checkAddr(f("proxy"), comp.Proxy, false)
		if prev, dup := proxies[comp.Proxy]; dup && comp.Proxy != "" && !strings.HasSuffix(comp.Proxy, ":0") {
			bad(f("proxy"), "%s is already the proxy of %s; give each component its own port", comp.Proxy, prev)
		}
		proxies[comp.Proxy] = string(comp.Name)
		if !strings.HasPrefix(comp.HealthPath, "/") {
			bad(f("health_path"), "%q must start with '/', e.g. /healthz", comp.HealthPath)
		}
		checkURL(bad, f("primary.url"), comp.Primary.URL, false)
		checkURL(bad, f("primary.metrics"), comp.Primary.Metrics, true)
		if comp.Limits.Memory < 0 || comp.Limits.Disk < 0 || comp.Limits.LatencyP99 < 0 {
			bad(f("limits"), "limits must not be negative; leave a limit out to not watch it")
		}
		if comp.Limits.ErrorRate < 0 || comp.Limits.ErrorRate > 1 {
			bad(f("limits.error_rate"), "%v is not a share of requests between 0 and 1, e.g. 0.05", comp.Limits.ErrorRate)
		}
		if len(comp.Replica.Command) == 0 {
			bad(f("replica.command"), "empty: write the argv that starts the component, using {addr} and {data_dir}, e.g. [\"/usr/bin/orders\", \"--listen\", \"{addr}\"]")
		}
		if sc := comp.Scale; sc.Enabled {
			switch {
			case sc.Policy != "predictive" && sc.Policy != "hpa":
				bad(f("scale.policy"), "%q: write predictive or hpa", sc.Policy)
			case !(sc.CapacityRPS > 0):
				bad(f("scale.capacity_rps"), "write the requests per second one replica serves at its limit, e.g. 200")
			case sc.MinReplicas < 1 || sc.MaxReplicas < sc.MinReplicas:
				bad(f("scale"), "min_replicas %d and max_replicas %d: want 1 <= min <= max", sc.MinReplicas, sc.MaxReplicas)
			case !(sc.TargetUtilization > 0 && sc.TargetUtilization <= 1):
				bad(f("scale.target_utilization"), "%v: write the share of a replica's capacity the HPA aims for, above 0 and at most 1, e.g. 0.8", sc.TargetUtilization)
			case !(sc.Risk > 0 && sc.Risk <= 0.5):
				bad(f("scale.risk"), "%v: write the probability of demand above capacity the predictive policy accepts, above 0 and at most 0.5, e.g. 0.002", sc.Risk)
			case comp.State.Method != StateNone:
				bad(f("scale.enabled"), "only a stateless component (state.method none) can be scaled: its replicas would each hold a different copy of the state")
			}
		}
		switch comp.Protocol {
		case "http", "tcp":
		default:
			bad(f("protocol"), "%q: write http or tcp", comp.Protocol)
		}
		switch comp.State.Method {
		case StateNone:
		case StateSnapshot, StateIncremental, StateHook:
			if comp.State.Dir == "" && comp.State.Agent.Source == "" {
				bad(f("state.dir"), "method %q needs the primary's data directory (or state.agent.source)", comp.State.Method)
			}
			if comp.State.Method == StateHook && len(comp.State.Hooks.Command) == 0 {
				bad(f("state.hooks.command"), "method hook needs the command that replicates, e.g. [\"pg_basebackup\", \"-D\", \"{dst}\"]")
			}
			if comp.State.Agent.Source != "" {
				checkURL(bad, f("state.agent.source"), comp.State.Agent.Source, false)
				if comp.State.Agent.TokenFile == "" {
					bad(f("state.agent.token_file"), "an agent needs the file holding its bearer token")
				}
			}
			if comp.State.Throttle < 0 || comp.State.MaxPasses < 0 {
				bad(f("state"), "throttle and max_passes must not be negative")
			}
			if comp.State.Promote != "" {
				if _, _, err := ParseRequestLine(comp.State.Promote); err != nil {
					bad(f("state.promote"), "%v", err)
				}
			}
		default:
			bad(f("state.method"), "%q is not a method; write none, snapshot, incremental or hook", comp.State.Method)
		}
	}
	for i, comp := range c.Components {
		for j, d := range comp.DependsOn {
			if !names[d] {
				bad(fmt.Sprintf("components[%d] (%s).depends_on[%d]", i, comp.Name, j), "%q is not a listed component", d)
			}
			if d == comp.Name {
				bad(fmt.Sprintf("components[%d] (%s).depends_on[%d]", i, comp.Name, j), "a component cannot depend on itself")
			}
		}
	}
}

func checkURL(bad func(field, format string, args ...any), field, raw string, optional bool) {
	if raw == "" {
		if !optional {
			bad(field, "must not be empty; write the instance's base URL, e.g. http://127.0.0.1:8081")
		}
		return
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad(field, "%q is not an http(s) URL with a host, e.g. http://127.0.0.1:8081", raw)
	}
}

// ParseRequestLine splits "POST /admin/promote" into its method and path.
func ParseRequestLine(s string) (method, path string, err error) {
	method, path, ok := strings.Cut(strings.TrimSpace(s), " ")
	path = strings.TrimSpace(path)
	if !ok || method == "" || !strings.HasPrefix(path, "/") || strings.ContainsAny(method, "/ ") {
		return "", "", fmt.Errorf("%q is not \"METHOD /path\", e.g. \"POST /admin/promote\"", s)
	}
	return strings.ToUpper(method), path, nil
}
