package incident

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/ingest"
)

func TestTarRoundTrip(t *testing.T) {
	dgs := traffic(t)[:5]
	in := &Incident{Attack: events.Attack{ID: 3, Target: netipPrefix("203.0.113.9/32"), Labels: []string{"udp-flood"},
		Vector: flowspec.Match{Protocol: "udp"}}, Detected: time.Unix(1e9, 0), Datagrams: dgs}
	var b bytes.Buffer
	if err := in.WriteTar(&b); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ExtractTar(&b, dir, 1<<20); err != nil {
		t.Fatal(err)
	}
	test, err := os.ReadFile(filepath.Join(dir, TestFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"capture: capture.pcap", "prefixes: [203.0.113.9/32]", "labels: [udp-flood]", "vector: {protocol: udp}"} {
		if !strings.Contains(string(test), want) {
			t.Errorf("test file lacks %q:\n%s", want, test)
		}
	}
	n := 0
	if _, err := ingest.ReadCapture(filepath.Join(dir, CaptureFile), func(d ingest.Datagram) error {
		if !bytes.Equal(d.Payload, dgs[n].Payload) || !d.Time.Equal(dgs[n].Time.Truncate(time.Microsecond)) {
			t.Errorf("datagram %d differs", n)
		}
		n++
		return nil
	}); err != nil || n != len(dgs) {
		t.Errorf("capture: %d datagrams, %v", n, err)
	}
}

// TestExtractTarRefuses: an answer naming another file, or a path out of
// the directory, writes nothing.
func TestExtractTarRefuses(t *testing.T) {
	for _, name := range []string{"../escape", "other.txt", "/etc/x"} {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
		_, _ = tw.Write([]byte("x"))
		_ = tw.Close()
		dir := t.TempDir()
		if err := ExtractTar(&b, filepath.Join(dir, "in"), 1<<20); err == nil || !strings.Contains(err.Error(), "unexpected entry") {
			t.Errorf("%s: %v, want an unexpected entry", name, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "escape")); err == nil {
			t.Errorf("%s: a file was written out of the directory", name)
		}
	}
}
