package replicate

import (
	"context"
	"io"

	"golang.org/x/time/rate"
)

// NewThrottle returns a limiter of bytesPerSecond for the bytes a transfer
// reads from the source, or nil (unlimited) when bytesPerSecond <= 0. Its
// burst is one copy buffer, so the rate holds over any quarter second.
func NewThrottle(bytesPerSecond int64) *rate.Limiter {
	if bytesPerSecond <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(bytesPerSecond), max(copyChunk, int(min(bytesPerSecond/4, 1<<30))))
}

// throttle waits until lim allows n more bytes. A nil lim allows anything.
func throttle(ctx context.Context, lim *rate.Limiter, n int) error {
	if lim == nil {
		return nil
	}
	for n > 0 {
		k := min(n, lim.Burst())
		if err := lim.WaitN(ctx, k); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		n -= k
	}
	return nil
}

// throttledReader charges what it reads to lim.
type throttledReader struct {
	ctx context.Context
	r   io.Reader
	lim *rate.Limiter
}

func (t *throttledReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if terr := throttle(t.ctx, t.lim, n); terr != nil && err == nil {
		err = terr
	}
	return n, err
}
