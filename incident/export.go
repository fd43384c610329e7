package incident

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/ingest"
	"github.com/kapkan-io/kapkan/ingest/flowgen"
)

// The files of an exported incident.
const (
	CaptureFile = "capture.pcap"
	TestFile    = "incident_test.yaml"
)

// testFile is the rule-test file written for an incident: the format of
// ruletest (kapkan test), with only the fields an incident sets.
type testFile struct {
	KapkanRuleTests int        `yaml:"kapkan_rule_tests"`
	Tests           []testCase `yaml:"tests"`
}

type testCase struct {
	Name       string      `yaml:"name"`
	Capture    string      `yaml:"capture"`
	Hostgroup  string      `yaml:"hostgroup,omitempty"`
	Prefixes   []string    `yaml:"prefixes,flow"`
	Thresholds *thresholds `yaml:"thresholds,omitempty"`
	Window     string      `yaml:"window,omitempty"`
	Expect     []expect    `yaml:"expect"`
}

type thresholds struct {
	PPS  uint64 `yaml:"pps"`
	Mbps uint64 `yaml:"mbps"`
}

type expect struct {
	Target string          `yaml:"target"`
	Labels []string        `yaml:"labels,flow"`
	Vector *flowspec.Match `yaml:"vector,omitempty,flow"`
	Action string          `yaml:"action,omitempty"`
}

// Name is the folder name replay gives the incident:
// attack-<id>-<target address>.
func (in *Incident) Name() string {
	a := strings.ReplaceAll(in.Attack.Target.Addr().String(), ":", "_")
	return fmt.Sprintf("attack-%d-%s", in.Attack.ID, a)
}

// Files returns the incident's files by name: the capture and the rule
// test expecting the verdict as observed.
func (in *Incident) Files() (map[string][]byte, error) {
	var pcap bytes.Buffer
	pw, err := flowgen.NewPCAPWriter(&pcap)
	if err != nil {
		return nil, err
	}
	for _, d := range in.Datagrams {
		if err := pw.WritePacket(packet(d)); err != nil {
			return nil, fmt.Errorf("write the capture of attack %d: %w", in.Attack.ID, err)
		}
	}
	test, err := in.testYAML()
	if err != nil {
		return nil, err
	}
	return map[string][]byte{CaptureFile: pcap.Bytes(), TestFile: test}, nil
}

// packet is a datagram as a capture holds it: from its exporter to a
// collector on loopback, on the port of its format.
func packet(d ingest.Datagram) flowgen.Packet {
	src := d.Src.Addr().Unmap()
	dst := netip.MustParseAddr("127.0.0.1")
	if src.Is6() {
		dst = netip.IPv6Loopback()
	}
	port := uint16(2055)
	if ingest.DetectFormat(d.Payload) == flow.FormatSFlow5 {
		port = 6343
	}
	sport := d.Src.Port()
	if sport == 0 {
		sport = 40000
	}
	return flowgen.Packet{Time: d.Time, Src: netip.AddrPortFrom(src, sport), Dst: netip.AddrPortFrom(dst, port), Payload: d.Payload}
}

func (in *Incident) testYAML() ([]byte, error) {
	a := &in.Attack
	tc := testCase{
		Name:      fmt.Sprintf("attack %d on %s detected %s", a.ID, a.Target, in.Detected.UTC().Format(time.RFC3339)),
		Capture:   CaptureFile,
		Hostgroup: in.Setup.Hostgroup,
	}
	for _, p := range in.Setup.Prefixes {
		tc.Prefixes = append(tc.Prefixes, p.String())
	}
	if len(tc.Prefixes) == 0 { // the target alone
		tc.Prefixes = []string{a.Target.String()}
	}
	if in.Setup.PPS > 0 || in.Setup.Mbps > 0 {
		tc.Thresholds = &thresholds{PPS: in.Setup.PPS, Mbps: in.Setup.Mbps}
	}
	e := expect{Target: a.Target.Addr().String(), Labels: a.Labels, Action: in.Action}
	if e.Labels == nil {
		e.Labels = []string{}
	}
	if !a.Vector.IsZero() {
		v := a.Vector
		e.Vector = &v
	}
	if in.Setup.Window > 0 {
		tc.Window = in.Setup.Window.String()
	}
	tc.Expect = []expect{e}
	body, err := yaml.Marshal(testFile{KapkanRuleTests: 1, Tests: []testCase{tc}})
	if err != nil {
		return nil, fmt.Errorf("write the rule test of attack %d: %w", a.ID, err)
	}
	var h strings.Builder
	fmt.Fprintf(&h, "# Incident of attack %d on %s (%s, hostgroup %s), detected %s\n", a.ID, a.Target, a.Direction, a.Hostgroup,
		in.Detected.UTC().Format(time.RFC3339Nano))
	fmt.Fprintf(&h, "# on %s %g over %g.\n", a.Trigger, a.Rate, a.Threshold)
	if len(a.Rules) > 0 {
		fmt.Fprintf(&h, "# Rules that matched: %s (vector from %s).\n", strings.Join(a.Rules, ", "), orNone(a.Decider))
	} else {
		h.WriteString("# No rule matched.\n")
	}
	fmt.Fprintf(&h, "# %s holds the flow telemetry of the target (%d datagrams, templates first).\n", CaptureFile, len(in.Datagrams))
	if in.Lost > 0 {
		fmt.Fprintf(&h, "# %d datagrams were overwritten in the flight recorder before they were read: some may be missing.\n", in.Lost)
	}
	if in.Full {
		h.WriteString("# The recording stopped at its size bound.\n")
	}
	if in.Recording {
		h.WriteString("# Exported while still recording: the capture ends at the export.\n")
	}
	h.WriteString("# expect is the verdict as observed: edit it to what the rules should say, then\n# run `kapkan test DIR` (DIR holding this folder and your rules).\n")
	return append([]byte(h.String()), body...), nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// WriteDir writes the incident's files into dir (created if needed).
func (in *Incident) WriteDir(dir string) error {
	files, err := in.Files()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("export incident of attack %d: %w", in.Attack.ID, err)
	}
	for _, name := range []string{CaptureFile, TestFile} {
		if err := os.WriteFile(filepath.Join(dir, name), files[name], 0o644); err != nil {
			return fmt.Errorf("export incident of attack %d: %w", in.Attack.ID, err)
		}
	}
	return nil
}

// WriteTar writes the incident's files as a tar stream (the API's answer).
func (in *Incident) WriteTar(w io.Writer) error {
	files, err := in.Files()
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	for _, name := range []string{CaptureFile, TestFile} {
		body := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: in.Detected,
			Typeflag: tar.TypeReg}); err != nil {
			return fmt.Errorf("write incident tar: %w", err)
		}
		if _, err := tw.Write(body); err != nil {
			return fmt.Errorf("write incident tar: %w", err)
		}
	}
	return tw.Close()
}

// ExtractTar writes the files of an incident tar (WriteTar's) into dir.
// Only plain files of the names an incident has are written; anything else
// is an error, so that an answer cannot write outside dir.
func ExtractTar(r io.Reader, dir string, maxBytes int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tr := tar.NewReader(r)
	n := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read incident tar: %w", err)
		}
		if h.Typeflag != tar.TypeReg || (h.Name != CaptureFile && h.Name != TestFile) {
			return fmt.Errorf("read incident tar: unexpected entry %q", h.Name)
		}
		if h.Size > maxBytes {
			return fmt.Errorf("read incident tar: %s is %d bytes (at most %d)", h.Name, h.Size, maxBytes)
		}
		f, err := os.OpenFile(filepath.Join(dir, h.Name), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, io.LimitReader(tr, maxBytes))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", h.Name, err)
		}
		n++
	}
	if n != 2 {
		return fmt.Errorf("read incident tar: %d files, want %s and %s", n, CaptureFile, TestFile)
	}
	return nil
}
