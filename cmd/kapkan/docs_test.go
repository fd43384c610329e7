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
)

// shFence is a ```sh block of a page.
var shFence = regexp.MustCompile("(?ms)^[ \t]*```sh\n(.*?)^[ \t]*```")

// docCommands returns the kapkan command lines of the ```sh blocks of the
// pages (continuation lines joined, comments and `&` dropped), each with
// where it was found.
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
				l, _, _ = strings.Cut(l, "#")
				l = strings.TrimSuffix(strings.TrimSpace(l), "&")
				if strings.HasPrefix(l, "kapkan ") {
					lines = append(lines, l)
					where = append(where, p+":"+strconv.Itoa(line+i))
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
	} {
		if got := checkCommand(line); len(got) != want {
			t.Errorf("%q: %q, want %d problems", line, got, want)
		}
	}
}
