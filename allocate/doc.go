// Package allocate is the Resource Allocator's pure part: deciders that read
// a snapshot of state and return a plan, for the control loop to carry out.
//
// Decide says what to do per component (pre-warm, switch, release).
// Requirements sizes each member of a closure from its measured history (a
// percentile of a window, times headroom and the load it must absorb),
// explaining every figure. Place chooses the cheapest set of offers that
// fits those requirements under the availability rules (spread replicas
// over zones, keep a closure in one zone), Nomad's way: feasibility, then
// ranking, then an exact assignment. CheckBudget holds plans to a cap in
// instance-hours per day. None of them does I/O or reads the clock.
package allocate
