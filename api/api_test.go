package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/phoenixsre/phoenix"
	"github.com/phoenixsre/phoenix/api"
	"github.com/phoenixsre/phoenix/control"
)

type fakeEvents struct{ evs []phoenix.Event }

func (f fakeEvents) Events(after uint64, limit int) ([]phoenix.Event, error) {
	var out []phoenix.Event
	for _, e := range f.evs {
		if e.Seq > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (f fakeEvents) Wait(ctx context.Context, after uint64, limit int) ([]phoenix.Event, error) {
	if evs, _ := f.Events(after, limit); len(evs) > 0 {
		return evs, nil
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

type fakeStatus struct{}

func (fakeStatus) Status() control.Status {
	return control.Status{Components: []control.ComponentStatus{{Name: "orders", Active: "orders@primary", Healthy: true}}}
}

type fakeSwitcher struct{ got, back phoenix.ComponentID }

func (f *fakeSwitcher) RequestFailBack(c phoenix.ComponentID, reason string) error {
	if c != "orders" {
		return errors.New(string(c) + " is served by its original primary")
	}
	f.back = c
	return nil
}

func (f *fakeSwitcher) RequestSwitch(c phoenix.ComponentID, reason string) error {
	switch c {
	case "orders":
		f.got = c
		return nil
	case "inventory":
		return errors.New("inventory has no pre-warmed replica")
	}
	return control.ErrUnknownComponent
}

const token = "0123456789abcdef0123456789abcdef"

func newServer(t *testing.T) (*httptest.Server, *fakeSwitcher) {
	t.Helper()
	sw := &fakeSwitcher{}
	h, err := api.New(api.Options{
		Status: fakeStatus{}, Switcher: sw, Token: token,
		Events: fakeEvents{evs: []phoenix.Event{{Seq: 1, Kind: phoenix.EventStarted}, {Seq: 2, Kind: phoenix.EventPredicted, Component: "orders"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, sw
}

func do(t *testing.T, method, url, auth string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAPI(t *testing.T) {
	srv, sw := newServer(t)
	bearer := "Bearer " + token
	tests := []struct {
		name, method, path, auth string
		code                     int
		body                     string
	}{
		{"health is open", "GET", "/healthz", "", 200, "ok"},
		{"status needs a token", "GET", "/api/v1/status", "", 401, "missing Authorization"},
		{"wrong token", "GET", "/api/v1/status", "Bearer nope", 401, "invalid token"},
		{"token in the wrong scheme", "GET", "/api/v1/status", "Basic " + token, 401, "invalid token"},
		{"status", "GET", "/api/v1/status", bearer, 200, `"orders@primary"`},
		{"events after 1", "GET", "/api/v1/events?after=1", bearer, 200, `"predicted"`},
		{"events: bad after", "GET", "/api/v1/events?after=x", bearer, 400, "after:"},
		{"events: bad limit", "GET", "/api/v1/events?limit=0", bearer, 400, "limit:"},
		{"events: wait too long", "GET", "/api/v1/events?wait=2h", bearer, 400, "wait:"},
		{"events: wait ends empty", "GET", "/api/v1/events?after=2&wait=50ms", bearer, 200, "[]"},
		{"switch needs a token", "POST", "/api/v1/components/orders/switch", "", 401, "missing"},
		{"switch", "POST", "/api/v1/components/orders/switch", bearer, 202, "switch requested"},
		{"switch without a replica", "POST", "/api/v1/components/inventory/switch", bearer, 409, "no pre-warmed replica"},
		{"switch of an unknown component", "POST", "/api/v1/components/ghost/switch", bearer, 404, "unknown component"},
		{"switch of a bad name", "POST", "/api/v1/components/BAD!/switch", bearer, 400, "component name"},
		{"switch with GET", "GET", "/api/v1/components/orders/switch", bearer, 405, ""},
		{"failback needs a token", "POST", "/api/v1/components/orders/failback", "", 401, "missing"},
		{"failback", "POST", "/api/v1/components/orders/failback", bearer, 202, "failback requested"},
		{"failback with nothing to go back to", "POST", "/api/v1/components/gateway/failback", bearer, 409, "original primary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := do(t, tt.method, srv.URL+tt.path, tt.auth)
			if code != tt.code || !strings.Contains(body, tt.body) {
				t.Fatalf("%s %s = %d %q; want %d containing %q", tt.method, tt.path, code, body, tt.code, tt.body)
			}
			if code >= 400 && code != 405 {
				var e struct{ Error string }
				if json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
					t.Errorf("error answer is not JSON with a reason: %q", body)
				}
			}
		})
	}
	if sw.got != "orders" || sw.back != "orders" {
		t.Errorf("switch or failback request did not reach the controller")
	}
}

func TestEventsLongPollWakes(t *testing.T) {
	srv, _ := newServer(t)
	start := time.Now()
	code, body := do(t, "GET", srv.URL+"/api/v1/events?after=1&wait=30s", "Bearer "+token)
	if code != 200 || !strings.Contains(body, "predicted") {
		t.Fatalf("got %d %s", code, body)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("long poll waited although an event was there")
	}
}

func TestNewRefusesEmptyToken(t *testing.T) {
	if _, err := api.New(api.Options{}); err == nil {
		t.Fatal("api.New accepted an empty token")
	}
}
