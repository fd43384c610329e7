package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/daemon"
)

// TestCheckAgreesWithRun: for each configuration, `kapkan check` fails if
// and only if the daemon refuses to start on it (sockets aside), and says
// where the problem is.
func TestCheckAgreesWithRun(t *testing.T) {
	dir := t.TempDir()
	notADir := filepath.Join(dir, "file")
	if err := os.WriteFile(notADir, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(dir, "corrupt.json")
	if err := os.WriteFile(corrupt, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	const base = `
ingest: {sflow: {listen: "127.0.0.1:0"}, netflow: {listen: ""}}
api: {listen: "127.0.0.1:0"}
`
	const hostgroup = `hostgroups:
  - name: customers
    prefixes: [203.0.113.0/24]
    thresholds: {incoming: {pps: 1000}}
`
	for _, tc := range []struct {
		name    string
		yaml    string
		fails   bool     // run refuses to start, check exits 1
		wantErr []string // in check's output (stderr)
	}{
		{name: "valid", yaml: base + hostgroup + `mitigation: {state_file: "` + filepath.Join(dir, "sub", "state.json") + `"}`},
		{name: "state file directory not writable", fails: true,
			yaml:    base + hostgroup + "mitigation:\n  state_file: \"" + filepath.Join(notADir, "state.json") + "\"\n",
			wantErr: []string{":9:15: mitigation.state_file: ", "cannot be written"}},
		{name: "state file unreadable", fails: true,
			yaml:    base + hostgroup + "mitigation:\n  state_file: \"" + corrupt + "\"\n",
			wantErr: []string{":9:15: mitigation.state_file: ", "move it away"}},
		{name: "rule directory missing", fails: true,
			yaml:    base + hostgroup + "mitigation: {state_file: \"\"}\nrules:\n  dirs: [\"" + filepath.Join(dir, "nosuch") + "\"]\n",
			wantErr: []string{":10:10: rules.dirs[0]: ", "does not exist"}},
		{name: "hostgroup without thresholds", fails: false,
			yaml:    base + "mitigation: {state_file: \"\"}\nhostgroups:\n  - name: bare\n    prefixes: [203.0.113.0/24]\n",
			wantErr: []string{":6:5: hostgroups[0].thresholds: warning: hostgroup \"bare\" has no thresholds"}},
		{name: "number with underscores", fails: true,
			yaml:    base + "mitigation: {state_file: \"\"}\nhostgroups:\n  - name: a\n    prefixes: [203.0.113.0/24]\n    thresholds: {incoming: {pps: 20_000}}\n",
			wantErr: []string{":8:34: hostgroups[0].thresholds.incoming.pps: 20_000 is not a plain decimal integer (YAML reads it as 20000;"}},
		{name: "hexadecimal number", fails: true,
			yaml:    base + "mitigation: {state_file: \"\"}\nhostgroups:\n  - name: a\n    prefixes: [203.0.113.0/24]\n    thresholds: {incoming: {pps: 0x10}}\n",
			wantErr: []string{":8:34: hostgroups[0].thresholds.incoming.pps: 0x10 is not a plain decimal integer (YAML reads it as 16;"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kapkan.yaml")
			// The history in the test's directory (last, so that the
			// expected positions hold).
			yaml := tc.yaml + "\nstore: {path: \"" + filepath.Join(t.TempDir(), "history") + "\"}\n"
			if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			code := cmdCheck(context.Background(), []string{path}, &out, &errb)
			if want := map[bool]int{false: 0, true: 1}[tc.fails]; code != want {
				t.Errorf("check: exit %d, want %d; stderr:\n%s", code, want, errb.String())
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(errb.String(), path+w) && !strings.Contains(errb.String(), w) {
					t.Errorf("check's stderr lacks %q:\n%s", w, errb.String())
				}
			}
			if len(tc.wantErr) > 0 && !strings.Contains(errb.String(), path+tc.wantErr[0]) {
				t.Errorf("check's stderr lacks %q:\n%s", path+tc.wantErr[0], errb.String())
			}
			runErr := runStarts(path)
			if (runErr != nil) != tc.fails {
				t.Errorf("run: %v, want refused=%v", runErr, tc.fails)
			}
		})
	}
}

// runStarts builds the daemon as `kapkan run` does, and closes it.
func runStarts(path string) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	d, err := daemon.New(cfg, daemon.Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	d.Close()
	return nil
}
