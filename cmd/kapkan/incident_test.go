package main

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/daemon/daemontest"
	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/incident"
	"github.com/kapkan-io/kapkan/ingest"
	"github.com/kapkan-io/kapkan/ingest/demo"
	"github.com/kapkan-io/kapkan/internal/testutil"
)

// checkFixture runs kapkan test on dir (expecting it to pass), then edits
// the first expected label of every incident test under it and expects
// kapkan test to fail on each, naming the edited label. It returns the
// number of incident folders seen.
func checkFixture(t *testing.T, dir string) int {
	t.Helper()
	out, code := runTestCmd(t, dir)
	if code != 0 || !strings.Contains(out, " passed, 0 failed") {
		t.Fatalf("kapkan test %s: exit %d:\n%s", dir, code, out)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*", incident.TestFile))
	if err != nil {
		t.Fatal(err)
	}
	if own := filepath.Join(dir, incident.TestFile); fileExists(own) {
		files = append(files, own)
	}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		i := strings.Index(string(body), "labels: [")
		if i < 0 {
			t.Fatalf("%s has no labels:\n%s", f, body)
		}
		edited := string(body[:i]) + "labels: [not-what-was-seen, " + string(body[i+len("labels: ["):])
		if err := os.WriteFile(f, []byte(edited), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, code = runTestCmd(t, dir)
	if code != 1 || !strings.Contains(out, fmt.Sprintf("0 passed, %d failed", len(files))) || !strings.Contains(out, "lack not-what-was-seen") {
		t.Fatalf("kapkan test %s after editing the expected labels: exit %d, want 1 with every test failing:\n%s", dir, code, out)
	}
	return len(files)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestReplayExportIncidents: replay --export-incidents writes, for each
// attack of a capture, a folder that kapkan test passes, and that fails
// once its expected label is edited.
func TestReplayExportIncidents(t *testing.T) {
	root := testutil.RepoRoot(t)
	for _, tc := range []struct {
		capture string
		folders []string
		labels  string
	}{
		{capture: "netflow9-dns-amplification", folders: []string{"attack-1-203.0.113.20"}, labels: "labels: [amplification, dns-amplification]"},
		{capture: "sflow-udp-flood", folders: []string{"attack-1-203.0.113.10"}, labels: "labels: [udp-flood]"},
	} {
		t.Run(tc.capture, func(t *testing.T) {
			dir := t.TempDir()
			cdir := filepath.Join(root, "testdata", "captures", tc.capture)
			var out, errb bytes.Buffer
			code := cmdReplay(context.Background(), []string{"--config", filepath.Join(cdir, "kapkan.yaml"),
				"--export-incidents", dir, filepath.Join(cdir, "capture.pcap")}, &out, &errb)
			if code != 0 {
				t.Fatalf("replay: exit %d: %s", code, errb.String())
			}
			for _, f := range tc.folders {
				test, err := os.ReadFile(filepath.Join(dir, f, incident.TestFile))
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(test), tc.labels) {
					t.Errorf("%s/%s does not expect %s:\n%s", f, incident.TestFile, tc.labels, test)
				}
				// The capture holds only the target's telemetry, and less
				// than the whole capture when there is background traffic.
				st, err := ingest.ReadCapture(filepath.Join(dir, f, incident.CaptureFile), func(ingest.Datagram) error { return nil })
				if err != nil || st.UDP == 0 {
					t.Errorf("%s capture: %+v, %v", f, st, err)
				}
			}
			if n := checkFixture(t, dir); n != len(tc.folders) {
				t.Errorf("%d incident folders, want %d", n, len(tc.folders))
			}
		})
	}
}

// TestIncidentExportLive: an attack sent to a running daemon is exported
// through the API with kapkan incident export, and the folder is a rule
// test that passes, then fails once its expected label is edited.
func TestIncidentExportLive(t *testing.T) {
	d, logs := daemontest.Start(t, daemontest.Config(t, ""), "")
	rd := d.Events().NewReader("test", 1)
	victim := netip.MustParseAddr("203.0.113.7")
	daemontest.SendAttack(t, d.FlowAddrs()[0], demo.DNSAmp, victim, 3*time.Second, 11)
	var id uint64
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for id == 0 {
		e, err := rd.Next(ctx)
		if err != nil {
			t.Fatalf("no classified attack on %s: %v; log:\n%s", victim, err, logs.All())
		}
		if e.Attack != nil && (e.Kind == events.AttackStarted || e.Kind == events.AttackUpdated) &&
			e.Attack.Target.Addr() == victim && len(e.Attack.Labels) > 0 {
			id = e.Attack.ID
		}
	}
	dir := t.TempDir()
	folder := filepath.Join(dir, "incident")
	api := "http://" + d.APIAddr().String()
	var out, errb bytes.Buffer
	if code := cmdIncident(context.Background(), []string{"export", "--api", api, "--token", daemontest.Token,
		fmt.Sprint(id), folder}, &out, &errb); code != 0 {
		t.Fatalf("incident export: exit %d: %s", code, errb.String())
	}
	test, err := os.ReadFile(filepath.Join(folder, incident.TestFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"hostgroup: customers", "prefixes: [203.0.113.0/24]", "pps: 20000", "window: 2s",
		"target: 203.0.113.7", "dns-amplification", `src_ports: ["53"]`} {
		if !strings.Contains(string(test), want) {
			t.Errorf("%s lacks %q:\n%s", incident.TestFile, want, test)
		}
	}
	checkFixture(t, dir)

	// An attack the recorder holds nothing of is a 404, told as such.
	errb.Reset()
	if code := cmdIncident(context.Background(), []string{"export", "--api", api, fmt.Sprint(id + 1000), filepath.Join(dir, "none")},
		&out, &errb); code != 1 || !strings.Contains(errb.String(), "404") {
		t.Errorf("export of an unknown attack: exit %d: %s", code, errb.String())
	}
}
