package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/kapkan-io/kapkan/builtin"
	"github.com/kapkan-io/kapkan/rules"
	"github.com/kapkan-io/kapkan/ruletest"
)

// cmdTest runs the rule tests of a directory: `kapkan test DIR`.
func cmdTest(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	verbose := fs.Bool("v", false, "explain, for every attack, how each condition of each rule evaluated")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kapkan test [-v] DIR   (runs DIR's *_test.yaml against DIR's rules and the built-in ones)")
		fs.PrintDefaults()
	}
	dirs, err := parseArgs(fs, args)
	if err != nil {
		return flagStatus(err) // the flag package printed the usage
	}
	if len(dirs) != 1 {
		fs.Usage()
		return 2
	}
	dir := dirs[0]
	builtinSet, err := rules.Compile(rules.Source{FS: builtin.Classify(), Name: "builtin", Builtin: true})
	if err != nil {
		fmt.Fprintf(stderr, "kapkan test: built-in rules: %v\n", err)
		return 1
	}
	var set *rules.Set
	var covered []string
	if isBuiltinTree(dir) {
		// The built-in rules' own directory: test it alone.
		set, err = rules.Compile(rules.Dir(dir))
		covered = nil
	} else {
		set, err = compileRules([]string{dir}, newLogger(stderr, "warn", "text"))
		if err == nil {
			for _, r := range set.Rules() {
				if !slices.Contains(builtinSet.Rules(), r) {
					covered = append(covered, r)
				}
			}
			if covered == nil {
				covered = []string{}
			}
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "kapkan test: %v\n", err)
		return 1
	}
	defer set.Close()
	rep, err := ruletest.Run(os.DirFS(dir), set, ruletest.Options{Explain: *verbose, Covered: covered})
	var positioned rules.Errors
	if errors.As(err, &positioned) {
		// One line per mistake, each with the file's path from here.
		for _, e := range positioned {
			e.File = filepath.Join(dir, e.File)
		}
		fmt.Fprintf(stderr, "%v\n", positioned)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "kapkan test: %s: %v\n", dir, err)
		return 1
	}
	passed, failed := 0, 0
	for _, r := range rep.Results {
		if r.Passed() {
			passed++
			fmt.Fprintf(stdout, "ok    %s: %s\n", r.File, r.Name)
		} else {
			failed++
			fmt.Fprintf(stdout, "FAIL  %s: %s\n", r.File, r.Name)
			for _, f := range r.Failures {
				fmt.Fprintf(stdout, "        %s\n", f)
			}
		}
		if *verbose {
			for _, e := range r.Explain {
				fmt.Fprintf(stdout, "      %s\n", e)
			}
		}
	}
	for _, u := range rep.Uncovered {
		fmt.Fprintf(stdout, "COVERAGE  %s\n", u)
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	if rep.Failed() {
		return 1
	}
	return 0
}

// isBuiltinTree reports whether dir holds the built-in rule files
// themselves (builtin/ of a checkout): they are then tested alone.
func isBuiltinTree(dir string) bool {
	found, mismatch := false, false
	err := fs.WalkDir(builtin.Classify(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".yaml" {
			return err
		}
		want, _ := fs.ReadFile(builtin.Classify(), p)
		got, rerr := os.ReadFile(filepath.Join(dir, p))
		if rerr != nil || !bytes.Equal(got, want) {
			mismatch = true
			return fs.SkipAll
		}
		found = true
		return nil
	})
	return err == nil && found && !mismatch
}
