// Package scale is Phoenix's Dynamic Scaling Engine: it decides how many
// replicas a component needs in the reconstructed environment and carries the
// decisions out.
//
// Deciding is pure. HPASpec.Decide is the Kubernetes Horizontal Pod
// Autoscaler's algorithm (pkg/controller/podautoscaler) over a Snapshot:
// ceil(current × metric / target) with a tolerance band, scale-up and
// scale-down stabilisation windows, rate policies and min/max replicas, so
// that the same numbers give the same decisions. Predictive adds demand
// forecasts: it provisions for an upper quantile of the peak demand expected
// over a replica's start-up time, never below what the measured demand needs,
// and falls back to the HPA when the forecast is unsure. The quantile's level
// is chosen at each decision by a price per replica (a budgeted newsvendor:
// higher where the forecast is sharp, lower where it is wide), which an
// integral controller sets so that Predictive runs no more replicas than a
// shadow HPA would.
//
// Acting is separate: an Actor turns a replica count into provider instances
// registered in a traffic pool, and removes replicas by draining them from
// the pool before releasing them. A Scaler is the loop that measures
// demand, asks a policy and has the Actor carry the decision out. Replay
// runs a policy against a recorded demand series and a capacity model, for
// "phoenix eval scale".
package scale
