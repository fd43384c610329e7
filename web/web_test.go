package web

import (
	"io/fs"
	"os/exec"
	"path"
	"regexp"
	"strings"
	"testing"
)

// TestAssetsSelfContained: every file the page or a module names is
// embedded, and nothing is fetched from anywhere but the daemon (the
// dashboard works offline).
func TestAssetsSelfContained(t *testing.T) {
	files := Files()
	index, err := fs.ReadFile(files, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile(`(?:src|href)="(/ui/[^"]+)"`).FindAllStringSubmatch(string(index), -1)
	if len(refs) < 3 {
		t.Fatalf("index.html names %d files, want the script, the style and the icon", len(refs))
	}
	for _, r := range refs {
		if _, err := fs.Stat(files, strings.TrimPrefix(r[1], "/ui/")); err != nil {
			t.Errorf("index.html names %s: %v", r[1], err)
		}
	}
	imports := regexp.MustCompile(`(?m)^import\s+(?:[^'"]+\s+from\s+)?'([^']+)'`)
	external := regexp.MustCompile(`(?i)\b(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	n := 0
	err = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		// The SVG namespace is a name, never fetched.
		text := strings.ReplaceAll(string(b), "http://www.w3.org/2000/svg", "")
		if m := external.FindString(text); m != "" {
			t.Errorf("%s refers to another site (%s): the dashboard must work offline", p, m)
		}
		if strings.HasSuffix(p, ".js") {
			n++
			for _, m := range imports.FindAllStringSubmatch(string(b), -1) {
				if !strings.HasPrefix(m[1], ".") {
					t.Errorf("%s imports %q: only relative modules of the dashboard", p, m[1])
					continue
				}
				if _, err := fs.Stat(files, path.Join(path.Dir(p), m[1])); err != nil {
					t.Errorf("%s imports %s: %v", p, m[1], err)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 {
		t.Errorf("%d scripts embedded, want the app, its libraries and views", n)
	}
}

// TestScriptsParse: node parses every module as the browser will (the
// dashboard has no build step that would catch a syntax error).
func TestScriptsParse(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed to check the dashboard's scripts: %v", err)
	}
	err = fs.WalkDir(Files(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".js") {
			return err
		}
		// package.json in web/ says "type": "module", so .js is an ES module.
		if out, err := exec.Command(node, "--check", path.Join("static", p)).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", p, err, out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestNoHTMLInjection: the scripts never turn text into markup; every
// value goes into the page as text (lib/dom.js).
func TestNoHTMLInjection(t *testing.T) {
	bad := regexp.MustCompile(`\.(?:innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function\(`)
	err := fs.WalkDir(Files(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".js") {
			return err
		}
		b, err := fs.ReadFile(Files(), p)
		if err != nil {
			return err
		}
		if m := bad.FindString(string(b)); m != "" {
			t.Errorf("%s uses %s", p, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
