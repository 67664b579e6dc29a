package main

import (
	"context"
	"encoding/json"

	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/phoenixsre/phoenix/config"
)

// client talks to a daemon's HTTP API, like any other client would.
type client struct {
	base  string
	token string
	http  *http.Client
}

// clientFlags are the flags every client command shares.
type clientFlags struct {
	api       string
	tokenFile string
	cfgPath   string
}

func (f *clientFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.api, "api", "", "base URL of the daemon's API (default: from --config, else http://127.0.0.1:7070)")
	cmd.Flags().StringVar(&f.tokenFile, "token-file", "", "file holding the API token (default: from --config, else phoenix-state/token); $PHOENIX_TOKEN overrides")
	cmd.Flags().StringVarP(&f.cfgPath, "config", "c", "", "the daemon's config file, to find its API address and token file")
}

func (f *clientFlags) client() (*client, error) {
	def := config.Default()
	api, tokenFile := "http://"+def.API.Listen, "phoenix-state/token"
	if f.cfgPath != "" {
		cfg, err := config.Load(f.cfgPath)
		if err != nil {
			return nil, err
		}
		api, tokenFile = "http://"+cfg.API.Listen, cfg.API.TokenFile
	}
	if f.api != "" {
		api = f.api
	}
	if f.tokenFile != "" {
		tokenFile = f.tokenFile
	}
	u, err := url.Parse(api)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageErr("--api %q: write the daemon's base URL, e.g. http://127.0.0.1:7070", api)
	}
	token := os.Getenv("PHOENIX_TOKEN")
	if token == "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("read the API token: %w (point --token-file or --config at the daemon's, or set PHOENIX_TOKEN)", err)
		}
		token = strings.TrimSpace(string(b))
	}
	return &client{base: strings.TrimRight(api, "/"), token: token, http: &http.Client{Timeout: 90 * time.Second}}, nil
}

// get fetches path and decodes the JSON answer into v.
func (c *client) get(ctx context.Context, path string, v any) error {
	return c.do(ctx, http.MethodGet, path, v)
}

// do sends a request without a body and decodes the JSON answer into v.
func (c *client) do(ctx context.Context, method, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("reach the daemon at %s: %w (is it running?)", c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("daemon answered %s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("daemon answered %s", resp.Status)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}
