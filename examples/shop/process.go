package shop

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// selfRSS returns this process's resident memory in bytes, from
// /proc/self/statm (the same figure the OOM killer weighs).
func selfRSS() (int64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, fmt.Errorf("read resident memory: %w", err)
	}
	pages, err := parseStatm(b)
	if err != nil {
		return 0, fmt.Errorf("/proc/self/statm: %w", err)
	}
	return pages * int64(os.Getpagesize()), nil
}

// parseStatm returns the resident field, in pages, of a statm line
// ("size resident shared text lib data dt").
func parseStatm(b []byte) (int64, error) {
	fields := bytes.Fields(b)
	if len(fields) < 2 {
		return 0, fmt.Errorf("want at least 2 fields, got %d", len(fields))
	}
	pages, err := strconv.ParseInt(string(fields[1]), 10, 64)
	if err != nil || pages < 0 {
		return 0, fmt.Errorf("resident field %q is not a page count", fields[1])
	}
	if pages > (1<<62)/int64(os.Getpagesize()) {
		return 0, fmt.Errorf("resident field %d pages is implausible", pages)
	}
	return pages, nil
}

// killSelf ends the process with SIGKILL: no deferred code, no flush, as
// when the kernel kills it.
func killSelf() {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is delivered asynchronously; never return
}
