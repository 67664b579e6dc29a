package shop

import (
	"strings"
	"testing"
)

func TestDecodeFaultSpec(t *testing.T) {
	cases := []struct {
		body string
		want faultSpec
		err  string
	}{
		{`{"kind":"leak","bytes_per_second":1048576}`, faultSpec{Kind: "leak", BytesPerSecond: 1 << 20}, ""},
		{`{"kind":"latency","ms_per_second":10,"max_ms":500}`, faultSpec{Kind: "latency", MsPerSecond: 10, MaxMs: 500}, ""},
		{`{"kind":"errors","per_second":0.01,"max":0.5}`, faultSpec{Kind: "errors", PerSecond: 0.01, Max: 0.5}, ""},
		{`{"kind":"disk","bytes_per_second":1}`, faultSpec{Kind: "disk", BytesPerSecond: 1}, ""},
		{`{"kind":"crash"}`, faultSpec{Kind: "crash"}, ""},
		{` {"kind":"clear"} `, faultSpec{Kind: "clear"}, ""},
		{``, faultSpec{}, "malformed fault JSON"},
		{`[]`, faultSpec{}, "malformed fault JSON"},
		{`{"kind":"clear"}{}`, faultSpec{}, "data after the object"},
		{`{"kind":"clear","extra":1}`, faultSpec{}, `unknown field "extra"`},
		{`{}`, faultSpec{}, `no "kind"`},
		{`{"kind":"LEAK","bytes_per_second":1}`, faultSpec{}, "unknown fault kind"},
		{`{"kind":"crash","max":1}`, faultSpec{}, `field "max" does not apply to a crash fault (it takes no other field)`},
		{`{"kind":"latency","ms_per_second":10}`, faultSpec{}, `needs "ms_per_second" and "max_ms"`},
		{`{"kind":"leak","bytes_per_second":0}`, faultSpec{}, "bytes_per_second 0"},
		{`{"kind":"leak","bytes_per_second":1e3}`, faultSpec{}, "malformed fault JSON"},
		{`{"kind":"disk","bytes_per_second":99999999999}`, faultSpec{}, "want 1..1073741824"},
		{`{"kind":"latency","ms_per_second":-1,"max_ms":5}`, faultSpec{}, "ms_per_second -1"},
		{`{"kind":"errors","per_second":1,"max":0}`, faultSpec{}, "max 0"},
	}
	for _, c := range cases {
		got, err := decodeFaultSpec([]byte(c.body))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("decodeFaultSpec(%s) error = %v, want it to mention %q", c.body, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("decodeFaultSpec(%s) = %+v, %v; want %+v", c.body, got, err, c.want)
		}
	}
}

func TestParseStatm(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1000 250 100 10 0 500 0\n", 250, true},
		{"1 2", 2, true},
		{"", 0, false},
		{"1000", 0, false},
		{"1000 -5 0", 0, false},
		{"1000 x 0", 0, false},
		{"1 99999999999999999999", 0, false},
	}
	for _, c := range cases {
		got, err := parseStatm([]byte(c.in))
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("parseStatm(%q) = %d, %v; want %d ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestDecodeStock(t *testing.T) {
	cases := []struct {
		body, sku string
		err       string
	}{
		{`{"sku":"sku-1","available":3}`, "sku-1", ""},
		{`{"sku":"sku-2","available":3}`, "sku-1", `for sku "sku-2"`},
		{`{"sku":"sku-1","available":-1}`, "sku-1", "negative"},
		{`not json`, "sku-1", "malformed stock JSON"},
		{`{"sku":"sku-1","available":"3"}`, "sku-1", "malformed stock JSON"},
	}
	for _, c := range cases {
		_, err := decodeStock([]byte(c.body), c.sku)
		if (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("decodeStock(%s) = %v, want %q", c.body, err, c.err)
		}
	}
}

// TestSKUAndStockAreFixed pins the id->sku and sku->quantity functions:
// they must agree across processes and releases, not just within one.
func TestSKUAndStockAreFixed(t *testing.T) {
	for id, want := range map[string]string{"a1": "sku-15", "order-42": "sku-52"} {
		if got := skuFor(id); got != want {
			t.Errorf("skuFor(%q) = %q, want %q", id, got, want)
		}
	}
	if got := available("sku-7"); got != 542 {
		t.Errorf("available(sku-7) = %d, want 542", got)
	}
}

func FuzzFaultSpec(f *testing.F) {
	for _, s := range []string{
		`{"kind":"leak","bytes_per_second":1048576}`,
		`{"kind":"latency","ms_per_second":10,"max_ms":500}`,
		`{"kind":"errors","per_second":0.01,"max":0.5}`,
		`{"kind":"crash"}`, `{"kind":"clear"}`, `{"kind":`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		spec, err := decodeFaultSpec(body)
		if err != nil {
			return
		}
		switch spec.Kind {
		case faultLeak, faultDisk:
			if spec.BytesPerSecond <= 0 || spec.BytesPerSecond > maxFaultRate {
				t.Fatalf("accepted rate %d", spec.BytesPerSecond)
			}
		case faultLatency:
			if !(spec.MaxMs > 0 && spec.MaxMs <= maxInjectedMs && spec.MsPerSecond > 0) {
				t.Fatalf("accepted latency %+v", spec)
			}
		case faultErrors:
			if !(spec.Max > 0 && spec.Max <= 1 && spec.PerSecond > 0) {
				t.Fatalf("accepted errors %+v", spec)
			}
		case faultCrash, faultClear:
		default:
			t.Fatalf("accepted kind %q", spec.Kind)
		}
	})
}

func FuzzStatm(f *testing.F) {
	f.Add([]byte("1000 250 100 10 0 500 0\n"))
	f.Add([]byte("1 2"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		if pages, err := parseStatm(b); err == nil && pages < 0 {
			t.Fatalf("negative page count %d", pages)
		}
	})
}

func FuzzStock(f *testing.F) {
	f.Add([]byte(`{"sku":"sku-1","available":3}`), "sku-1")
	f.Add([]byte(`{"sku":"sku-1","available":-1}`), "sku-1")
	f.Add([]byte(`{`), "")
	f.Fuzz(func(t *testing.T, body []byte, sku string) {
		st, err := decodeStock(body, sku)
		if err == nil && (st.SKU != sku || st.Available < 0) {
			t.Fatalf("accepted %+v for sku %q", st, sku)
		}
	})
}
