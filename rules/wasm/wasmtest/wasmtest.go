// Package wasmtest builds WASM guests from their Go source for tests, with
// the Go toolchain running the tests (GOOS=wasip1 GOARCH=wasm
// -buildmode=c-shared). No test depends on a committed binary that could
// be stale; the build cache keeps a rebuild cheap, and each guest is built
// once per test binary. A guest that does not build fails the test.
package wasmtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// CacheDir is where the tests' compiled modules are kept between test
// binaries: compiling a Go guest takes seconds under the race detector, and
// every package that loads the same guest would pay for it again.
var CacheDir = filepath.Join(os.TempDir(), "kapkan-wasm-test-cache")

func init() {
	if os.Getenv("KAPKAN_WASM_CACHE_DIR") == "" {
		_ = os.Setenv("KAPKAN_WASM_CACHE_DIR", CacheDir)
	}
}

// Guests of the repository, by the name tests use.
var Guests = map[string]string{
	"wsdiscovery":       "./wasm-sdk/examples/wsdiscovery",
	"bigblackhole":      "./wasm-sdk/examples/bigblackhole",
	"conformance":       "./wasm-sdk/conformance",
	"bad/loop":          "./testdata/wasm/bad/loop",
	"bad/membomb":       "./testdata/wasm/bad/membomb",
	"bad/trap":          "./testdata/wasm/bad/trap",
	"bad/wrongabi":      "./testdata/wasm/bad/wrongabi",
	"bad/missingexport": "./testdata/wasm/bad/missingexport",
}

type result struct {
	once sync.Once
	bin  []byte
	err  error
}

var (
	mu    sync.Mutex
	built = map[string]*result{}
)

// Build returns the module bytes of the named guests (keys of Guests),
// building those not built yet, two at a time.
func Build(tb testing.TB, names ...string) map[string][]byte {
	tb.Helper()
	out := make(map[string][]byte, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i, name := range names {
		mu.Lock()
		r := built[name]
		if r == nil {
			r = &result{}
			built[name] = r
		}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.once.Do(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				r.bin, r.err = build(name)
			})
			errs[i] = r.err
		}()
	}
	wg.Wait()
	for i, name := range names {
		if errs[i] != nil {
			tb.Fatalf("build guest %s: %v", name, errs[i])
		}
		out[name] = built[name].bin
	}
	return out
}

// One builds one guest and returns its bytes.
func One(tb testing.TB, name string) []byte {
	tb.Helper()
	return Build(tb, name)[name]
}

// Write builds a guest into dir/file and returns the path.
func Write(tb testing.TB, name, dir, file string) string {
	tb.Helper()
	p := filepath.Join(dir, file)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(p, One(tb, name), 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

// warm compiles a module into the cache directory with a helper built
// without the race detector (see warmcache): only worth it under -race.
func warm(root, module string) error {
	dir := os.Getenv("KAPKAN_WASM_CACHE_DIR")
	if !race || dir == "" {
		return nil
	}
	cmd := exec.Command(goBin(), "run", "./rules/wasm/wasmtest/warmcache", "-dir", dir, module)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("warm the compilation cache: %v\n%s", err, stderr.String())
	}
	return nil
}

func build(name string) ([]byte, error) {
	pkg, ok := Guests[name]
	if !ok {
		return nil, fmt.Errorf("no guest %q", name)
	}
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kapkan-wasm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "guest.wasm")
	cmd := exec.Command(goBin(), "build", "-buildmode=c-shared", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared %s: %v\n%s", pkg, err, stderr.String())
	}
	if err := warm(root, out); err != nil {
		return nil, err
	}
	return os.ReadFile(out)
}

// goBin is the go command: go test puts the toolchain that runs the tests
// first in PATH.
func goBin() string { return "go" }

// repoRoot is the directory of the module's go.mod, found upwards from the
// test's working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/kapkan-io/kapkan\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of github.com/kapkan-io/kapkan above the working directory")
		}
		dir = parent
	}
}
