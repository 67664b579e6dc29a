package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// What the push receivers share: the tenant of a request, a bound on
// requests in flight, and how a refusal becomes an HTTP status.

// admitter is the optional rate check of a receiver's storage; *Limiter is
// one. Receivers call it with a request's sample count before appending.
type admitter interface {
	Admit(ctx context.Context, samples int) error
}

var _ admitter = (*Limiter)(nil)

// admit asks dst, if it rates requests, whether n samples may come in.
func admit(ctx context.Context, dst any, n int) error {
	if a, ok := dst.(admitter); ok {
		return a.Admit(ctx, n)
	}
	return nil
}

// requestTenant puts the tenant named by header (if any) into the
// request's context.
func requestTenant(r *http.Request, header string) (*http.Request, error) {
	id := r.Header.Get(header)
	if id == "" {
		return r, nil
	}
	if err := ValidateTenant(id); err != nil {
		return nil, fmt.Errorf("header %s: %w", header, err)
	}
	return r.WithContext(WithTenant(r.Context(), id)), nil
}

// inFlight bounds the requests a receiver works on at once, so that a burst
// is refused with 429 rather than buffered until memory runs out.
type inFlight chan struct{}

func newInFlight(n int) inFlight { return make(inFlight, n) }

// acquire takes a slot without waiting; false when all are taken.
func (f inFlight) acquire() bool {
	select {
	case f <- struct{}{}:
		return true
	default:
		return false
	}
}

func (f inFlight) release() { <-f }

// overloadRetryAfter is the Retry-After of a refusal for too many requests
// in flight: the time one request takes, rounded up to the header's unit.
const overloadRetryAfter = time.Second

// errOverloaded is the refusal when all in-flight slots are taken.
var errOverloaded = &RetryableError{Err: errors.New("too many requests in flight"), After: overloadRetryAfter}

// statusError is a refusal with its HTTP status, sent back with its reason.
type statusError struct {
	status int
	err    error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

func badRequest(format string, args ...any) *statusError {
	return &statusError{http.StatusBadRequest, fmt.Errorf(format, args...)}
}

func tooLarge(format string, args ...any) *statusError {
	return &statusError{http.StatusRequestEntityTooLarge, fmt.Errorf(format, args...)}
}

// httpStatus is the status an ingestion error is answered with: its own
// for a statusError, 429 for a RetryableError, 500 otherwise (a storage
// failure the sender should retry).
func httpStatus(err error) int {
	if se, ok := errors.AsType[*statusError](err); ok {
		return se.status
	}
	if _, ok := errors.AsType[*RetryableError](err); ok {
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

// setRetryAfter sets the Retry-After header when err is retryable.
func setRetryAfter(h http.Header, err error) {
	if re, ok := errors.AsType[*RetryableError](err); ok {
		h.Set("Retry-After", strconv.Itoa(retryAfterSeconds(re.After)))
	}
}
