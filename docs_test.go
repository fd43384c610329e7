package kapkan_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/kapkan-io/kapkan/builtin"
	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/rules"
	"github.com/kapkan-io/kapkan/rules/wasm/wasmtest"
	"github.com/kapkan-io/kapkan/ruletest"
)

// A docs example is a ```yaml block, possibly indented (inside a list). The
// line before it may carry a marker:
//
//	<!-- docs-test: continues -->   the block adds keys to the previous
//	                                configuration block of the same page
//	<!-- docs-test: skip REASON --> not a complete file; say why
var (
	yamlFence = regexp.MustCompile("(?ms)^([ \t]*)```yaml\n(.*?)^[ \t]*```")
	marker    = regexp.MustCompile(`<!-- docs-test: (continues|skip [^>]+) -->\s*$`)
	sha256Pin = regexp.MustCompile(`(?m)^(\s*sha256:\s*)[0-9a-f]{64}`)
	wasmKey   = regexp.MustCompile(`(?m)^\s*wasm:\s*(\S+)`)
	listItem  = regexp.MustCompile(`(?m)^\s*- `)
)

// docBlock is one yaml example of a page.
type docBlock struct {
	doc    string // docs/60-writing-rules.md
	line   int    // of the block's first line
	text   string // dedented
	marker string // "continues", "skip …" or ""
}

func (b docBlock) String() string { return fmt.Sprintf("%s:%d", b.doc, b.line) }

func docBlocks(t *testing.T, doc string) []docBlock {
	t.Helper()
	data, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	var out []docBlock
	for _, m := range yamlFence.FindAllStringSubmatchIndex(s, -1) {
		indent := s[m[2]:m[3]]
		var body strings.Builder
		for l := range strings.Lines(s[m[4]:m[5]]) {
			body.WriteString(strings.TrimPrefix(l, indent))
		}
		b := docBlock{doc: doc, line: strings.Count(s[:m[4]], "\n") + 1, text: body.String()}
		before := strings.TrimRight(s[:m[0]], " \t\n")
		if mm := marker.FindStringSubmatch(before[strings.LastIndex(before, "\n")+1:] + "\n"); mm != nil {
			b.marker = mm[1]
		}
		out = append(out, b)
	}
	return out
}

// kind tells what a block is by its first key.
func kind(text string) string {
	switch {
	case strings.HasPrefix(text, "kapkan_rules:"):
		return "rules"
	case strings.HasPrefix(text, "kapkan_rule_tests:"):
		return "rule tests"
	}
	return "config"
}

// TestDocsExamplesRun: every yaml example of docs/ is what it claims to be
// and works: a rule file compiles with the built-in set (the WASM modules
// it names are the repository's examples, built from source, their pins
// set to the digest of that build); a rule test file runs, against the
// page's rule file and the built-in set, and passes; a configuration parses
// and validates (one marked `continues` together with the block before).
func TestDocsExamplesRun(t *testing.T) {
	docs, err := filepath.Glob("docs/*.md")
	if err != nil || len(docs) == 0 {
		t.Fatalf("no docs: %v", err)
	}
	counts := map[string]int{}
	for _, doc := range docs {
		var lastConfig string
		var pageRules *rules.Set
		for _, b := range docBlocks(t, doc) {
			if strings.HasPrefix(b.marker, "skip") {
				counts["skipped"]++
				continue
			}
			k := kind(b.text)
			counts[k]++
			t.Run(b.String(), func(t *testing.T) {
				switch k {
				case "rules":
					set, err := compileDocRules(t, b.text)
					if err != nil {
						t.Fatalf("the rule file does not compile:\n%v\n%s", err, b.text)
					}
					if pageRules == nil {
						pageRules = set
					}
				case "rule tests":
					if pageRules == nil {
						t.Fatal("a rule test example with no rule file before it on the page")
					}
					if failures := runDocTests(t, pageRules, b.text); len(failures) > 0 {
						t.Errorf("the rule test example fails against the page's rules:\n%s", strings.Join(failures, "\n"))
					}
				case "config":
					text := b.text
					if b.marker == "continues" {
						if lastConfig == "" {
							t.Fatal("marked continues, with no configuration before it on the page")
						}
						text = lastConfig + text
					}
					if _, err := config.Parse(b.String(), []byte(text)); err != nil {
						t.Fatalf("the configuration does not load:\n%v\n%s", err, text)
					}
					lastConfig = text
				}
			})
		}
	}
	t.Logf("docs examples: %v", counts)
	if counts["rules"] < 3 || counts["rule tests"] < 1 || counts["config"] < 3 {
		t.Errorf("found %v: fewer examples than the docs hold (did the fence syntax change?)", counts)
	}
}

// compileDocRules compiles a rule file example with the built-in set. The
// modules it names, by the examples' names, are the examples built from
// source; its sha256 pins are replaced by their digests (a pin depends on
// the Go release that built the module).
func compileDocRules(t *testing.T, text string) (*rules.Set, error) {
	t.Helper()
	fsys := fstest.MapFS{}
	// Item by item (a pin belongs to the module of its own list item).
	items := listItem.Split(text, -1)
	starts := listItem.FindAllString(text, -1)
	var out strings.Builder
	for i, item := range items {
		if i > 0 {
			out.WriteString(starts[i-1])
		}
		if m := wasmKey.FindStringSubmatch(item); m != nil {
			name := strings.TrimSuffix(filepath.Base(m[1]), ".wasm")
			if _, ok := wasmtest.Guests[name]; !ok {
				t.Fatalf("the example names module %s, which is no example of wasm-sdk/examples", m[1])
			}
			bin := wasmtest.One(t, name)
			fsys[m[1]] = &fstest.MapFile{Data: bin}
			sum := sha256.Sum256(bin)
			item = sha256Pin.ReplaceAllString(item, "${1}"+hex.EncodeToString(sum[:]))
		}
		out.WriteString(item)
	}
	fsys["example.yaml"] = &fstest.MapFile{Data: []byte(out.String())}
	set, err := rules.Compile(rules.Source{FS: fsys, Name: "example"},
		rules.Source{FS: builtin.Classify(), Name: "builtin", Builtin: true})
	if err == nil {
		t.Cleanup(func() { _ = set.Close() })
	}
	return set, err
}

// runDocTests runs a rule test example; the capture it names is the
// built-in set's fragment-flood capture. Coverage is not asked of an
// example.
func runDocTests(t *testing.T, set *rules.Set, text string) []string {
	t.Helper()
	fsys := fstest.MapFS{"example_test.yaml": {Data: []byte(text)}}
	for _, m := range regexp.MustCompile(`(?m)^\s*capture:\s*(\S+)`).FindAllStringSubmatch(text, -1) {
		pcap, err := os.ReadFile("builtin/classify/captures/softflowd-fragment-flood.pcap")
		if err != nil {
			t.Fatal(err)
		}
		fsys[m[1]] = &fstest.MapFile{Data: pcap}
	}
	rep, err := ruletest.Run(fsys, set, ruletest.Options{Covered: []string{}})
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, r := range rep.Results {
		for _, f := range r.Failures {
			out = append(out, r.Name+": "+f)
		}
	}
	return out
}

// TestDocsExamplesCheckFires proves the checks catch a broken example: a
// rule test that expects a label its rule file disabled, a configuration
// with an unknown key, a rule that does not compile, and a marker.
func TestDocsExamplesCheckFires(t *testing.T) {
	set, err := compileDocRules(t, "kapkan_rules: 1\ndisable: [udp-flood]\n")
	if err != nil {
		t.Fatal(err)
	}
	failures := runDocTests(t, set, `kapkan_rule_tests: 1
tests:
  - name: flood
    traffic: {attacks: [{kind: udp-flood, target: 203.0.113.9, pps: 400000, start: 2s, duration: 5s}], duration: 8s}
    expect: [{target: 203.0.113.9, labels: [udp-flood]}]
`)
	if len(failures) != 1 || !strings.Contains(failures[0], "lack udp-flood") {
		t.Errorf("a test expecting a disabled rule's label: %q", failures)
	}
	if _, err := compileDocRules(t, "kapkan_rules: 1\nrules:\n  - {name: x, match: udp_share > nope}\n"); err == nil {
		t.Error("a rule with an unknown field compiled")
	}
	if _, err := config.Parse("x", []byte("hostgroups: []\napi: {lisen: x}\n")); err == nil {
		t.Error("a configuration with an unknown key loaded")
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "p.md")
	if err := os.WriteFile(page, []byte("a\n\n   <!-- docs-test: continues -->\n   ```yaml\n   a: 1\n     b: 2\n   ```\n\n```yaml\nc: 3\n```\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bs := docBlocks(t, page)
	if len(bs) != 2 || bs[0].marker != "continues" || bs[0].text != "a: 1\n  b: 2\n" || bs[0].line != 5 || bs[1].marker != "" {
		t.Errorf("blocks: %+v", bs)
	}
}
