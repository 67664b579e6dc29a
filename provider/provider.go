package provider

import (
	"context"
	"errors"
	"time"

	"github.com/phoenixsre/phoenix"
)

// Provider is the boundary to a real environment: it starts and stops
// instances there. Every method takes ctx and is safe to call again after a
// crash: Provision is idempotent per Spec.ID, Release of an unknown ID is not
// an error.
type Provider interface {
	// Offers lists what the environment can run, with its price and room.
	Offers(ctx context.Context) ([]Offer, error)
	// Provision starts the instance described by spec, or returns the one
	// already running under spec.ID. It returns once the instance is started,
	// not once it is ready: readiness is the caller's health check.
	Provision(ctx context.Context, spec Spec) (Instance, error)
	// Status reports an instance; ErrNotFound if the provider has none by id.
	Status(ctx context.Context, id string) (Instance, error)
	// Release stops the instance and frees what it used.
	Release(ctx context.Context, id string) error
}

// ErrNotFound is returned by Status for an ID the provider does not know.
var ErrNotFound = errors.New("instance not found")

// ErrNoCapacity is returned by Provision when the environment cannot fit the
// spec. Callers may try the next offer.
var ErrNoCapacity = errors.New("no capacity")

// ErrInvalidSpec is returned (wrapped) by Provision for a spec that no offer
// of the provider can run, such as a malformed ID or an empty command:
// trying again, or on another offer, cannot help.
var ErrInvalidSpec = errors.New("invalid spec")

// Spec describes one instance to start.
type Spec struct {
	// ID is the idempotency key: a second Provision with the same ID returns
	// the first one's instance.
	ID        string
	Component phoenix.ComponentID
	// Command is the argv. The provider fills the placeholders {addr}
	// (host:port the instance must listen on), {port} and {data_dir}.
	Command []string
	// Env is added to the instance's environment, with the same placeholders.
	Env       map[string]string
	Resources phoenix.Resources
	// Offer is the chosen offer's ID; empty lets the provider choose.
	Offer string
}

// State is an instance's run state as the provider sees it.
type State string

// Instance states.
const (
	StateRunning State = "running"
	StateExited  State = "exited"
)

// Instance is a started instance.
type Instance struct {
	ID        string
	Component phoenix.ComponentID
	Provider  string
	// Addr is host:port where the instance listens.
	Addr string
	// DataDir is the instance's own data directory, on a path the controller
	// can write to (the state transfer target).
	DataDir string
	State   State
	Started time.Time
	// Detail is provider-specific, for people: "pid 4242".
	Detail string
}

// Offer is something a provider can run an instance on.
type Offer struct {
	ID       string
	Provider string
	Zone     string
	// Size is what one instance on this offer gets.
	Size phoenix.Resources
	// PricePerHour is in the installation's currency; 0 for local processes.
	PricePerHour float64
	// Performance is a relative score, 1 for the reference machine.
	Performance float64
	// Free is how many more instances of Size fit.
	Free int
}
