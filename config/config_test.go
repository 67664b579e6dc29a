package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phoenixsre/phoenix/config"
)

// TestBadConfigs keeps each bad fixture beside the messages it must produce:
// every message names the field and says what to write instead.
func TestBadConfigs(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"empty.yaml", []string{"config is empty", "components:"}},
		{"unknown-field.yaml", []string{`"limts" is not a known setting`, "line 5"}},
		{"bad-duration.yaml", []string{`"thirty seconds" is not a duration`, "e.g. 30s"}},
		{"bad-size.yaml", []string{`"150XB" is not a size`, "150MiB"}},
		{"thresholds-order.yaml", []string{
			"thresholds.switch: 0.6 must be above thresholds.prewarm (0.8)",
			"thresholds.release: 0.9 must be below thresholds.prewarm (0.8)",
		}},
		{"bad-component.yaml", []string{
			`components[0] (Orders!).name: component name "Orders!"`,
			`components[0] (Orders!).proxy: "localhost" is not host:port`,
			`components[0] (Orders!).primary.url: "ftp://x" is not an http(s) URL`,
			`components[0] (Orders!).replica.command: empty`,
			`components[0] (Orders!).state.method: "rsync" is not a method; write none, snapshot, incremental or hook`,
			`depends_on[0]: "ghost" is not a listed component`,
		}},
		{"no-components.yaml", []string{"components: no component to protect"}},
		{"state-needs-dir.yaml", []string{
			`state.dir: method "incremental" needs the primary's data directory`,
			`state.promote: "promote-it" is not "METHOD /path"`,
		}},
		{"duplicate.yaml", []string{`"orders" is listed twice`, "is already the proxy of orders"}},
		{"scale.yaml", []string{
			`components[0] (orders).scale.risk: 0.7: write the probability`, "at most 0.5",
			`components[1] (users).scale.target_utilization: 1.5: write the share`,
			`components[2] (carts).scale.policy: "reactive": write predictive or hpa`,
		}},
		{"not-yaml.yaml", []string{"decode config", "line"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := config.Load(filepath.Join("testdata", "bad", tt.file))
			if err == nil {
				t.Fatal("loaded without error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	c, err := config.Load(filepath.Join("..", "examples", "phoenix.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	orders, ok := c.Component("orders")
	if !ok {
		t.Fatal("no orders component")
	}
	if got := int64(orders.Limits.Memory); got != 160<<20 {
		t.Errorf("orders memory limit = %d, want %d", got, 160<<20)
	}
	if orders.Primary.Metrics != "http://127.0.0.1:28081/metrics" {
		t.Errorf("metrics default = %q", orders.Primary.Metrics)
	}
	if !filepath.IsAbs(c.StateDir) || c.API.TokenFile != filepath.Join(c.StateDir, "token") {
		t.Errorf("paths not resolved: state_dir %q, token_file %q", c.StateDir, c.API.TokenFile)
	}
}

// minimalOrders is a config with one component and nothing else set.
const minimalOrders = `
components:
  - name: orders
    proxy: 127.0.0.1:18081
    primary: {url: http://127.0.0.1:28081}
    replica: {command: [orders]}
`

// TestScaleBounds checks that the edges of the scaling settings' ranges
// load: a risk of 0.5 and a target of 1 (above either is refused, see
// testdata/bad/scale.yaml).
func TestScaleBounds(t *testing.T) {
	c, err := config.Parse([]byte(minimalOrders + `    scale: {enabled: true, capacity_rps: 200, risk: 0.5, target_utilization: 1}
`))
	if err != nil {
		t.Fatal(err)
	}
	if comp, _ := c.Component("orders"); comp.Scale.Risk != 0.5 || comp.Scale.TargetUtilization != 1 {
		t.Errorf("scale = %+v, want risk 0.5 and target_utilization 1", comp.Scale)
	}
}

// TestDefaultsApply checks that a minimal file gets every default.
func TestDefaultsApply(t *testing.T) {
	c, err := config.Parse([]byte(minimalOrders))
	if err != nil {
		t.Fatal(err)
	}
	d := config.Default()
	if c.Predict.Horizon != d.Predict.Horizon || c.Thresholds != d.Thresholds || c.API.Listen != "127.0.0.1:7070" {
		t.Errorf("defaults not applied: %+v", c)
	}
	if comp, _ := c.Component("orders"); comp.HealthPath != "/healthz" || comp.State.Method != config.StateNone {
		t.Errorf("component defaults not applied: %+v", comp)
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in      string
		want    config.ByteSize
		wantErr bool
	}{
		{"1048576", 1 << 20, false},
		{"150MiB", 150 << 20, false},
		{"2GB", 2e9, false},
		{"1.5KiB", 1536, false},
		{" 10 B ", 10, false},
		{"-1MiB", 0, true},
		{"NaN", 0, true},
		{"1e400", 0, true},
		{"MiB", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := config.ParseByteSize(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseRequestLine(t *testing.T) {
	m, p, err := config.ParseRequestLine(" post /admin/promote ")
	if err != nil || m != "POST" || p != "/admin/promote" {
		t.Fatalf("got %q %q %v", m, p, err)
	}
	for _, bad := range []string{"", "POST", "/admin", "POST admin", "PO/ST /x"} {
		if _, _, err := config.ParseRequestLine(bad); err == nil {
			t.Errorf("ParseRequestLine(%q) accepted", bad)
		}
	}
}

// FuzzParse: no input crashes the config loader, and whatever it accepts
// validates.
func FuzzParse(f *testing.F) {
	ents, _ := os.ReadDir(filepath.Join("testdata", "bad"))
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join("testdata", "bad", e.Name()))
		f.Add(b)
	}
	if b, err := os.ReadFile(filepath.Join("..", "examples", "phoenix.yaml")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := config.Parse(b)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that does not validate: %v", err)
		}
		if c.Traffic.HealthInterval.D() <= 0 || c.Predict.Horizon.D() < time.Nanosecond {
			t.Fatal("accepted non-positive durations")
		}
	})
}
