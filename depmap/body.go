package depmap

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// requestError is a refusal with its HTTP status and the reason sent back.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

// readBody reads a span receiver's request body within max bytes, both as
// sent and once gunzipped (Content-Encoding gzip), so that neither a large
// body nor a small bomb gets past the bound.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, *requestError) {
	var rd io.Reader = http.MaxBytesReader(w, r.Body, max)
	switch ce := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); ce {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return nil, readError("gzip header", err, max)
		}
		defer zr.Close()
		// One byte past the bound tells "exactly max" from "more than max".
		rd = io.LimitReader(zr, max+1)
	default:
		return nil, &requestError{http.StatusUnsupportedMediaType, fmt.Sprintf("content encoding %q not supported: use gzip or none", ce)}
	}
	body, err := io.ReadAll(rd)
	if err != nil {
		return nil, readError("read body", err, max)
	}
	if int64(len(body)) > max {
		return nil, &requestError{http.StatusRequestEntityTooLarge, fmt.Sprintf("body expands beyond %d bytes once decompressed", max)}
	}
	return body, nil
}

func readError(op string, err error, max int64) *requestError {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return &requestError{http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", max)}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &requestError{http.StatusBadRequest, op + ": body truncated"}
	}
	return &requestError{http.StatusBadRequest, fmt.Sprintf("%s: %v", op, err)}
}
