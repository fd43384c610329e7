package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kapkan-io/kapkan/internal/testutil"
)

func runTestCmd(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cmdTest(context.Background(), args, &out, &errb)
	return out.String() + errb.String(), code
}

func TestKapkanTestBuiltin(t *testing.T) {
	out, code := runTestCmd(t, filepath.Join(testutil.RepoRoot(t), "builtin"))
	if code != 0 || !strings.Contains(out, " passed, 0 failed") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

func TestKapkanTestOperatorDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("game.yaml", `kapkan_rules: 1
rules:
  - name: game-reflection
    description: a game server query reflection (UDP source port 27015)
    match: udp_share > 0.8 && src_port_share(27015) > 0.5
    labels: [game-reflection, amplification]
    vector: {protocol: udp, src_ports: ["27015"]}
  - name: untested
    match: icmp_share > 2
    labels: [never]
`)
	write("game_test.yaml", `kapkan_rule_tests: 1
tests:
  - name: a SYN flood is not a game reflection
    traffic:
      attacks: [{kind: syn-flood, target: 203.0.113.9, pps: 400000, start: 1s, duration: 4s}]
      duration: 6s
    expect:
      - target: 203.0.113.9
        labels: [syn-flood]
        not_labels: [game-reflection]
  - name: a wrong expectation fails
    traffic:
      attacks: [{kind: udp-flood, target: 203.0.113.10, pps: 400000, start: 1s, duration: 4s}]
      duration: 6s
    expect:
      - target: 203.0.113.10
        labels: [game-reflection]
`)
	out, code := runTestCmd(t, "-v", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	for _, want := range []string{
		"ok    game_test.yaml: a SYN flood is not a game reflection",
		"FAIL  game_test.yaml: a wrong expectation fails",
		"lack game-reflection",
		"COVERAGE  game-reflection: no positive case",
		"COVERAGE  untested: no positive case",
		"1 passed, 1 failed",
		"false src_port_share(27015) > 0.5", // -v explains the conditions
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, code := runTestCmd(t); code != 2 {
		t.Errorf("no directory: exit %d, want 2", code)
	}
}

// TestKapkanTestNotationErrors: bad generated-traffic notation fails the
// run with one line per mistake, each with the file's path, line and
// column, what was found and what was expected.
func TestKapkanTestNotationErrors(t *testing.T) {
	dir := t.TempDir()
	body := `kapkan_rule_tests: 1
tests:
  - name: source engine reflection
    traffic:
      attacks:
        - target: 203.0.113.30
          pps: 300000
          start: 1s
          duration: 5s
          protocol: udp
          src_ports: 70000
          tcp_flags: syn
    expect:
      - target: 203.0.113.30
        labels: [game-reflection]
`
	if err := os.WriteFile(filepath.Join(dir, "games_test.yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := runTestCmd(t, dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	want := filepath.Join(dir, "games_test.yaml") + `:11:22: test "source engine reflection": attacks[0].src_ports: found "70000", want a port 0-65535, a range lo-hi (1024-2047), a list of those, or random
` + filepath.Join(dir, "games_test.yaml") + `:12:22: test "source engine reflection": attacks[0].tcp_flags: given for protocol 17, want protocol tcp
`
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
}
