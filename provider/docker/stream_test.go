package docker

import (
	"strings"
	"testing"
)

func TestCheckStream(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"progress then done", `{"status":"Importing","progressDetail":{"current":1,"total":2}}` + "\n" + `{"status":"sha256:abc"}`, ""},
		{"empty", "", ""},
		{"error in stream", `{"status":"Importing"}{"errorDetail":{"message":"no space left on device"},"error":"no space left on device"}`, "no space left"},
		{"garbage", `{"status":`, "progress stream"},
		{"not json", `<html>`, "progress stream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkStream(strings.NewReader(tc.in))
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("checkStream = %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzCheckStream: whatever the engine sends, checkStream returns without
// panicking, and an error it returns says something.
func FuzzCheckStream(f *testing.F) {
	f.Add(`{"status":"Importing"}`)
	f.Add(`{"errorDetail":{"code":1,"message":"x"}}`)
	f.Add(`{"aux":{"ID":"sha256:1"}}{"stream":"ok"}`)
	f.Add(`[1,2]`)
	f.Fuzz(func(t *testing.T, in string) {
		if err := checkStream(strings.NewReader(in)); err != nil && err.Error() == "" {
			t.Fatalf("checkStream(%q) returned an empty error", in)
		}
	})
}
