package kapkan_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/kapkan-io/kapkan/builtin"
	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/daemon/daemontest"
	"github.com/kapkan-io/kapkan/internal/testutil"
	"github.com/kapkan-io/kapkan/rules"
	"github.com/kapkan-io/kapkan/rules/wasm/wasmtest"
	"github.com/kapkan-io/kapkan/ruletest"
)

// A docs example is a ```yaml block, possibly indented (inside a list), of
// README.md or a page of docs/. Every ```yaml block is one of ours: a
// configuration (a fragment is enough: it is loaded onto the defaults, as
// the daemon loads a file), a rule file (`kapkan_rules:` first) or a rule
// test file (`kapkan_rule_tests:` first). The line before it may carry a
// marker:
//
//	<!-- docs-test: continues -->   the block adds keys to the previous
//	                                configuration block of the same page
//	<!-- docs-test: skip REASON --> not a complete file; say why
//
// YAML that is not Kapkan's goes in a block of another info string (```text).
// A ```bird block is a BIRD 2 configuration, parsed by `bird -p`.
var (
	marker    = regexp.MustCompile(`<!-- docs-test: (continues|skip [^>]+) -->\s*$`)
	sha256Pin = regexp.MustCompile(`(?m)^(\s*sha256:\s*)[0-9a-f]{64}`)
	wasmKey   = regexp.MustCompile(`(?m)^\s*wasm:\s*(\S+)`)
	listItem  = regexp.MustCompile(`(?m)^\s*- `)
)

// docPages are the pages whose examples are checked.
func docPages(t *testing.T) []string {
	t.Helper()
	docs, err := filepath.Glob("docs/*.md")
	if err != nil || len(docs) == 0 {
		t.Fatalf("no docs: %v", err)
	}
	return append(docs, "README.md")
}

// fence is one fenced block of a page.
type fence struct {
	info   string // what follows the opening ```: "yaml", "bird", ""
	line   int    // of the block's first line
	text   string // dedented by the opening fence's indentation
	before string // the page up to the opening fence
}

// fences returns the fenced blocks of a page. A block opens with ``` and
// an optional info string, indented or not, and closes with a line of
// only ``` (an unclosed block runs to the end of the page).
func fences(s string) []fence {
	var out []fence
	var cur *fence
	var indent string
	var body strings.Builder
	n, off := 0, 0
	for l := range strings.Lines(s) {
		n++
		trimmed := strings.TrimSpace(l)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			indent = l[:len(l)-len(strings.TrimLeft(l, " \t"))]
			cur = &fence{info: strings.TrimSpace(strings.TrimPrefix(trimmed, "```")), line: n + 1, before: s[:off]}
			body.Reset()
		case cur != nil && trimmed == "```":
			cur.text = body.String()
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(strings.TrimPrefix(l, indent))
		}
		off += len(l)
	}
	if cur != nil {
		cur.text = body.String()
		out = append(out, *cur)
	}
	return out
}

// misfenced reports whether a block's info string says YAML other than
// ```yaml, which no check would read.
func misfenced(info string) bool {
	return info != "yaml" && (strings.HasPrefix(info, "yaml") || strings.HasPrefix(info, "yml"))
}

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
	var out []docBlock
	for _, f := range fences(string(data)) {
		if f.info != "yaml" {
			if misfenced(f.info) {
				t.Errorf("%s:%d: a block of info string %q: write ```yaml for Kapkan's YAML (checked), ```text for any other", doc, f.line-1, f.info)
			}
			continue
		}
		b := docBlock{doc: doc, line: f.line, text: f.text}
		before := strings.TrimRight(f.before, " \t\n")
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

// TestDocsExamplesRun: every yaml example of docs/ and the README is what it claims to be
// and works: a rule file compiles with the built-in set (the WASM modules
// it names are the repository's examples, built from source, their pins
// set to the digest of that build); a rule test file runs, against the
// page's rule file and the built-in set, and passes; a configuration parses
// and validates (one marked `continues` together with the block before).
func TestDocsExamplesRun(t *testing.T) {
	counts := map[string]int{}
	for _, doc := range docPages(t) {
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

// birdBinary finds BIRD 2's daemon, which Debian installs in /usr/sbin
// (not on every user's PATH).
func birdBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("bird"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/bird"); err == nil {
		return "/usr/sbin/bird"
	}
	t.Fatal("bird is not installed (Debian package bird2, installed by make deps): the BIRD recipes cannot be checked")
	return ""
}

// birdParse parses a BIRD configuration with `bird -p` and returns its
// complaint.
func birdParse(t *testing.T, bird, text string) error {
	t.Helper()
	f := filepath.Join(t.TempDir(), "bird.conf")
	if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bird, "-p", "-c", f).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// TestDocsBIRDRecipesParse: every ```bird block of the docs is a BIRD 2
// configuration that `bird -p` accepts.
func TestDocsBIRDRecipesParse(t *testing.T) {
	bird := birdBinary(t)
	n := 0
	for _, doc := range docPages(t) {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fences(string(data)) {
			if f.info != "bird" {
				continue
			}
			n++
			if err := birdParse(t, bird, f.text); err != nil {
				t.Errorf("%s:%d: BIRD refuses the recipe (its line numbers count from the block's first line):\n%v", doc, f.line, err)
			}
		}
	}
	if n == 0 {
		t.Error("no ```bird block in the docs (did the fence syntax change?)")
	}
}

// metricRef is a name in the docs that may be a metric: kapkan_, a
// subsystem, and at least one more part.
var metricRef = regexp.MustCompile(`\bkapkan_([a-z0-9]+)_[a-z0-9_]*[a-z0-9]\b`)

// codeMetrics returns the metric names the code defines: its kapkan_
// string literals (outside tests) and the generated reference's rows.
func codeMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	lit := regexp.MustCompile(`"(kapkan_[a-z0-9_]+)"`)
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "." || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllStringSubmatch(string(data), -1) {
			names[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := os.ReadFile("docs/71-metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile("(?m)^\\| `(kapkan_[a-z0-9_]+)`").FindAllStringSubmatch(string(ref), -1) {
		names[m[1]] = true
	}
	return names
}

// TestDocsMetricNames: every metric the docs name is one the code defines
// (a renamed metric leaves no alert rule of the docs pointing at nothing).
// A name counts as a metric when its second part is a subsystem that has
// metrics.
func TestDocsMetricNames(t *testing.T) {
	names := codeMetrics(t)
	subsystems := map[string]bool{}
	for n := range names {
		if m := metricRef.FindStringSubmatch(n); m != nil && strings.Contains(strings.TrimPrefix(n, "kapkan_"+m[1]), "_") {
			subsystems[m[1]] = true
		}
	}
	if len(subsystems) < 5 {
		t.Fatalf("found the metric subsystems %v in the code, want more", subsystems)
	}
	checked := 0
	for _, doc := range docPages(t) {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			for _, m := range metricRef.FindAllStringSubmatch(line, -1) {
				if !subsystems[m[1]] {
					continue
				}
				checked++
				if !names[m[0]] {
					t.Errorf("%s:%d: %s is no metric of the code", doc, i+1, m[0])
				}
			}
		}
	}
	t.Logf("%d metric names checked", checked)
}

// configKeys lists every key path of the configuration, lists written
// with [] ("hostgroups[].thresholds.incoming.pps"). A struct without yaml
// keys of its own (a duration, an address) is a leaf.
func configKeys(t reflect.Type, prefix string, out map[string]bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		ft := f.Type
		if ft.Kind() == reflect.Slice {
			out[key] = true
			key += "[]"
			ft = ft.Elem()
		}
		out[key] = true
		if ft.Kind() == reflect.Struct && hasYAMLKeys(ft) {
			configKeys(ft, key, out)
		}
	}
}

func hasYAMLKeys(t reflect.Type) bool {
	for i := range t.NumField() {
		if t.Field(i).IsExported() && t.Field(i).Tag.Get("yaml") != "" {
			return true
		}
	}
	return false
}

// keyRef is a code span that reads as a configuration key path: lower-case
// parts joined by dots, list items as [] or [N].
var keyRef = regexp.MustCompile("`([a-z_]+(?:\\[\\d*\\])?(?:\\.[a-z_]+(?:\\[\\d*\\])?)+)`")

// TestDocsConfigKeyPaths: a key path the docs write in a code span
// (`mitigation.max_new_per_minute`, `ingest.exporters[].sampling_rate`)
// and that starts with a top-level key exists in the configuration. The
// reference's tables are checked against the schema by config's own docs
// test; this keeps the prose of every other page true too.
func TestDocsConfigKeyPaths(t *testing.T) {
	keys := map[string]bool{}
	configKeys(reflect.TypeFor[config.Config](), "", keys)
	top := map[string]bool{}
	for k := range keys {
		if !strings.ContainsAny(k, ".[") {
			top[k] = true
		}
	}
	index := regexp.MustCompile(`\[\d+\]`)
	checked := 0
	for _, doc := range docPages(t) {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			for _, m := range keyRef.FindAllStringSubmatch(line, -1) {
				key := index.ReplaceAllString(m[1], "[]")
				first, _, _ := strings.Cut(key, ".")
				if !top[strings.TrimSuffix(first, "[]")] {
					continue
				}
				checked++
				if !keys[key] {
					t.Errorf("%s:%d: `%s` is no configuration key", doc, i+1, m[1])
				}
			}
		}
	}
	t.Logf("%d key paths checked", checked)
	if checked < 50 {
		t.Errorf("checked %d key paths, want more (did the notation change?)", checked)
	}
}

// TestDocsChecksFire proves the checks of recipes, metric names and key
// paths catch what they are for: a BIRD configuration that does not
// parse, a yaml block under another info string, a metric and a key that
// do not exist.
func TestDocsChecksFire(t *testing.T) {
	bird := birdBinary(t)
	if err := birdParse(t, bird, "router id 192.0.2.2;\nprotocol device {}\n"); err != nil {
		t.Errorf("a good BIRD configuration: %v", err)
	}
	if err := birdParse(t, bird, "protocol bgp x { neighbor 192.0.2.10 as 65010; ipv4 { import filter nope; }; }\n"); err == nil {
		t.Error("a BIRD configuration naming an unknown filter parsed")
	}
	fs := fences("x\n  ```yml\n  a: 1\n  ```\n```bird\nrouter id 1.2.3.4;\n```\n```\nplain\n")
	if len(fs) != 3 || fs[0].info != "yml" || fs[0].text != "a: 1\n" || fs[0].line != 3 ||
		fs[1].info != "bird" || fs[1].line != 6 || fs[2].text != "plain\n" {
		t.Errorf("fences: %+v", fs)
	}
	for info, want := range map[string]bool{"yaml": false, "yml": true, "yaml kapkan": true, "text": false, "bird": false} {
		if misfenced(info) != want {
			t.Errorf("misfenced(%q) = %v", info, !want)
		}
	}
	names := codeMetrics(t)
	if !names["kapkan_ingest_decode_errors_total"] || !names["kapkan_config_reloads_total"] || names["kapkan_ingest_decode_error_total"] {
		t.Errorf("metric names found in the code: %d, wrong ones in or right ones out", len(names))
	}
	keys := map[string]bool{}
	configKeys(reflect.TypeFor[config.Config](), "", keys)
	for k, want := range map[string]bool{
		"mitigation.max_new_per_minute":         true,
		"ingest.exporters[].sampling_rate":      true,
		"hostgroups[].thresholds.incoming.pps":  true,
		"mitigation.bgp.peers[].communities":    true,
		"mitigation.max_new_per_min":            false,
		"hostgroups[].thresholds.incoming.pps.": false,
		"ingest.exporters.sampling_rate":        false,
	} {
		if keys[k] != want {
			t.Errorf("key %s: known = %v", k, keys[k])
		}
	}
	if m := keyRef.FindAllStringSubmatch("`hostgroups[0].prefixes[1]` and `log.level` but not `a.B`", -1); len(m) != 2 {
		t.Errorf("key references: %q", m)
	}
}

// kernelProtocol is a `protocol kernel` block of a BIRD configuration.
var kernelProtocol = regexp.MustCompile(`(?ms)^protocol kernel [^{]*\{.*?^\}\n`)

// TestDocsBIRDRecipeReceivesKapkan runs the BIRD recipe of the router
// recipes page against a live Kapkan on loopback: a ban reaches BIRD as a
// blackhole route its filter accepted, a FlowSpec discard lands in its
// flow table. The recipe is taken as written, except what a test on a
// shared machine must not do or cannot have: its kernel protocols are
// left out (no route on this host's tables), and the session runs between
// loopback addresses on a port of the test's own, BIRD passive and in
// multihop mode (BIRD takes no loopback address for a directly connected
// neighbor; Kapkan's TTL of 1 is enough on loopback).
func TestDocsBIRDRecipeReceivesKapkan(t *testing.T) {
	bird := birdBinary(t)
	data, err := os.ReadFile("docs/35-router-recipes.md")
	if err != nil {
		t.Fatal(err)
	}
	var recipe string
	for _, f := range fences(string(data)) {
		if f.info == "bird" {
			recipe = f.text
		}
	}
	port := testutil.FreePort(t)
	conf := kernelProtocol.ReplaceAllString(recipe, "")
	for from, to := range map[string]string{
		"local 192.0.2.2 as 65000;":     fmt.Sprintf("local 127.0.0.2 port %d as 65000;\n    passive on;\n    multihop;", port),
		"neighbor 192.0.2.10 as 65010;": "neighbor 127.0.0.1 as 65010;",
	} {
		if !strings.Contains(conf, from) {
			t.Fatalf("the BIRD recipe has no %q any more: update this test with it", from)
		}
		conf = strings.Replace(conf, from, to, 1)
	}
	if strings.Contains(conf, "protocol kernel") {
		t.Fatal("a kernel protocol is left in the configuration under test")
	}
	dir := t.TempDir()
	confFile, sock := filepath.Join(dir, "bird.conf"), filepath.Join(dir, "bird.ctl")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bird, "-f", "-c", confFile, "-s", sock, "-P", filepath.Join(dir, "bird.pid"))
	var birdLog strings.Builder
	cmd.Stdout, cmd.Stderr = &birdLog, &birdLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	birdc := func(args ...string) string {
		out, _ := exec.Command(bird+"c", append([]string{"-s", sock}, args...)...).CombinedOutput()
		return string(out)
	}

	cfg := daemontest.Config(t, fmt.Sprintf(`dry_run: false
mitigation:
  state_file: ""
  bgp:
    asn: 65010
    router_id: 192.0.2.10
    peers:
      - {address: 127.0.0.2, port: %d, asn: 65000, families: [ipv4-unicast, ipv4-flowspec]}
`, port))
	d, _ := daemontest.Start(t, cfg, "")
	api := "http://" + d.APIAddr().String() + "/api/v1/mitigations"

	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30 s\nbird: %s\n%s\n%s", what, birdLog.String(),
					birdc("show", "protocols", "all", "kapkan"), birdc("show", "route", "all"))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor("the session with BIRD established", func() bool {
		return strings.Contains(birdc("show", "protocols", "kapkan"), "Established")
	})
	for _, body := range []string{
		`{"target": "203.0.113.9", "action": "blackhole", "ttl": "5m", "reason": "docs recipe"}`,
		`{"target": "203.0.113.10", "action": "flowspec-discard", "ttl": "5m", "match": {"protocol": "udp", "src_ports": ["53"]}}`,
	} {
		req, err := http.NewRequest(http.MethodPost, api, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+daemontest.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST %s: %d %s", body, resp.StatusCode, out)
		}
	}
	waitFor("the blackhole in BIRD's table, as a blackhole", func() bool {
		out := birdc("show", "route", "203.0.113.9/32", "all")
		return strings.Contains(out, "203.0.113.9/32") && strings.Contains(out, "blackhole") &&
			strings.Contains(out, "(65535,666)")
	})
	waitFor("the FlowSpec rule in BIRD's flow table", func() bool {
		out := birdc("show", "route", "table", "flowtab4", "all")
		return strings.Contains(out, "dst 203.0.113.10/32") && strings.Contains(out, "sport 53")
	})
	t.Logf("BIRD:\n%s", birdc("show", "route", "all"))
}
