package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kapkan-io/kapkan/config"
)

const validConfig = `dry_run: true
ingest:
  exporters:
    - {address: 192.0.2.1, sampling_rate: 1000, name: edge1}
hostgroups:
  - name: customers
    prefixes: [203.0.113.0/24]
    thresholds:
      incoming: {pps: 100000}
`

// invalidConfig has four problems of four kinds: an unknown key, a bad
// prefix, a threshold of the wrong type and a window out of range.
const invalidConfig = `ingest:
  sflw: {}
detection:
  window: 0s
hostgroups:
  - name: customers
    prefixes: [203.0.113.0/33]
    thresholds:
      incoming: {pps: lots}
`

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	valid := write("kapkan.yaml", validConfig)
	invalid := write("bad.yaml", invalidConfig)
	missing := filepath.Join(dir, "missing.yaml")
	// A valid file's summary comes before its verdict (its text is pinned
	// by TestCheckSummary).
	okLines := func(verdict string) []string {
		cfg, err := config.Load(valid)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		writeConfigSummary(&b, cfg)
		return append(strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n"), verdict)
	}

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string // lines, exactly; nil: stdout must be empty
		wantStderr []string // lines, exactly; nil: stderr must be empty
		stderrHas  []string // substrings, when the exact text is not the point
		dump       bool     // stdout is a dump of valid
	}{
		{
			name:       "valid",
			args:       []string{"--config", valid},
			wantCode:   0,
			wantStdout: okLines(valid + ": ok"),
		},
		{
			name:       "valid positional",
			args:       []string{valid},
			wantCode:   0,
			wantStdout: okLines(valid + ": ok"),
		},
		{
			name:     "invalid",
			args:     []string{"--config", invalid},
			wantCode: 1,
			wantStderr: []string{
				invalid + `:2:3: ingest.sflw: unknown key (known keys: sflow, netflow, default_sampling_rate, exporters, max_exporters, max_templates, max_pending_bytes)`,
				invalid + `:4:11: detection.window: 0s is out of range (want 1s to 300s)`,
				invalid + `:7:16: hostgroups[0].prefixes[0]: "203.0.113.0/33" is not a prefix (want CIDR like 203.0.113.0/24)`,
				invalid + `:9:23: hostgroups[0].thresholds.incoming.pps: "lots" is not a non-negative integer`,
				invalid + `: 4 errors`,
			},
		},
		{
			name:       "missing file",
			args:       []string{missing},
			wantCode:   1,
			wantStderr: []string{"read config file: open " + missing + ": no such file or directory", missing + ": 1 error"},
		},
		{
			name:       "dump",
			args:       []string{valid, "--dump"},
			wantCode:   0,
			wantStderr: okLines(valid + ": ok"),
			dump:       true,
		},
		{
			name:       "dump of an invalid file",
			args:       []string{"--dump", invalid},
			wantCode:   1,
			stderrHas:  []string{invalid + ": 4 errors"},
			wantStdout: nil,
		},
		{
			name:      "no file",
			args:      nil,
			wantCode:  2,
			stderrHas: []string{"no configuration file given", "usage: kapkan check"},
		},
		{
			name:      "two files",
			args:      []string{valid, invalid},
			wantCode:  2,
			stderrHas: []string{"one file at a time, got 2"},
		},
		{
			name:      "flag and argument disagree",
			args:      []string{"--config", valid, invalid},
			wantCode:  2,
			stderrHas: []string{"two files given"},
		},
		{
			name:      "unknown flag",
			args:      []string{"--strict", valid},
			wantCode:  2,
			stderrHas: []string{"flag provided but not defined: -strict"},
		},
		{
			name:       "after --",
			args:       []string{"--", valid},
			wantCode:   0,
			wantStdout: okLines(valid + ": ok"),
		},
		{
			name:      "help",
			args:      []string{"-h"},
			wantCode:  0,
			stderrHas: []string{"usage: kapkan check", "-dump"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := cmdCheck(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, &stdout, &stderr)
			}
			switch {
			case tt.dump:
				checkDump(t, valid, stdout.Bytes())
			default:
				checkLines(t, "stdout", stdout.String(), tt.wantStdout)
			}
			if tt.stderrHas != nil {
				for _, s := range tt.stderrHas {
					if !strings.Contains(stderr.String(), s) {
						t.Errorf("stderr does not contain %q:\n%s", s, &stderr)
					}
				}
				return
			}
			checkLines(t, "stderr", stderr.String(), tt.wantStderr)
		})
	}
}

// TestCheckReportsEveryProblem checks, on the shared fixture with several
// problems, that check prints one positioned line per problem and a count
// that matches.
func TestCheckReportsEveryProblem(t *testing.T) {
	path := filepath.Join("..", "..", "config", "testdata", "invalid", "several_errors.yaml")
	var stdout, stderr bytes.Buffer
	if code := cmdCheck(context.Background(), []string{path}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit code %d, want 1\n%s", code, &stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
	problems, last := lines[:len(lines)-1], lines[len(lines)-1]
	if len(problems) < 3 {
		t.Fatalf("%d problems reported, want at least 3:\n%s", len(problems), &stderr)
	}
	positioned := regexp.MustCompile(`^` + regexp.QuoteMeta(path) + `:[1-9][0-9]*:[1-9][0-9]*: \S`)
	for _, l := range problems {
		if !positioned.MatchString(l) {
			t.Errorf("problem without file:line:col: %s", l)
		}
	}
	if want := path + ": " + strconv.Itoa(len(problems)) + " errors"; last != want {
		t.Errorf("last line %q, want %q", last, want)
	}
}

// checkDump checks that a dump is the effective configuration of the file at
// path: it parses, keeps what the file says and fills in the defaults.
func checkDump(t *testing.T, path string, dump []byte) {
	t.Helper()
	c, err := config.Parse("dump", dump)
	if err != nil {
		t.Fatalf("dump does not parse: %v\n%s", err, dump)
	}
	want, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	wantDump, err := want.Dump()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dump, wantDump) {
		t.Errorf("dump:\n%s\nwant:\n%s", dump, wantDump)
	}
	if c.Ingest.SFlow.Listen != config.DefaultSFlowListen || c.Hostgroups[0].Thresholds.Incoming.PPS != 100000 {
		t.Errorf("dump lacks a default or a set value:\n%s", dump)
	}
}

func checkLines(t *testing.T, stream, got string, want []string) {
	t.Helper()
	wantText := ""
	if want != nil {
		wantText = strings.Join(want, "\n") + "\n"
	}
	if got != wantText {
		t.Errorf("%s:\n%s\nwant:\n%s", stream, got, wantText)
	}
}

// TestCheckSummary pins, for a few configurations, the summary check
// prints before its verdict: hostgroups with their prefixes and thresholds,
// listeners, dry-run, BGP peers, caps, notifiers and history, with no
// secret (the webhook's URL, ClickHouse's password). -update rewrites the
// golden files after a reviewed change.
func TestCheckSummary(t *testing.T) {
	configs, err := filepath.Glob(filepath.Join("testdata", "check", "*.yaml"))
	if err != nil || len(configs) < 3 {
		t.Fatalf("configurations: %v %v", configs, err)
	}
	for _, path := range configs {
		t.Run(filepath.Base(path), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := cmdCheck(context.Background(), []string{path}, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, &stderr)
			}
			golden := strings.TrimSuffix(path, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, stdout.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got := stdout.String(); got != string(want) {
				t.Errorf("stdout:\n%s\nwant (%s):\n%s", got, golden, want)
			}
			for _, secret := range []string{"secret", "hidden"} {
				if strings.Contains(stdout.String(), secret) {
					t.Errorf("the summary shows a secret (%q)", secret)
				}
			}
		})
	}
}
