package shop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/phoenixsre/phoenix/examples/shop/orderlog"
)

func TestFlags(t *testing.T) {
	cases := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{"help", []string{"--help"}, 0, []string{"gateway", "orders", "inventory", "SHOP_ADMIN_TOKEN"}, nil},
		{"no service", nil, 2, nil, []string{"usage: shop SERVICE"}},
		{"unknown service", []string{"billing"}, 2, nil, []string{`unknown service "billing"`}},
		{"orders help lists every flag", []string{"orders", "--help"}, 0, []string{
			"-listen", "127.0.0.1:8081", "-otlp", "-service-name", "-instance", "-environment",
			"-memory-limit", "-data", "-inventory", "-follow", "-upstream-timeout", "-shutdown-timeout",
		}, nil},
		{"gateway help", []string{"gateway", "-h"}, 0, []string{"-orders", "127.0.0.1:8080", "-upstream-timeout", "(default 30s)"}, nil},
		{"inventory help", []string{"inventory", "--help"}, 0, []string{"127.0.0.1:8082", "-memory-limit"}, nil},
		{"gateway needs orders", []string{"gateway"}, 2, nil, []string{"--orders is required"}},
		{"gateway orders not http", []string{"gateway", "--orders", "ftp://x"}, 2, nil, []string{`--orders "ftp://x"`}},
		{"orders needs data", []string{"orders", "--inventory", "http://127.0.0.1:1"}, 2, nil, []string{"--data is required"}},
		{"orders needs inventory", []string{"orders", "--data", "/tmp/x"}, 2, nil, []string{"--inventory is required"}},
		{"bad listen", []string{"inventory", "--listen", "nope"}, 2, nil, []string{`--listen "nope"`}},
		{"bad otlp", []string{"inventory", "--otlp", "127.0.0.1:4318"}, 2, nil, []string{"--otlp"}},
		{"unknown flag", []string{"inventory", "--bogus"}, 2, nil, []string{"-bogus", "shop inventory --help"}},
		{"stray argument", []string{"inventory", "extra"}, 2, nil, []string{`unexpected argument "extra"`}},
		{"negative memory limit", []string{"inventory", "--memory-limit", "-1"}, 2, nil, []string{"--memory-limit -1"}},
		{"bad duration", []string{"gateway", "--orders", "http://x", "--upstream-timeout", "soon"}, 2, nil, []string{"upstream-timeout"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(t.Context(), c.args, &stdout, &stderr)
			if code != c.code {
				t.Errorf("exit code %d, want %d; stderr: %s", code, c.code, stderr.String())
			}
			for _, s := range c.stdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout.String())
				}
			}
			for _, s := range c.stderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr.String())
				}
			}
		})
	}
}

func TestWriteThroughGatewayReadsBack(t *testing.T) {
	t.Parallel()
	s := startShop(t, nil)
	for _, p := range []*proc{s.inventory, s.orders, s.gateway} {
		if code, body := do(t, http.MethodGet, p.url+"/healthz", ""); code != 200 || body != "ok" {
			t.Errorf("%s /healthz = %d %q", p.name, code, body)
		}
	}
	values := map[string]string{"a1": "first", "order.2_x-y": "second", "empty": ""}
	for id, v := range values {
		if code, body := do(t, http.MethodPut, s.gateway.url+"/orders/"+id, v); code != http.StatusNoContent {
			t.Fatalf("PUT %s = %d %q", id, code, body)
		}
	}
	for id, v := range values {
		if code, body := do(t, http.MethodGet, s.gateway.url+"/orders/"+id, ""); code != 200 || body != v {
			t.Errorf("GET %s = %d %q, want 200 %q", id, code, body, v)
		}
	}
	big := strings.Repeat("v", orderlog.MaxValueLen)
	cases := []struct {
		name, method, path, body string
		code                     int
		contains                 string
	}{
		{"missing order", http.MethodGet, "/orders/nope", "", 404, `order "nope" not found`},
		{"bad id", http.MethodGet, "/orders/a%20b", "", 400, "bad order id"},
		{"largest value", http.MethodPut, "/orders/big", big, 204, ""},
		{"value too large", http.MethodPut, "/orders/big", big + "x", 413, "value too large"},
		{"no such route", http.MethodDelete, "/orders/a1", "", 405, ""},
	}
	for _, c := range cases {
		code, body := do(t, c.method, s.gateway.url+c.path, c.body)
		if code != c.code || !strings.Contains(body, c.contains) {
			t.Errorf("%s: %s %s = %d %q, want %d containing %q", c.name, c.method, c.path, code, body, c.code, c.contains)
		}
	}
	if code, body := do(t, http.MethodGet, s.gateway.url+"/orders/big", ""); code != 200 || body != big {
		t.Errorf("GET big = %d, %d bytes; want the %d-byte value", code, len(body), len(big))
	}

	// The inventory answer is a deterministic function of the sku.
	_, a := do(t, http.MethodGet, s.inventory.url+"/stock/sku-7", "")
	_, b := do(t, http.MethodGet, s.inventory.url+"/stock/sku-7", "")
	if st, err := decodeStock([]byte(a), "sku-7"); err != nil || a != b || st.Available != available("sku-7") {
		t.Errorf("stock answers %q and %q (%v)", a, b, err)
	}

	// Orders refuses to answer without inventory; the gateway reports a
	// missing orders service as 502.
	s.inventory.stop()
	if code, body := do(t, http.MethodGet, s.gateway.url+"/orders/a1", ""); code != 503 || !strings.Contains(body, "inventory unreachable") {
		t.Errorf("GET without inventory = %d %q, want 503 naming inventory", code, body)
	}
	s.orders.stop()
	if code, body := do(t, http.MethodGet, s.gateway.url+"/orders/a1", ""); code != 502 || !strings.Contains(body, "orders unreachable") {
		t.Errorf("GET without orders = %d %q, want 502 naming orders", code, body)
	}
	s.gateway.stop()
}

// TestOrdersKeepsAcknowledgedWritesAcrossKill9 kills orders while writers
// are busy; every write it acknowledged must read back after a restart.
func TestOrdersKeepsAcknowledgedWritesAcrossKill9(t *testing.T) {
	t.Parallel()
	inv := startProc(t, nil, "inventory")
	dir := t.TempDir()
	orders := startProc(t, nil, "orders", "--data", dir, "--inventory", inv.url)

	const writers, killAfter = 8, 300
	var mu sync.Mutex
	acked := map[string]string{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				id, v := fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("value %d/%d %s", w, i, strings.Repeat("x", i%200))
				code, _, err := tryDo(http.MethodPut, orders.url+"/orders/"+id, v)
				if err != nil || code != http.StatusNoContent {
					return // the process is gone
				}
				mu.Lock()
				acked[id] = v
				mu.Unlock()
			}
		})
	}
	eventually(t, 30*time.Second, "writes acknowledged", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= killAfter, fmt.Sprintf("%d acknowledged", len(acked))
	})
	orders.kill9()
	wg.Wait()
	if !killedBySIGKILL(orders.state) {
		t.Fatalf("orders ended with %v, want SIGKILL", orders.state)
	}

	restarted := startProc(t, nil, "orders", "--data", dir, "--inventory", inv.url)
	for id, v := range acked {
		if code, body := do(t, http.MethodGet, restarted.url+"/orders/"+id, ""); code != 200 || body != v {
			t.Fatalf("acknowledged %s lost after kill -9: GET = %d %q", id, code, body)
		}
	}
	t.Logf("%d acknowledged writes survived kill -9", len(acked))
}

func TestOrdersRecoversTornTailAndDetectsCorruption(t *testing.T) {
	t.Parallel()
	inv := startProc(t, nil, "inventory")
	dir := t.TempDir()
	logPath := filepath.Join(dir, orderlog.FileName)
	orders := startProc(t, nil, "orders", "--data", dir, "--inventory", inv.url)
	for _, id := range []string{"one", "two", "three"} {
		if code, body := do(t, http.MethodPut, orders.url+"/orders/"+id, "value of "+id); code != 204 {
			t.Fatalf("PUT %s = %d %q", id, code, body)
		}
	}
	orders.stop()
	full, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	third := len(orderlogRecord(t, "three", "value of three"))

	// Torn: the last record loses its last 3 bytes.
	if err := os.WriteFile(logPath, full[:len(full)-3], 0o644); err != nil {
		t.Fatal(err)
	}
	orders = startProc(t, nil, "orders", "--data", dir, "--inventory", inv.url)
	if want := fmt.Sprintf(`"msg":"truncated torn log tail"`); !strings.Contains(orders.logs.String(), want) ||
		!strings.Contains(orders.logs.String(), fmt.Sprintf(`"bytes":%d`, third-3)) {
		t.Errorf("restart did not log the torn tail of %d bytes:\n%s", third-3, orders.logs)
	}
	if code, _ := do(t, http.MethodGet, orders.url+"/orders/two", ""); code != 200 {
		t.Errorf("GET two after recovery = %d", code)
	}
	if code, _ := do(t, http.MethodGet, orders.url+"/orders/three", ""); code != 404 {
		t.Errorf("GET three (torn) = %d, want 404", code)
	}
	orders.stop()

	// Corrupt: a flipped bit in the (now last) record "two".
	cur, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cur[len(cur)-1] ^= 0x04
	if err := os.WriteFile(logPath, cur, 0o644); err != nil {
		t.Fatal(err)
	}
	orders = startProc(t, nil, "orders", "--data", dir, "--inventory", inv.url)
	if logs := orders.logs.String(); !strings.Contains(logs, "truncated corrupt log tail") || !strings.Contains(logs, "CRC32C") {
		t.Errorf("restart did not report the corrupt record:\n%s", logs)
	}
	if code, _ := do(t, http.MethodGet, orders.url+"/orders/two", ""); code != 404 {
		t.Errorf("GET two (corrupt) = %d, want 404", code)
	}
	if code, body := do(t, http.MethodGet, orders.url+"/orders/one", ""); code != 200 || body != "value of one" {
		t.Errorf("GET one = %d %q", code, body)
	}
}

func orderlogRecord(t *testing.T, id, value string) []byte {
	t.Helper()
	b, err := orderlog.AppendRecord(nil, id, []byte(value))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFollowerServesCopiedLogAndPromotes plays Phoenix's replicator: it
// copies the primary's log into a standby's directory in pieces, one of
// which splits a record, then by a whole-file rename, and promotes it.
func TestFollowerServesCopiedLogAndPromotes(t *testing.T) {
	t.Parallel()
	env := []string{AdminTokenEnv + "=" + testToken}
	inv := startProc(t, env, "inventory")
	primaryDir, standbyDir := t.TempDir(), t.TempDir()
	primary := startProc(t, env, "orders", "--data", primaryDir, "--inventory", inv.url)
	standby := startProc(t, env, "orders", "--data", standbyDir, "--inventory", inv.url, "--follow")

	const n = 12
	for i := range n {
		if code, body := do(t, http.MethodPut, primary.url+fmt.Sprintf("/orders/k%d", i), fmt.Sprint("v", i)); code != 204 {
			t.Fatalf("PUT k%d = %d %q", i, code, body)
		}
	}
	log, err := os.ReadFile(filepath.Join(primaryDir, orderlog.FileName))
	if err != nil {
		t.Fatal(err)
	}
	var ends []int64
	if _, err := orderlog.Scan(bytes.NewReader(log), 0, int64(len(log)), func(_ orderlog.Record, end int64) { ends = append(ends, end) }); err != nil || len(ends) != n {
		t.Fatalf("primary log: %d records, %v", len(ends), err)
	}
	if code, body := do(t, http.MethodGet, standby.url+"/healthz", ""); code != 200 || body != "ok" {
		t.Errorf("standby /healthz = %d %q", code, body)
	}

	// Append in pieces: the first ends mid-way through record 3.
	standbyLog := filepath.Join(standbyDir, orderlog.FileName)
	split := ends[2] + 5
	appendBytes(t, standbyLog, log[:split])
	waitState(t, standby.url, ends[2], 3)
	if code, body := do(t, http.MethodGet, standby.url+"/orders/k2", ""); code != 200 || body != "v2" {
		t.Errorf("standby GET k2 = %d %q", code, body)
	}
	if code, _ := do(t, http.MethodGet, standby.url+"/orders/k3", ""); code != 404 {
		t.Errorf("standby served the split record k3: %d", code)
	}
	appendBytes(t, standbyLog, log[split:ends[7]])
	waitState(t, standby.url, ends[7], 8)
	if code, body := do(t, http.MethodPut, standby.url+"/orders/new", "x"); code != 503 || !strings.Contains(body, "standby: not promoted") {
		t.Errorf("PUT on the standby = %d %q, want 503 standby", code, body)
	}

	// Replace the whole file by rename, as a full copy does.
	tmp := standbyLog + ".tmp"
	if err := os.WriteFile(tmp, log, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, standbyLog); err != nil {
		t.Fatal(err)
	}
	waitState(t, standby.url, int64(len(log)), n)

	code, body := adminDo(t, http.MethodPost, standby.url+"/admin/promote", "")
	var st orderlog.State
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || st.Records != n || st.Offset != int64(len(log)) || st.Role != orderlog.Primary {
		t.Fatalf("promote = %d %s, want 200 with %d records at offset %d", code, body, n, len(log))
	}
	if code, body := do(t, http.MethodPut, standby.url+"/orders/new", "after promotion"); code != 204 {
		t.Fatalf("PUT after promotion = %d %q", code, body)
	}
	code, body = adminDo(t, http.MethodPost, standby.url+"/admin/promote", "")
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || st.Records != n+1 || st.Role != orderlog.Primary {
		t.Errorf("second promote = %d %s, want 200, still primary with %d records", code, body, n+1)
	}
	if code, body := do(t, http.MethodGet, standby.url+"/orders/k11", ""); code != 200 || body != "v11" {
		t.Errorf("GET k11 after promotion = %d %q", code, body)
	}
}

func appendBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

// waitState polls /admin/state until the standby has applied records up
// to offset.
func waitState(t *testing.T, base string, offset int64, records int64) {
	t.Helper()
	eventually(t, 10*time.Second, fmt.Sprintf("standby at offset %d", offset), func() (bool, string) {
		code, body := adminDo(t, http.MethodGet, base+"/admin/state", "")
		var st orderlog.State
		if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
			return false, fmt.Sprintf("%d %s", code, body)
		}
		return st.Role == orderlog.Follower && st.Offset == offset && st.Records == records, body
	})
}

// TestGracefulShutdownFinishesInFlight sends SIGTERM to orders while a
// write waits on inventory: orders must stop accepting, finish the write,
// and exit 0 with the write durable.
func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	t.Parallel()
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stock/{sku}", func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-release
		stockHandler(w, r)
	})
	inv := httptest.NewServer(mux)
	defer inv.Close()
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(release) }) }
	defer releaseAll()

	dir := t.TempDir()
	orders := startProc(t, nil, "orders", "--data", dir, "--inventory", inv.URL)
	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, body, err := tryDo(http.MethodPut, orders.url+"/orders/inflight", "held")
		done <- result{code, body, err}
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the write never reached inventory")
	}
	if err := orders.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "orders stops accepting connections", func() (bool, string) {
		_, _, err := tryDo(http.MethodGet, orders.url+"/healthz", "")
		return err != nil, fmt.Sprint(err)
	})
	releaseAll()
	if r := <-done; r.err != nil || r.code != http.StatusNoContent {
		t.Fatalf("in-flight write = %d %q, %v; want 204", r.code, r.body, r.err)
	}
	if st := orders.wait(10 * time.Second); st.ExitCode() != 0 {
		t.Fatalf("orders exited with %v", st)
	}
	restarted := startProc(t, nil, "orders", "--data", dir, "--inventory", inv.URL)
	if code, body := do(t, http.MethodGet, restarted.url+"/orders/inflight", ""); code != 200 || body != "held" {
		t.Errorf("after restart GET = %d %q, want the in-flight write", code, body)
	}
}
