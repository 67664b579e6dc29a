package shop

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Fault kinds accepted by POST /admin/fault.
const (
	faultLeak    = "leak"
	faultLatency = "latency"
	faultErrors  = "errors"
	faultDisk    = "disk"
	faultCrash   = "crash"
	faultClear   = "clear"
)

// Upper bounds that keep a typo from taking the host down with the service.
const (
	maxFaultRate    = 1 << 30 // bytes per second, leak and disk
	maxInjectedMs   = 600_000 // ten minutes
	maxFaultBodyLen = 4 << 10
)

// faultSpec is one fault as requested and as reported by GET /admin/fault.
// Which fields apply depends on Kind.
type faultSpec struct {
	Kind           string  `json:"kind"`
	BytesPerSecond int64   `json:"bytes_per_second,omitempty"` // leak, disk
	MsPerSecond    float64 `json:"ms_per_second,omitempty"`    // latency
	MaxMs          float64 `json:"max_ms,omitempty"`           // latency
	PerSecond      float64 `json:"per_second,omitempty"`       // errors
	Max            float64 `json:"max,omitempty"`              // errors, 0..1
}

// faultRequest mirrors faultSpec with pointers, to tell a missing field
// from a zero and to refuse fields that do not belong to the kind.
type faultRequest struct {
	Kind           *string  `json:"kind"`
	BytesPerSecond *int64   `json:"bytes_per_second"`
	MsPerSecond    *float64 `json:"ms_per_second"`
	MaxMs          *float64 `json:"max_ms"`
	PerSecond      *float64 `json:"per_second"`
	Max            *float64 `json:"max"`
}

// decodeFaultSpec parses and validates a POST /admin/fault body. Errors
// say what to send instead; they become 400 answers.
func decodeFaultSpec(body []byte) (faultSpec, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req faultRequest
	if err := dec.Decode(&req); err != nil {
		return faultSpec{}, fmt.Errorf("malformed fault JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return faultSpec{}, errors.New("malformed fault JSON: data after the object")
	}
	if req.Kind == nil {
		return faultSpec{}, errors.New(`fault has no "kind": use leak, latency, errors, disk, crash or clear`)
	}
	spec := faultSpec{Kind: *req.Kind}
	present := req.present()
	allowed := map[string][]string{
		faultLeak:    {"bytes_per_second"},
		faultDisk:    {"bytes_per_second"},
		faultLatency: {"ms_per_second", "max_ms"},
		faultErrors:  {"per_second", "max"},
		faultCrash:   nil,
		faultClear:   nil,
	}
	fields, ok := allowed[spec.Kind]
	if !ok {
		return faultSpec{}, fmt.Errorf("unknown fault kind %q: use leak, latency, errors, disk, crash or clear", spec.Kind)
	}
	for _, name := range present {
		if !slices.Contains(fields, name) {
			return faultSpec{}, fmt.Errorf("field %q does not apply to a %s fault (it takes %s)", name, spec.Kind, describeFields(fields))
		}
	}
	for _, name := range fields {
		if !slices.Contains(present, name) {
			return faultSpec{}, fmt.Errorf("a %s fault needs %s", spec.Kind, describeFields(fields))
		}
	}
	switch spec.Kind {
	case faultLeak, faultDisk:
		spec.BytesPerSecond = *req.BytesPerSecond
		if spec.BytesPerSecond <= 0 || spec.BytesPerSecond > maxFaultRate {
			return faultSpec{}, fmt.Errorf("bytes_per_second %d: want 1..%d", spec.BytesPerSecond, maxFaultRate)
		}
	case faultLatency:
		spec.MsPerSecond, spec.MaxMs = *req.MsPerSecond, *req.MaxMs
		if err := inRange("ms_per_second", spec.MsPerSecond, maxInjectedMs); err != nil {
			return faultSpec{}, err
		}
		if err := inRange("max_ms", spec.MaxMs, maxInjectedMs); err != nil {
			return faultSpec{}, err
		}
	case faultErrors:
		spec.PerSecond, spec.Max = *req.PerSecond, *req.Max
		// per_second may exceed 1: the probability then reaches max within
		// a second.
		if err := inRange("per_second", spec.PerSecond, 1000); err != nil {
			return faultSpec{}, err
		}
		if err := inRange("max", spec.Max, 1); err != nil {
			return faultSpec{}, err
		}
	}
	return spec, nil
}

func (r faultRequest) present() []string {
	var names []string
	if r.BytesPerSecond != nil {
		names = append(names, "bytes_per_second")
	}
	if r.MsPerSecond != nil {
		names = append(names, "ms_per_second")
	}
	if r.MaxMs != nil {
		names = append(names, "max_ms")
	}
	if r.PerSecond != nil {
		names = append(names, "per_second")
	}
	if r.Max != nil {
		names = append(names, "max")
	}
	return names
}

func describeFields(fields []string) string {
	if len(fields) == 0 {
		return "no other field"
	}
	return `"` + strings.Join(fields, `" and "`) + `"`
}

// inRange requires 0 < v <= limit.
func inRange(name string, v, limit float64) error {
	if math.IsNaN(v) || v <= 0 || v > limit {
		return fmt.Errorf("%s %s: want a number above 0 and at most %s", name,
			strconv.FormatFloat(v, 'g', -1, 64), strconv.FormatFloat(limit, 'g', -1, 64))
	}
	return nil
}
