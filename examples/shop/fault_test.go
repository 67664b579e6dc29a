package shop

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var adminEnv = []string{AdminTokenEnv + "=" + testToken}

func postFault(t *testing.T, base, body string) {
	t.Helper()
	if code, resp := adminDo(t, http.MethodPost, base+"/admin/fault", body); code != 200 {
		t.Fatalf("POST /admin/fault %s = %d %q", body, code, resp)
	}
}

// activeFaults returns GET /admin/fault's entries by kind.
func activeFaults(t *testing.T, base string) map[string]faultStatus {
	t.Helper()
	code, body := adminDo(t, http.MethodGet, base+"/admin/fault", "")
	var resp struct{ Faults []faultStatus }
	if code != 200 || json.Unmarshal([]byte(body), &resp) != nil {
		t.Fatalf("GET /admin/fault = %d %q", code, body)
	}
	out := map[string]faultStatus{}
	for _, f := range resp.Faults {
		out[f.Kind] = f
	}
	return out
}

func rss(t *testing.T, base string) float64 {
	t.Helper()
	return scrapeValue(t, base, "process_resident_memory_bytes")
}

func TestFaultLeakGrowsMemoryAndClearFreesIt(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's shadow memory hides RSS changes")
	}
	t.Parallel()
	p := startProc(t, adminEnv, "inventory")
	base := rss(t, p.url)
	postFault(t, p.url, `{"kind":"leak","bytes_per_second":268435456}`)
	eventually(t, 20*time.Second, "resident memory grows by 150 MiB", func() (bool, string) {
		r := rss(t, p.url)
		return r > base+150<<20, mib(r)
	})
	if f, ok := activeFaults(t, p.url)["leak"]; !ok || f.Level < 128<<20 {
		t.Errorf("GET /admin/fault leak = %+v", f)
	}
	postFault(t, p.url, `{"kind":"clear"}`)
	eventually(t, 20*time.Second, "resident memory falls back after clear", func() (bool, string) {
		r := rss(t, p.url)
		return r < base+60<<20, mib(r) + " vs base " + mib(base)
	})
	if n := len(activeFaults(t, p.url)); n != 0 {
		t.Errorf("%d faults active after clear", n)
	}
}

func mib(v float64) string { return fmt.Sprintf("%.1f MiB", v/(1<<20)) }

func TestFaultLatencyGrows(t *testing.T) {
	t.Parallel()
	p := startProc(t, adminEnv, "inventory")
	postFault(t, p.url, `{"kind":"latency","ms_per_second":1000,"max_ms":300}`)
	eventually(t, 20*time.Second, "a request delayed by at least 250ms", func() (bool, string) {
		start := time.Now()
		code, _ := do(t, http.MethodGet, p.url+"/stock/sku-1", "")
		took := time.Since(start)
		return code == 200 && took >= 250*time.Millisecond, took.String()
	})
	if f := activeFaults(t, p.url)["latency"]; f.Level != 300 || f.MaxMs != 300 {
		t.Errorf("latency fault = %+v, want level at its 300ms ceiling", f)
	}
	// The delay shows in the duration histogram Phoenix reads.
	fams := scrape(t, p.url)
	h := fams["http_request_duration_seconds"].GetMetric()[0].GetHistogram()
	var under250ms uint64
	for _, b := range h.GetBucket() {
		if b.GetUpperBound() == 0.25 {
			under250ms = b.GetCumulativeCount()
		}
	}
	if h.GetSampleCount()-under250ms < 1 {
		t.Errorf("no request above 250ms in the histogram: %v", h)
	}
	postFault(t, p.url, `{"kind":"clear"}`)
	if _, ok := activeFaults(t, p.url)["latency"]; ok {
		t.Error("latency fault still active after clear")
	}
}

func TestFaultErrorsAppear(t *testing.T) {
	t.Parallel()
	p := startProc(t, adminEnv, "inventory")
	postFault(t, p.url, `{"kind":"errors","per_second":5,"max":1}`)
	eventually(t, 20*time.Second, "an injected 500", func() (bool, string) {
		code, body := do(t, http.MethodGet, p.url+"/stock/sku-1", "")
		return code == 500 && strings.Contains(body, "injected fault"), body
	})
	if v := scrapeValue(t, p.url, "http_request_errors_total", "route", "GET /stock/{sku}"); v < 1 {
		t.Errorf("http_request_errors_total = %v, want at least 1", v)
	}
	// Healthz and admin stay honest under the fault.
	if code, _ := do(t, http.MethodGet, p.url+"/healthz", ""); code != 200 {
		t.Errorf("/healthz = %d under the errors fault", code)
	}
	postFault(t, p.url, `{"kind":"clear"}`)
	for range 20 {
		if code, body := do(t, http.MethodGet, p.url+"/stock/sku-1", ""); code != 200 {
			t.Fatalf("after clear GET = %d %q", code, body)
		}
	}
}

func TestFaultDiskFillsDataDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := startProc(t, adminEnv, "inventory", "--data", dir)
	postFault(t, p.url, `{"kind":"disk","bytes_per_second":33554432}`)
	eventually(t, 20*time.Second, "shop_disk_used_bytes reaches 16 MiB", func() (bool, string) {
		v := scrapeValue(t, p.url, "shop_disk_used_bytes")
		return v >= 16<<20, mib(v)
	})
	if entries, err := os.ReadDir(filepath.Join(dir, "fill")); err != nil || len(entries) == 0 {
		t.Errorf("no filler files under %s/fill: %v", dir, err)
	}
	postFault(t, p.url, `{"kind":"clear"}`)
	if _, err := os.Stat(filepath.Join(dir, "fill")); !os.IsNotExist(err) {
		t.Errorf("filler directory survives clear: %v", err)
	}
	if v := scrapeValue(t, p.url, "shop_disk_used_bytes"); v != 0 {
		t.Errorf("shop_disk_used_bytes = %v after clear, want 0", v)
	}
}

func TestMemoryLimitKillsProcess(t *testing.T) {
	t.Parallel()
	p := startProc(t, adminEnv, "inventory", "--memory-limit", "134217728")
	postFault(t, p.url, `{"kind":"leak","bytes_per_second":268435456}`)
	st := p.wait(30 * time.Second)
	if !killedBySIGKILL(st) {
		t.Fatalf("process ended with %v, want SIGKILL", st)
	}
	if !strings.Contains(p.logs.String(), "memory limit exceeded") {
		t.Errorf("no log line before the kill:\n%s", p.logs)
	}
}

func TestFaultCrashKillsProcess(t *testing.T) {
	t.Parallel()
	p := startProc(t, adminEnv, "inventory")
	code, _, err := tryDo(http.MethodPost, p.url+"/admin/fault", `{"kind":"crash"}`, "Authorization", "Bearer "+testToken)
	if err == nil && code != http.StatusAccepted {
		t.Errorf("crash answered %d, want 202 (or no answer)", code)
	}
	if st := p.wait(10 * time.Second); !killedBySIGKILL(st) {
		t.Fatalf("process ended with %v, want SIGKILL", st)
	}
}

func TestAdminAuth(t *testing.T) {
	t.Parallel()
	disabled := startProc(t, nil, "inventory")
	code, body := do(t, http.MethodPost, disabled.url+"/admin/fault", `{"kind":"clear"}`, "Authorization", "Bearer "+testToken)
	if code != 403 || !strings.Contains(body, "admin disabled: set SHOP_ADMIN_TOKEN") {
		t.Errorf("admin without a token configured = %d %q, want 403", code, body)
	}

	p := startProc(t, adminEnv, "orders", "--data", t.TempDir(), "--inventory", disabled.url)
	cases := []struct {
		name, method, path, auth, body string
		code                           int
		contains                       string
	}{
		{"no token", "POST", "/admin/fault", "", `{"kind":"clear"}`, 401, "bearer token"},
		{"wrong token", "POST", "/admin/fault", "Bearer nope", `{"kind":"clear"}`, 401, "bearer token"},
		{"not bearer", "POST", "/admin/fault", "Basic " + testToken, `{"kind":"clear"}`, 401, "bearer token"},
		{"wrong token on state", "GET", "/admin/state", "Bearer nope", "", 401, "bearer token"},
		{"wrong token on promote", "POST", "/admin/promote", "", "", 401, "bearer token"},
		{"malformed json", "POST", "/admin/fault", "Bearer " + testToken, `{"kind":`, 400, "malformed fault JSON"},
		{"unknown kind", "POST", "/admin/fault", "Bearer " + testToken, `{"kind":"flood"}`, 400, `unknown fault kind "flood"`},
		{"missing field", "POST", "/admin/fault", "Bearer " + testToken, `{"kind":"leak"}`, 400, `needs "bytes_per_second"`},
		{"field of another kind", "POST", "/admin/fault", "Bearer " + testToken, `{"kind":"leak","bytes_per_second":1,"max":1}`, 400, `field "max" does not apply`},
		{"probability above 1", "POST", "/admin/fault", "Bearer " + testToken, `{"kind":"errors","per_second":1,"max":1.5}`, 400, "max 1.5"},
		{"good", "POST", "/admin/fault", "Bearer " + testToken, `{"kind":"latency","ms_per_second":1,"max_ms":1}`, 200, `"kind":"latency"`},
		{"list", "GET", "/admin/fault", "Bearer " + testToken, "", 200, `"faults":[`},
		{"state", "GET", "/admin/state", "Bearer " + testToken, "", 200, `"role":"primary"`},
	}
	for _, c := range cases {
		var hdr []string
		if c.auth != "" {
			hdr = []string{"Authorization", c.auth}
		}
		code, body := do(t, c.method, p.url+c.path, c.body, hdr...)
		if code != c.code || !strings.Contains(body, c.contains) {
			t.Errorf("%s: %s %s = %d %q, want %d containing %q", c.name, c.method, c.path, code, body, c.code, c.contains)
		}
	}

	// The disk fault needs a data directory.
	noData := startProc(t, adminEnv, "inventory")
	if code, body := adminDo(t, http.MethodPost, noData.url+"/admin/fault", `{"kind":"disk","bytes_per_second":1}`); code != 409 || !strings.Contains(body, "--data") {
		t.Errorf("disk fault without --data = %d %q, want 409", code, body)
	}
}
