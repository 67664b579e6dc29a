package phoenix

import (
	"fmt"
	"regexp"
	"slices"
	"time"
)

// ComponentID names one component of the protected application, such as
// "orders". It is the key that joins telemetry, predictions, the dependency
// graph, allocations and routes.
type ComponentID string

var componentIDPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9_.-]{0,62}[a-z0-9])?$`)

// Validate reports whether id is usable as a component name: lower-case
// letters, digits, '-', '_' and '.', at most 64 characters, starting and
// ending with a letter or digit. Names end up in file paths, URLs, labels and
// container names, so the rule is strict on purpose.
func (id ComponentID) Validate() error {
	if !componentIDPattern.MatchString(string(id)) {
		return fmt.Errorf("component name %q: use 1-64 lower-case letters, digits, '-', '_' or '.', starting and ending with a letter or digit", string(id))
	}
	return nil
}

// Environment names where an instance runs.
type Environment string

// The two environments Phoenix knows: the one it protects and the one it
// rebuilds into.
const (
	Primary   Environment = "primary"
	Secondary Environment = "secondary"
)

// Signal is one of the standard health signals the engine reads.
type Signal string

// The standard signals. Their units are fixed so that limits and forecasts
// compare without conversion.
const (
	SignalCPU     Signal = "cpu"     // CPU seconds per second (cores in use)
	SignalMemory  Signal = "memory"  // resident bytes
	SignalDisk    Signal = "disk"    // bytes used on the component's data volume
	SignalLatency Signal = "latency" // 99th percentile request latency, seconds
	SignalErrors  Signal = "errors"  // errors per request, 0..1
	SignalRate    Signal = "rate"    // requests per second (demand, not a failure signal)
)

// Resources is an amount of compute and storage.
type Resources struct {
	MilliCPU    int64 `json:"milli_cpu"`
	MemoryBytes int64 `json:"memory_bytes"`
	DiskBytes   int64 `json:"disk_bytes"`
}

// Risk is the Predictive Failure Engine's verdict on one component at one
// moment: the probability that it fails within Horizon, with a confidence
// interval, the expected time left, and the signals that drove it.
type Risk struct {
	Component   ComponentID   `json:"component"`
	At          time.Time     `json:"at"`
	Horizon     time.Duration `json:"horizon_ns"`
	Probability float64       `json:"probability"`
	Lower       float64       `json:"lower"`
	Upper       float64       `json:"upper"`
	// LeadTime is the expected time until the most likely limit is crossed;
	// zero when no signal is forecast to cross within the horizon.
	LeadTime time.Duration `json:"lead_time_ns"`
	// Signals lists the signals behind the probability, most probable first.
	Signals []SignalRisk `json:"signals,omitempty"`
}

// SignalRisk explains one signal's share of a Risk.
type SignalRisk struct {
	Signal      Signal  `json:"signal"`
	Probability float64 `json:"probability"`
	Value       float64 `json:"value"`
	Limit       float64 `json:"limit"`
	// Forecast is the point forecast at the horizon, with its prediction
	// interval [ForecastLow, ForecastHigh].
	Forecast     float64 `json:"forecast"`
	ForecastLow  float64 `json:"forecast_low"`
	ForecastHigh float64 `json:"forecast_high"`
	// CrossIn is when the point forecast reaches the limit; zero if it does
	// not within the horizon.
	CrossIn time.Duration `json:"cross_in_ns"`
	Reason  string        `json:"reason"`
}

// EventKind classifies an entry of the control loop's event log.
type EventKind string

// Event kinds, in the order a protected failure usually produces them.
const (
	EventStarted          EventKind = "started"           // the daemon started or resumed
	EventPredicted        EventKind = "predicted"         // risk crossed the pre-warm threshold
	EventPlanned          EventKind = "planned"           // replicas sized and placed, with the reasons
	EventOfferRefused     EventKind = "offer_refused"     // an offer had no room, or failed after retries; the next offer is tried
	EventProvisioned      EventKind = "provisioned"       // an instance was started in the secondary
	EventSnapshot         EventKind = "snapshot"          // a full state copy reached the replica
	EventPrewarmed        EventKind = "prewarmed"         // replica ready, state copied, registered as standby
	EventReplicated       EventKind = "replicated"        // an incremental round (logged sparsely)
	EventFailureSuspected EventKind = "failure_suspected" // a signal says the primary may be down
	EventFailed           EventKind = "failed"            // failure confirmed
	EventSwitched         EventKind = "switched"          // traffic moved to the replica
	EventReleased         EventKind = "released"          // the replica was released, risk passed
	EventFailedBack       EventKind = "failed_back"       // traffic moved back to the original primary
	EventScaled           EventKind = "scaled"            // the scaling engine took a component's pool
	EventRiskCleared      EventKind = "risk_cleared"      // risk fell below the release threshold
	EventError            EventKind = "error"             // a step failed; Message says which and why
)

// Event is one decision or observation, with its reason, as written to the
// persisted event log. Seq is assigned by the log and increases by one per
// event.
type Event struct {
	Seq       uint64            `json:"seq"`
	Time      time.Time         `json:"time"`
	Kind      EventKind         `json:"kind"`
	Component ComponentID       `json:"component,omitempty"`
	Message   string            `json:"message"`
	Fields    map[string]string `json:"fields,omitempty"`
}

// Phase is where an allocation stands in its life.
type Phase string

// Allocation phases. An allocation moves forward only:
// provisioning -> prewarmed -> switching -> switched, or
// provisioning|prewarmed -> releasing -> released. failed ends an allocation
// that could not be placed (what was placed is released first).
const (
	PhaseProvisioning Phase = "provisioning"
	PhasePrewarmed    Phase = "prewarmed"
	PhaseSwitching    Phase = "switching"
	PhaseSwitched     Phase = "switched"
	PhaseReleasing    Phase = "releasing"
	PhaseReleased     Phase = "released"
	PhaseFailed       Phase = "failed"
)

// Done reports whether the phase is final.
func (p Phase) Done() bool { return p == PhaseReleased || p == PhaseFailed }

// Allocation is a component's replica, and the replicas of its dependency
// closure, in the secondary environment: what was decided, why, and where it
// stands. It is persisted at every step so that a restarted daemon resumes it.
type Allocation struct {
	ID        string      `json:"id"`
	Component ComponentID `json:"component"`
	Phase     Phase       `json:"phase"`
	Reason    string      `json:"reason"`
	// Emergency is set when the allocation was made after the failure, with
	// no prediction ahead of it.
	Emergency bool `json:"emergency,omitempty"`
	// Members are the instances, dependencies first and the component last.
	Members []Member `json:"members"`
	// Sizing explains each member's requirements and where it was placed:
	// which percentile of which window, which factors, which offer and why.
	Sizing      []string  `json:"sizing,omitempty"`
	PredictedAt time.Time `json:"predicted_at"`
	PrewarmedAt time.Time `json:"prewarmed_at,omitzero"`
	SwitchedAt  time.Time `json:"switched_at,omitzero"`
	ReleasedAt  time.Time `json:"released_at,omitzero"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Clone returns a copy of a that shares no slice with it, for a holder
// that changes its copy while others read theirs.
func (a Allocation) Clone() Allocation {
	a.Members = slices.Clone(a.Members)
	a.Sizing = slices.Clone(a.Sizing)
	return a
}

// Member is one instance of an allocation.
type Member struct {
	Component  ComponentID `json:"component"`
	InstanceID string      `json:"instance_id"`
	URL        string      `json:"url,omitempty"`
	DataDir    string      `json:"data_dir,omitempty"`
	// Offer and Resources are what placement chose for the instance.
	Offer         string    `json:"offer,omitempty"`
	Resources     Resources `json:"resources,omitzero"`
	ProvisionedAt time.Time `json:"provisioned_at,omitzero"`
	ReleasedAt    time.Time `json:"released_at,omitzero"`
}
