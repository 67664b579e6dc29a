package telemetry

import (
	"errors"
	"fmt"
	"time"

	promhistogram "github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// appendResult is what a push request's append did: how many samples went
// in, and the first reason of each kind of refusal.
type appendResult struct {
	samples, histograms int
	// refused samples are the sender's fault (invalid, out of order, too
	// far in the future): 400, not worth retrying.
	refused     int
	refuseFirst error
	// limited samples hit a limit that may lift: 429 with Retry-After.
	limited    int
	limitFirst *RetryableError
}

func (r *appendResult) refuse(n int, err error) {
	r.refused += n
	if r.refuseFirst == nil {
		r.refuseFirst = err
	}
}

func (r *appendResult) limit(n int, err *RetryableError) {
	r.limited += n
	if r.limitFirst == nil {
		r.limitFirst = err
	}
}

// err is the request's outcome once committed: nil when everything was
// stored; otherwise the refusal that says how much was not. A limit wins
// over a bad sample, so that the sender retries.
func (r appendResult) err() error {
	stored := r.samples + r.histograms
	total := stored + r.refused + r.limited
	switch {
	case r.limitFirst != nil:
		return &RetryableError{
			Err:   fmt.Errorf("%d of %d samples refused (%d stored): %w", r.limited+r.refused, total, stored, r.limitFirst.Err),
			After: r.limitFirst.After,
		}
	case r.refuseFirst != nil:
		return badRequest("%d of %d samples refused (%d stored), first: %v", r.refused, total, stored, r.refuseFirst)
	}
	return nil
}

// sampleErrors are the append errors that mean "this sample", not "the
// store": the sender sent something the store cannot take.
var sampleErrors = []error{storage.ErrOutOfOrderSample, storage.ErrOutOfBounds, storage.ErrTooOldSample,
	storage.ErrDuplicateSampleForTimestamp, storage.ErrOutOfOrderST, storage.ErrNativeHistogramsDisabled}

func isSampleError(err error) bool {
	for _, e := range sampleErrors {
		if errors.Is(err, e) {
			return true
		}
	}
	var he promhistogram.Error
	return errors.As(err, &he)
}

// recordingAppender appends into the store and sorts each failure into
// the request's result: a refused or limited sample is counted and
// skipped (Append returns a nil error, so a converter goes on with the
// next one); any other failure is a store failure, and the request is
// rolled back and answered 500.
type recordingAppender struct {
	next   storage.AppenderV2
	maxT   int64 // samples after this are refused (ms)
	res    appendResult
	failed error
}

var _ storage.AppenderV2 = (*recordingAppender)(nil)

func newRecordingAppender(next storage.AppenderV2, maxT time.Time) *recordingAppender {
	return &recordingAppender{next: next, maxT: maxT.UnixMilli()}
}

func (a *recordingAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *promhistogram.Histogram, fh *promhistogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	if t > a.maxT {
		a.res.refuse(1, fmt.Errorf("sample of %s at %s is more than %s in the future", ls.String(), time.UnixMilli(t).UTC().Format(time.RFC3339), maxAheadTime))
		return ref, nil
	}
	r, err := a.next.Append(ref, ls, st, t, v, h, fh, opts)
	if err == nil || errors.Is(err, (*storage.AppendPartialError)(nil)) {
		if h != nil || fh != nil {
			a.res.histograms++
		} else {
			a.res.samples++
		}
		return r, nil
	}
	if re, ok := errors.AsType[*RetryableError](err); ok {
		a.res.limit(1, re)
		return ref, nil
	}
	if isSampleError(err) {
		a.res.refuse(1, fmt.Errorf("sample of %s at %d: %w", ls.String(), t, err))
		return ref, nil
	}
	if a.failed == nil {
		a.failed = fmt.Errorf("append %s: %w", ls.String(), err)
	}
	return ref, err
}

// commit commits what was appended, or rolls it all back after a store
// failure. The returned error is the store's; refusals are in the result.
func (a *recordingAppender) commit() (appendResult, error) {
	if a.failed != nil {
		_ = a.next.Rollback()
		return appendResult{}, fmt.Errorf("store samples: %w", a.failed)
	}
	if err := a.next.Commit(); err != nil {
		return appendResult{}, fmt.Errorf("store samples: %w", err)
	}
	return a.res, nil
}

func (a *recordingAppender) Commit() error {
	_, err := a.commit()
	return err
}

func (a *recordingAppender) Rollback() error { return a.next.Rollback() }
