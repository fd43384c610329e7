package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// tokenEnv is the environment variable the API subcommands read a bearer
// token from when --token is not given (a token on the command line shows
// in the process list; one in the environment does not).
const tokenEnv = "KAPKAN_TOKEN"

// apiFlags are the flags of a subcommand that talks to the running daemon:
// where its API is, and the token to show it.
type apiFlags struct {
	url, config, token *string
}

// addAPIFlags declares --api, --config and --token on fs.
func addAPIFlags(fs *flag.FlagSet) apiFlags {
	return apiFlags{
		url:    fs.String("api", "", "the daemon's API, like http://127.0.0.1:8080 (default: api.listen of --config, or the default listen address)"),
		config: fs.String("config", "", "the daemon's configuration `file`, to find its API"),
		token:  fs.String("token", "", "bearer `token` for the API, when it asks for one (default: $"+tokenEnv+")"),
	}
}

// client finds the API (apiBase: --api, else api.listen of --config) and
// the token (--token, else $KAPKAN_TOKEN).
func (f apiFlags) client() (*apiClient, error) {
	base, err := apiBase(*f.url, *f.config)
	if err != nil {
		return nil, err
	}
	return newAPIClient(base, apiToken(*f.token)), nil
}

// apiToken is the bearer token: the flag's value, else $KAPKAN_TOKEN.
func apiToken(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	return strings.TrimSpace(os.Getenv(tokenEnv))
}

// apiClient calls the daemon's HTTP API.
type apiClient struct {
	base  string // like http://127.0.0.1:8080, no trailing slash
	token string // "" sends no Authorization header
	hc    *http.Client
}

func newAPIClient(base, token string) *apiClient {
	return &apiClient{base: strings.TrimRight(base, "/"), token: token, hc: &http.Client{Timeout: 10 * time.Second}}
}

// newRequest builds a request to path (which starts with "/") carrying the
// token, if any.
func (c *apiClient) newRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// getJSON GETs path and decodes its JSON answer into v. An answer other
// than 2xx is an *apiError; a daemon that cannot be reached is the
// transport's error, wrapped.
func (c *apiClient) getJSON(ctx context.Context, path string, v any) error {
	req, err := c.newRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("get %s: read answer: %w", path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return newAPIError(resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("get %s: decode answer: %w", path, err)
	}
	return nil
}

// apiError is an answer of the API other than 2xx.
type apiError struct {
	Status  int
	Code    string // the contract's stable code ("unauthorized"), "" if none was sent
	Message string
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// auth reports whether the API refused the request for want of a token
// (401) or of a scope (403).
func (e *apiError) auth() bool {
	return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
}

// newAPIError reads an error answer: the contract's
// {"error": {"code": …, "message": …}}, the older {"error": "…"}, or any
// other body, shortened.
func newAPIError(status int, body []byte) *apiError {
	e := &apiError{Status: status}
	var env struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && len(env.Error) > 0 {
		var obj struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		if json.Unmarshal(env.Error, &e.Message) == nil {
			return e
		}
		if json.Unmarshal(env.Error, &obj) == nil {
			e.Code, e.Message = obj.Code, obj.Message
			return e
		}
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	e.Message = msg
	return e
}
