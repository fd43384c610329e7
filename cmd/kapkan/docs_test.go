package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// shFence is a shell block of a page: ```sh, ```shell, ```bash or
// ```console (whose commands follow a "$ " prompt).
var shFence = regexp.MustCompile("(?ms)^[ \t]*```(?:sh|shell|bash|console)\n(.*?)^[ \t]*```")

// codeSpan is an inline code span of prose.
var codeSpan = regexp.MustCompile("`([^`\n]+)`")

// commandAt is a kapkan command at the start of one simple command of a
// shell line: after an optional "$ " prompt, sudo and environment
// assignments, the binary by name or by path (bin/kapkan).
var commandAt = regexp.MustCompile(`^\s*(?:\$\s+)?(?:sudo\s+)?(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*(?:[\w./-]*/)?kapkan\s+(\S.*)$`)

// subst is a command substitution, $(...), replaced before a line is split.
var subst = regexp.MustCompile(`\$\([^()]*\)`)

// shellCommands returns the kapkan commands of one shell line (comments
// and a trailing & dropped), each as "kapkan ARGS".
func shellCommands(line string) []string {
	line, _, _ = strings.Cut(subst.ReplaceAllString(line, "X"), "#")
	var out []string
	for _, part := range regexp.MustCompile(`&&|\|\||[|;]`).Split(line, -1) {
		part = strings.TrimSuffix(strings.TrimSpace(part), "&")
		if m := commandAt.FindStringSubmatch(part); m != nil {
			out = append(out, "kapkan "+strings.TrimSpace(m[1]))
		}
	}
	return out
}

// docCommands returns the kapkan command lines of the pages, each with
// where it was found: those of shell blocks (continuation lines joined)
// and those written inline in prose (`kapkan check --dump FILE`).
func docCommands(t *testing.T, pages ...string) (lines, where []string) {
	t.Helper()
	for _, p := range pages {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s := string(data)
		for _, m := range shFence.FindAllStringSubmatchIndex(s, -1) {
			line := strings.Count(s[:m[2]], "\n") + 1
			body := strings.ReplaceAll(s[m[2]:m[3]], "\\\n", " ")
			for i, l := range strings.Split(body, "\n") {
				for _, c := range shellCommands(l) {
					lines = append(lines, c)
					where = append(where, p+":"+strconv.Itoa(line+i))
				}
			}
		}
		// Prose: the page outside its fenced blocks.
		inFence := false
		for i, l := range strings.Split(s, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "```") {
				inFence = !inFence
				continue
			}
			if inFence {
				continue
			}
			for _, m := range codeSpan.FindAllStringSubmatch(l, -1) {
				for _, c := range shellCommands(m[1]) {
					lines = append(lines, c)
					where = append(where, p+":"+strconv.Itoa(i+1))
				}
			}
		}
	}
	return lines, where
}

// flagRef is a flag written on a command line: --name or -name, before an
// optional =value.
var flagRef = regexp.MustCompile(`^--?([a-z][a-z0-9-]*)`)

// checkCommand returns what is wrong with one documented command line: an
// unknown subcommand, or a flag the subcommand's usage does not list.
func checkCommand(line string) []string {
	fields := strings.Fields(line)
	if len(fields) < 2 {
		return []string{"no subcommand"}
	}
	cmd, ok := commands[fields[1]]
	if !ok {
		return []string{"kapkan has no subcommand " + fields[1]}
	}
	var out, errb bytes.Buffer
	cmd.run(context.Background(), []string{"-h"}, &out, &errb)
	usage := out.String() + errb.String()
	var bad []string
	for _, f := range fields[2:] {
		m := flagRef.FindStringSubmatch(strings.Trim(f, "[]"))
		if m == nil {
			continue
		}
		if !regexp.MustCompile(`(?m)^\s+-` + regexp.QuoteMeta(m[1]) + `\b`).MatchString(usage) {
			bad = append(bad, "kapkan "+fields[1]+" has no flag -"+m[1])
		}
	}
	return bad
}

// TestDocsCommandLines: every kapkan command line shown in docs/ and the
// README names a subcommand that exists, with flags it has.
func TestDocsCommandLines(t *testing.T) {
	pages, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	lines, where := docCommands(t, append(pages, "../../README.md")...)
	if len(lines) < 10 {
		t.Fatalf("found %d command lines in the docs, want more (did the fence syntax change?)", len(lines))
	}
	t.Logf("%d command lines", len(lines))
	for i, l := range lines {
		for _, p := range checkCommand(l) {
			t.Errorf("%s: %s\n    %s", where[i], p, l)
		}
	}
}

// TestDocsCommandLinesCheckFires proves the check catches a renamed flag and
// an unknown subcommand.
func TestDocsCommandLinesCheckFires(t *testing.T) {
	for line, want := range map[string]int{
		"kapkan check --dump kapkan.yaml":       0,
		"kapkan check --dumb kapkan.yaml":       1,
		"kapkan chek kapkan.yaml":               1,
		"kapkan replay [--rules DIR] x.pcap":    0,
		"kapkan unban --config=k.yaml --x 10.0": 1,
		"kapkan top --once --by mbps":           0,
	} {
		if got := checkCommand(line); len(got) != want {
			t.Errorf("%q: %q, want %d problems", line, got, want)
		}
	}
}

// TestDocsShellCommands: the kapkan commands of a shell line are found
// wherever a shell would run them, and nothing else is taken for one.
func TestDocsShellCommands(t *testing.T) {
	for line, want := range map[string][]string{
		"kapkan check kapkan.yaml   # comment":                           {"kapkan check kapkan.yaml"},
		"$ kapkan version":                                               {"kapkan version"},
		"sudo bin/kapkan top --once | less":                              {"kapkan top --once"},
		"KAPKAN_TOKEN=$(cat /etc/kapkan/a.token) kapkan ban --ttl 30m x": {"kapkan ban --ttl 30m x"},
		"kapkan run --config k.yaml &":                                   {"kapkan run --config k.yaml"},
		"make && ./bin/kapkan test rules/; kapkan chek x":                {"kapkan test rules/", "kapkan chek x"},
		"systemctl reload kapkan":                                        nil,
		"journalctl -u kapkan --since -1h":                               nil,
		`msg="kapkan started" dry_run=false`:                             nil,
		"cat /etc/kapkan/kapkan.yaml":                                    nil,
	} {
		if got := shellCommands(line); !slices.Equal(got, want) {
			t.Errorf("%q: %q, want %q", line, got, want)
		}
	}
}
