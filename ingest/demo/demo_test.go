package demo

import (
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/ingest"
	fg "github.com/kapkan-io/kapkan/ingest/flowgen"
	"github.com/kapkan-io/kapkan/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the test captures in testdata/captures")

// decodeAll decodes datagrams and returns the records.
func decodeAll(t *testing.T, dgs []Datagram, from netip.Addr) []flow.Record {
	t.Helper()
	var recs []flow.Record
	d := ingest.New(ingest.Options{}, ingest.Deps{})
	b := ingest.NewBatcher(nil, flow.SinkFunc(func(b *flow.Batch) {
		recs = append(recs, b.Valid()...)
		flow.DefaultPool.Put(b)
	}))
	for _, dg := range dgs {
		if _, err := d.Decode(dg.Payload, from, CaptureStart.Add(dg.At), b); err != nil {
			t.Fatalf("datagram at %s: %v", dg.At, err)
		}
	}
	b.Flush()
	return recs
}

// TestScenarioRates checks that what the generator sends decodes to the
// scripted rates once sampling is corrected.
func TestScenarioRates(t *testing.T) {
	for _, format := range flow.Formats {
		t.Run(format.String(), func(t *testing.T) {
			target := netip.MustParseAddr("203.0.113.7")
			s := Scenario{Format: format, SamplingRate: 100,
				Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, Hosts: 10, BackgroundPPS: 10_000,
				Attacks:  []Attack{{Kind: SYNFlood, Target: target, PPS: 50_000, Start: 2 * time.Second, Duration: 4 * time.Second}},
				Duration: 8 * time.Second, Agent: netip.MustParseAddr("192.0.2.9"), Seed: 7}
			dgs, err := s.Generate()
			if err != nil {
				t.Fatal(err)
			}
			var attackPkts, bgPkts uint64
			for _, r := range decodeAll(t, dgs, s.Agent) {
				if r.SamplingRate != 100 {
					t.Fatalf("record with rate %d (%s)", r.SamplingRate, r.Sampling)
				}
				if r.DstAddr() == target && r.Proto == 6 && r.TCPFlags == fg.TCPSyn {
					attackPkts += r.Packets * uint64(r.SamplingRate)
				} else {
					bgPkts += r.Packets * uint64(r.SamplingRate)
				}
			}
			if want := uint64(50_000 * 4); attackPkts < want*99/100 || attackPkts > want*101/100 {
				t.Errorf("attack packets %d, want %d ± 1%%", attackPkts, want)
			}
			if want := uint64(10_000 * 8); bgPkts < want*98/100 || bgPkts > want*102/100 {
				t.Errorf("background packets %d, want %d ± 2%%", bgPkts, want)
			}
		})
	}
}

func TestScenarioIsDeterministic(t *testing.T) {
	s := CaptureCases[0].Scenario
	s.Duration = 5 * time.Second
	a, err := s.Generate()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.Generate()
	if len(a) != len(b) || len(a) == 0 {
		t.Fatalf("%d and %d datagrams", len(a), len(b))
	}
	for i := range a {
		if !bytes.Equal(a[i].Payload, b[i].Payload) || a[i].At != b[i].At {
			t.Fatalf("datagram %d differs between two runs", i)
		}
	}
}

func TestEveryKindDecodes(t *testing.T) {
	for _, k := range Kinds {
		s := Scenario{Format: flow.FormatSFlow5, SamplingRate: 10,
			Attacks:  []Attack{{Kind: k, Target: netip.MustParseAddr("2001:db8:1::1"), PPS: 1000, Duration: time.Second}},
			Duration: time.Second, Agent: netip.MustParseAddr("192.0.2.9"), Seed: 1}
		dgs, err := s.Generate()
		if err != nil {
			t.Fatal(err)
		}
		recs := decodeAll(t, dgs, s.Agent)
		if len(recs) != 100 {
			t.Errorf("%s: %d records, want 100", k, len(recs))
		}
	}
	for _, bad := range []Scenario{
		{Format: flow.FormatUnknown, SamplingRate: 1},
		{Format: flow.FormatNetFlow5, SamplingRate: 20000},
		{Format: flow.FormatNetFlow5, SamplingRate: 1, Attacks: []Attack{{Kind: UDPFlood, Target: netip.MustParseAddr("2001:db8::1"), PPS: 1, Duration: time.Second}}},
		{Format: flow.FormatSFlow5, SamplingRate: 0},
		{Format: flow.FormatSFlow5, SamplingRate: 1, Attacks: []Attack{{Kind: "bogus", Target: netip.MustParseAddr("192.0.2.1"), PPS: 1, Duration: time.Second}}},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("scenario %+v accepted", bad)
		}
	}
}

// TestCaptures keeps testdata/captures in step with CaptureCases: with
// -update it writes them, otherwise it checks the committed bytes are what
// the generator makes.
func TestCaptures(t *testing.T) {
	root := filepath.Join(testutil.RepoRoot(t), "testdata", "captures")
	for _, c := range CaptureCases {
		t.Run(c.Name, func(t *testing.T) {
			dgs, err := c.Scenario.Generate()
			if err != nil {
				t.Fatal(err)
			}
			var pcap bytes.Buffer
			w, err := fg.NewPCAPWriter(&pcap)
			if err != nil {
				t.Fatal(err)
			}
			port := uint16(6343)
			if c.Scenario.Format != flow.FormatSFlow5 {
				port = 2055
			}
			for _, dg := range dgs {
				if err := w.WritePacket(fg.Packet{Time: CaptureStart.Add(dg.At),
					Src: netip.AddrPortFrom(c.Scenario.Agent, 50000), Dst: netip.MustParseAddrPort(fmt.Sprintf("192.0.2.254:%d", port)),
					Payload: dg.Payload}); err != nil {
					t.Fatal(err)
				}
			}
			truth := c.truth()
			dir := filepath.Join(root, c.Name)
			if *update {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "capture.pcap"), pcap.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "truth.yaml"), []byte(truth), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			got, err := os.ReadFile(filepath.Join(dir, "capture.pcap"))
			if err != nil {
				t.Fatalf("%v (regenerate with -update)", err)
			}
			if !bytes.Equal(got, pcap.Bytes()) {
				t.Errorf("%s/capture.pcap is not what the generator makes (regenerate with -update and review)", c.Name)
			}
			gotTruth, _ := os.ReadFile(filepath.Join(dir, "truth.yaml"))
			if string(gotTruth) != truth {
				t.Errorf("%s/truth.yaml differs from the scenario:\n%s", c.Name, truth)
			}
		})
	}
}

// truth renders the ground truth of a capture case.
func (c *CaptureCase) truth() string {
	var b strings.Builder
	s := &c.Scenario
	fmt.Fprintf(&b, "# Ground truth of capture.pcap, written by `go test ./ingest/demo -run TestCaptures -update`.\n")
	fmt.Fprintf(&b, "format: %s\nsampling_rate: %d\nexporter: %s\nstart: %s\nduration: %s\n",
		s.Format, s.SamplingRate, s.Agent, CaptureStart.Format(time.RFC3339), s.Duration)
	fmt.Fprintf(&b, "background: {hosts: %d, pps: %d, prefixes: %v}\nattacks:\n", s.Hosts, s.BackgroundPPS, s.Prefixes)
	for _, a := range s.Attacks {
		fmt.Fprintf(&b, "  - {kind: %s, target: %s, pps: %d, start: %s, end: %s}\n", a.Kind, a.Target, a.PPS,
			CaptureStart.Add(a.Start).Format(time.RFC3339), CaptureStart.Add(a.Start+a.Duration).Format(time.RFC3339))
	}
	return b.String()
}
