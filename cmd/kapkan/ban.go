package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/kapkan-io/kapkan/api"
	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/mitigate/bgp"
)

// cmdBan asks the running daemon, through its API, to mitigate a target.
// The daemon applies the same safety checks as to any other action.
func cmdBan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ban", flag.ContinueOnError)
	fs.SetOutput(stderr)
	apiURL := fs.String("api", "", "the daemon's API, like http://127.0.0.1:8080 (default: api.listen of --config, or the default listen address)")
	configPath := fs.String("config", "", "the daemon's configuration file, to find its API")
	token := tokenFlag(fs)
	action := fs.String("action", "blackhole", "blackhole, flowspec-discard or flowspec-ratelimit")
	rate := fs.Float64("rate-mbps", 0, "rate limit in Mbps (flowspec-ratelimit)")
	ttl := fs.String("ttl", "", "how long (default: mitigation.ttl)")
	reason := fs.String("reason", "", "why, for the log and the API")
	proto := fs.String("protocol", "", "FlowSpec match: tcp, udp, icmp or a number")
	srcPort := fs.String("src-port", "", "FlowSpec match: source port or range")
	dstPort := fs.String("dst-port", "", "FlowSpec match: destination port or range")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kapkan ban [flags] ADDRESS|PREFIX")
		fs.PrintDefaults()
	}
	target, base, status := targetAndAPI(fs, args, apiURL, configPath, stderr)
	if status != 0 || target == "" { // target "": help was asked for
		return status
	}
	b := api.BanRequest{Target: target, Action: *action, RateMbps: *rate, TTL: *ttl, Reason: *reason}
	if *proto != "" || *srcPort != "" || *dstPort != "" {
		v := flowspec.Match{Protocol: *proto}
		if *srcPort != "" {
			v.SrcPorts = []string{*srcPort}
		}
		if *dstPort != "" {
			v.DstPorts = []string{*dstPort}
		}
		b.Match = &v
	}
	if err := checkBan(b); err != nil {
		fmt.Fprintf(stderr, "kapkan ban: %v\n", err)
		return 2
	}
	body, _ := json.Marshal(b)
	return apiCall(ctx, http.MethodPost, base+"/api/v1/mitigations", *token, body, stdout, stderr, "ban")
}

// cmdUnban asks the running daemon to withdraw every action on a target:
// an address, or a prefix and every narrower target inside it.
func cmdUnban(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("unban", flag.ContinueOnError)
	fs.SetOutput(stderr)
	apiURL := fs.String("api", "", "the daemon's API, like http://127.0.0.1:8080")
	configPath := fs.String("config", "", "the daemon's configuration file, to find its API")
	token := tokenFlag(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kapkan unban [flags] ADDRESS|PREFIX")
		fs.PrintDefaults()
	}
	target, base, status := targetAndAPI(fs, args, apiURL, configPath, stderr)
	if status != 0 || target == "" { // target "": help was asked for
		return status
	}
	return apiCall(ctx, http.MethodDelete, base+"/api/v1/mitigations?target="+url.QueryEscape(target), *token, nil, stdout, stderr, "unban")
}

// targetAndAPI parses the flags and the one target argument of ban and
// unban, and finds the API. A non-zero status is the exit code; status 0
// with no target means the usage was asked for and printed.
func targetAndAPI(fs *flag.FlagSet, args []string, apiURL, configPath *string, stderr io.Writer) (target, base string, status int) {
	rest, err := parseArgs(fs, args)
	if err != nil {
		return "", "", flagStatus(err)
	}
	if len(rest) != 1 {
		fs.Usage()
		return "", "", 2
	}
	if _, err := api.ParseTarget(rest[0]); err != nil {
		fmt.Fprintf(stderr, "kapkan %s: %v\n", fs.Name(), err)
		return "", "", 2
	}
	if base, err = apiBase(*apiURL, *configPath); err != nil {
		fmt.Fprintf(stderr, "kapkan %s: %v\n", fs.Name(), err)
		return "", "", 2
	}
	return rest[0], base, 0
}

// apiBase finds the daemon's API: --api, else api.listen of the
// configuration (an unspecified host means loopback).
func apiBase(flagURL, configPath string) (string, error) {
	if flagURL != "" {
		return strings.TrimRight(flagURL, "/"), nil
	}
	cfg, err := loadConfig(configPath)
	if err != nil {
		return "", err
	}
	host, port, err := net.SplitHostPort(cfg.API.Listen)
	if err != nil {
		return "", fmt.Errorf("api.listen %q: %w", cfg.API.Listen, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// checkBan checks a ban before it is sent, as the daemon will.
func checkBan(b api.BanRequest) error {
	return b.Check(func(t netip.Prefix, m flowspec.Match) error {
		_, err := bgp.FlowSpecComponents(t, m)
		return err
	})
}

// tokenFlag is the --token flag of the commands that call the API; its
// default is $KAPKAN_TOKEN (ban and unban need an operate token).
func tokenFlag(fs *flag.FlagSet) *string {
	return fs.String("token", os.Getenv("KAPKAN_TOKEN"), "the API token (default: $KAPKAN_TOKEN); ban and unban need an operate token")
}

func apiCall(ctx context.Context, method, u, token string, body []byte, stdout, stderr io.Writer, what string) int {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		fmt.Fprintf(stderr, "kapkan %s: %v\n", what, err)
		return 2
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "kapkan %s: is the daemon running? %v\n", what, err)
		return 1
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(out, &e) == nil && e.Error.Code != "" {
			fmt.Fprintf(stderr, "kapkan %s: %s: %s\n", what, strings.ReplaceAll(e.Error.Code, "_", " "), e.Error.Message)
			if e.Error.Code == "unauthorized" || e.Error.Code == "forbidden" {
				fmt.Fprintf(stderr, "kapkan %s: give an operate token with --token or KAPKAN_TOKEN\n", what)
			}
		} else {
			fmt.Fprintf(stderr, "kapkan %s: %s: %s\n", what, resp.Status, out)
		}
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", bytes.TrimSpace(out))
	return 0
}
