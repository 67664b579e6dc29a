package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// fetch GETs a metrics endpoint and returns its body and Content-Type. It
// fails on a transport error, a non-2xx status or a body over maxBody bytes;
// the errors say which, so Health can show why a target is down.
func fetch(ctx context.Context, client *http.Client, url string, timeout time.Duration, maxBody int64) ([]byte, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", fmt.Errorf("bad target URL %q: %w", url, err)
	}
	req.Header.Set("Accept", acceptHeader)
	req.Header.Set("User-Agent", "phoenix-telemetry")
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", strconv.FormatFloat(timeout.Seconds(), 'f', -1, 64))
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", timeoutOr(ctx, timeout, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 128))
		return nil, "", fmt.Errorf("HTTP status %s: %q", resp.Status, snippet)
	}
	if resp.ContentLength > maxBody {
		return nil, "", fmt.Errorf("body of %d bytes exceeds the %d-byte limit", resp.ContentLength, maxBody)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, "", fmt.Errorf("read body: %w", timeoutOr(ctx, timeout, err))
	}
	if int64(len(body)) > maxBody {
		return nil, "", fmt.Errorf("body exceeds the %d-byte limit", maxBody)
	}
	return body, resp.Header.Get("Content-Type"), nil
}

// timeoutOr names a scrape timeout plainly instead of as a context error.
func timeoutOr(ctx context.Context, timeout time.Duration, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("timed out after %s: %w", timeout, err)
	}
	return err
}
