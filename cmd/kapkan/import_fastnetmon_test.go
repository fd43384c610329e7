package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/daemon"
)

// TestImportFastNetMonCommand runs the command on Debian's fastnetmon.conf
// (the mapping itself is tested in fnmimport, with kapkan check's
// preflight): the output is a configuration, a second run does not
// overwrite it, and a broken conf names its line.
func TestImportFastNetMonCommand(t *testing.T) {
	dir := "../../testdata/fastnetmon/debian"
	args := []string{"import-fastnetmon", filepath.Join(dir, "fastnetmon.conf"), filepath.Join(dir, "networks_list"), filepath.Join(dir, "networks_whitelist")}
	var out, errb bytes.Buffer
	if code := realMain(args, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if _, err := config.Parse("stdout", out.Bytes()); err != nil {
		t.Errorf("stdout is not a configuration: %v", err)
	}
	if !strings.Contains(errb.String(), "125 settings: 15 mapped") {
		t.Errorf("summary: %s", errb.String())
	}

	file := filepath.Join(t.TempDir(), "kapkan.yaml")
	withOutput := append([]string{"import-fastnetmon", "--output", file}, args[1:]...)
	out.Reset()
	errb.Reset()
	if code := realMain(withOutput, &out, &errb); code != 0 || out.Len() != 0 {
		t.Fatalf("--output: exit %d, stdout %d bytes: %s", code, out.Len(), errb.String())
	}
	if _, err := config.Load(file); err != nil {
		t.Errorf("--output file: %v", err)
	}
	if code := realMain(withOutput, &out, &errb); code != 1 || !strings.Contains(errb.String(), "exists") {
		t.Errorf("--output over an existing file: exit %d: %s", code, errb.String())
	}

	bad := filepath.Join(t.TempDir(), "fastnetmon.conf")
	if err := os.WriteFile(bad, []byte("ban_for_pps = on\nthreshold_pps twenty\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if code := realMain([]string{"import-fastnetmon", bad}, &out, &errb); code != 1 || !strings.Contains(errb.String(), bad+":2:1: ") {
		t.Errorf("broken conf: exit %d: %s", code, errb.String())
	}
	errb.Reset()
	if code := realMain([]string{"import-fastnetmon"}, &out, &errb); code != 2 {
		t.Errorf("no file: exit %d", code)
	}
}

// TestImportedConfigsPassCheck: the importer's outputs, pinned in
// testdata/fastnetmon/*/kapkan.yaml by fnmimport's tests, pass what kapkan
// check runs (config.Load, then daemon.Preflight), with the store and the
// state file in a temporary directory and each notify script replaced by
// one that exists. Debian's fastnetmon.conf is the case that matters.
func TestImportedConfigsPassCheck(t *testing.T) {
	files, err := filepath.Glob("../../testdata/fastnetmon/*/kapkan.yaml")
	if err != nil || len(files) < 5 {
		t.Fatalf("golden outputs %v, %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(filepath.Dir(f)), func(t *testing.T) {
			cfg, err := config.Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if !cfg.DryRun {
				t.Error("dry_run is false")
			}
			tmp := t.TempDir()
			cfg.Store.Path = filepath.Join(tmp, "store")
			cfg.Mitigation.StateFile = filepath.Join(tmp, "mitigations.json")
			for i := range cfg.Notify {
				script := filepath.Join(tmp, fmt.Sprintf("notify%d.sh", i))
				if err := os.WriteFile(script, []byte("#!/bin/sh\ncat >/dev/null\n"), 0o755); err != nil {
					t.Fatal(err)
				}
				cfg.Notify[i].Command = script
			}
			if _, err := daemon.Preflight(cfg); err != nil {
				t.Errorf("kapkan check refuses %s: %v", f, err)
			}
		})
	}
}
