package main

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/kapkan-io/kapkan/internal/testutil"
)

// TestReplayExplain runs `kapkan replay --explain` on every capture of
// testdata/captures (with its configuration) and testdata/real (with
// testdata/explain/real.yaml): each attack's explanation names the rule
// that decided it and, for the closest rule that did not match, the part
// of its match that failed; the output equals the reviewed golden file in
// testdata/explain (-update rewrites them).
func TestReplayExplain(t *testing.T) {
	root := testutil.RepoRoot(t)
	type tc struct{ name, config, capture string }
	var cases []tc
	caps, _ := filepath.Glob(filepath.Join(root, "testdata", "captures", "*", "capture.pcap"))
	for _, c := range caps {
		dir := filepath.Dir(c)
		cases = append(cases, tc{"captures-" + filepath.Base(dir), filepath.Join(dir, "kapkan.yaml"), c})
	}
	reals, _ := filepath.Glob(filepath.Join(root, "testdata", "real", "*", "export.pcap"))
	for _, c := range reals {
		cases = append(cases, tc{"real-" + filepath.Base(filepath.Dir(c)), filepath.Join("testdata", "explain", "real.yaml"), c})
	}
	if len(caps) < 2 || len(reals) < 13 {
		t.Fatalf("found %d captures and %d real exports, want every one of testdata", len(caps), len(reals))
	}
	attackLine := regexp.MustCompile(`(?m)^attack \d+ `)
	decided := regexp.MustCompile(`(?m)^  decided by: [a-z0-9-]+$`)
	failed := regexp.MustCompile(`(?m)^  closest miss: [a-z0-9-]+ \(\d+ of \d+ parts held\)\n    failed: .+$`)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, stderr, code := replay(t, "--explain", "--config", c.config, c.capture)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			attacks := len(attackLine.FindAllString(out, -1))
			if attacks == 0 {
				t.Fatalf("no attack explained:\n%s", out)
			}
			if n := len(decided.FindAllString(out, -1)); n != attacks {
				t.Errorf("%d of %d explanations name a deciding rule:\n%s", n, attacks, out)
			}
			if n := len(failed.FindAllString(out, -1)); n != attacks {
				t.Errorf("%d of %d explanations name a closest miss and its failed part:\n%s", n, attacks, out)
			}
			golden := filepath.Join("testdata", "explain", c.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (create it with -update, then review it)", err)
			}
			if out != string(want) {
				t.Errorf("replay --explain differs from %s:\n got:\n%s\nwant:\n%s", golden, out, want)
			}
		})
	}
}
