package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestVersionAndUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := realMain([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "kapkan ") || !strings.Contains(out.String(), "commit") {
		t.Errorf("version: exit %d, %q", code, out.String())
	}
	out.Reset()
	if code := realMain([]string{"help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "simulate") {
		t.Errorf("help: exit %d, %q", code, out.String())
	}
	if code := realMain([]string{"nosuch"}, &out, &errb); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
	if code := realMain(nil, &out, &errb); code != 2 {
		t.Errorf("no command: exit %d, want 2", code)
	}
}

func TestRunRefusesBadSettings(t *testing.T) {
	var out, errb bytes.Buffer
	if code := cmdRun(context.Background(), []string{"--log-level", "loud"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "log.level") {
		t.Errorf("bad log level: exit %d, %q", code, errb.String())
	}
	errb.Reset()
	if code := cmdRun(context.Background(), []string{"--config", "/nonexistent.yaml"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "/nonexistent.yaml") {
		t.Errorf("missing config: exit %d, %q", code, errb.String())
	}
}
