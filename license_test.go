package kapkan_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// licenceKinds are the licences Kapkan (Apache-2.0) may link, recognised
// by words of their text, and the ones it must not.
var (
	permissive = []struct{ name, marker string }{
		{"Apache-2.0", "Apache License"},
		{"MIT", "Permission is hereby granted, free of charge"},
		{"BSD", "Redistribution and use in source and binary form"},
		{"ISC", "Permission to use, copy, modify, and/or distribute this software"},
	}
	forbidden = regexp.MustCompile(`(?i)GNU (Affero |Lesser )?General Public License|GNU GENERAL PUBLIC LICENSE`)
)

// classify names the licence of a LICENSE text, or says why it is refused.
func classify(text []byte) (name string, ok bool) {
	// The MPL names the GPL among its "secondary licenses"; it is not one.
	if bytes.HasPrefix(bytes.TrimSpace(text), []byte("Mozilla Public License")) {
		return "MPL-2.0", true
	}
	if forbidden.Match(text) {
		return "GPL family", false
	}
	for _, p := range permissive {
		if bytes.Contains(text, []byte(p.marker)) {
			return p.name, true
		}
	}
	return "unknown", false
}

// TestDependencyLicences reads the licence of every module linked into the
// kapkan binary, or into the ClickHouse store it will link (from the
// module cache) and fails on any GPL-family or
// unrecognised one.
func TestDependencyLicences(t *testing.T) {
	// The check itself must fire on a GPL text and on an unknown one.
	if _, ok := classify([]byte("GNU GENERAL PUBLIC LICENSE\nVersion 3, 29 June 2007")); ok {
		t.Fatal("a GPL text was accepted")
	}
	if _, ok := classify([]byte("Permission is hereby granted, free of charge ... GNU General Public License")); ok {
		t.Fatal("a text naming the GPL was accepted as MIT")
	}
	if _, ok := classify([]byte("All rights reserved. Do not copy.")); ok {
		t.Fatal("an unknown licence was accepted")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{.Module.Path}} {{.Module.Dir}}{{end}}", "./cmd/kapkan", "./store/clickhouse").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		path, dir, _ := strings.Cut(sc.Text(), " ")
		if seen[path] || path == module {
			continue
		}
		seen[path] = true
		var text []byte
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			n := strings.ToUpper(e.Name())
			if strings.HasPrefix(n, "LICENSE") || strings.HasPrefix(n, "LICENCE") || strings.HasPrefix(n, "COPYING") {
				b, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err == nil {
					text = append(text, b...)
				}
			}
		}
		if len(text) == 0 {
			t.Errorf("%s: no licence file in %s", path, dir)
			continue
		}
		if name, ok := classify(text); !ok {
			t.Errorf("%s: licence %s cannot be linked into an Apache-2.0 binary (or is not recognised: check it, then add it here)", path, name)
		}
	}
	if len(seen) < 10 {
		t.Fatalf("only %d modules listed: the check saw nothing", len(seen))
	}
}
