package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kapkan-io/kapkan/config"
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
