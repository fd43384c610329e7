package ingest

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/internal/testutil"
)

// realExporterCases are the captures in testdata/real: attacks crafted as
// packets, exported by softflowd (a real NetFlow v9 exporter), each with its
// ground truth. A missing case fails the test; so does a case directory not
// listed here, so that the list and the directory agree.
var realExporterCases = []string{
	"dns-amplification",
	"ntp-amplification",
	"cldap-amplification",
	"memcached-amplification",
	"ssdp-amplification",
	"chargen-amplification",
	"syn-flood",
	"tcp-ack-flood",
	"tcp-rst-flood",
	"udp-flood",
	"icmp-flood",
	"fragment-flood",
	"ipv6-udp-flood",
	"ipv6-fragment-flood",
}

// realTruth is the part of truth.yaml the test checks against.
type realTruth struct {
	Case   string `yaml:"case"`
	Kind   string `yaml:"kind"`
	Victim string `yaml:"victim"`
	Attack struct {
		Start time.Time `yaml:"start"`
		End   time.Time `yaml:"end"`
	} `yaml:"attack"`
	Exporter struct {
		Software             string `yaml:"software"`
		Format               string `yaml:"format"`
		SamplingRate         uint32 `yaml:"sampling_rate"`
		SamplingRateInExport bool   `yaml:"sampling_rate_in_export"`
		Datagrams            int    `yaml:"datagrams"`
	} `yaml:"exporter"`
	Expect struct {
		Protocol         *uint8  `yaml:"protocol"` // 0 is a value: softflowd's IPv6 fragments
		SrcPort          string  `yaml:"src_port"`
		SrcPortShareMin  float64 `yaml:"src_port_share_min"`
		DstPort          string  `yaml:"dst_port"`
		DstPortShareMin  float64 `yaml:"dst_port_share_min"`
		PortZeroShareMin float64 `yaml:"port_zero_share_min"`
		TCPFlags         uint8   `yaml:"tcp_flags"`
		Fragment         bool    `yaml:"fragment"`
		BytesPerPacket   struct {
			Min uint64 `yaml:"min"`
			Max uint64 `yaml:"max"`
		} `yaml:"bytes_per_packet"`
	} `yaml:"expect"`
}

func realDir(t *testing.T) string {
	t.Helper()
	return filepath.Join(testutil.RepoRoot(t), "testdata", "real")
}

func readRealTruth(t *testing.T, dir string) realTruth {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "truth.yaml"))
	if err != nil {
		t.Fatalf("ground truth missing (regenerate with go run testdata/real/gen/main.go): %v", err)
	}
	var tr realTruth
	if err := yaml.Unmarshal(b, &tr); err != nil {
		t.Fatalf("truth.yaml: %v", err)
	}
	if tr.Victim == "" || tr.Expect.Protocol == nil || tr.Expect.SrcPort == "" || tr.Expect.DstPort == "" {
		t.Fatalf("truth.yaml lacks victim or expectations: %+v", tr)
	}
	return tr
}

// decodeRealCapture decodes one export.pcap with a fresh decoder.
func decodeRealCapture(t *testing.T, path string) ([]flow.Record, CaptureStats) {
	t.Helper()
	var out []flow.Record
	d := New(Options{}, Deps{Logger: newDiscardLogger()})
	b := NewBatcher(nil, flow.SinkFunc(func(b *flow.Batch) {
		out = append(out, b.Valid()...)
		flow.DefaultPool.Put(b)
	}))
	stats, err := ReadCapture(path, func(dg Datagram) error {
		if _, err := d.Decode(dg.Payload, dg.Src.Addr(), dg.Time, b); err != nil {
			return fmt.Errorf("datagram at %s from %s: %w", dg.Time.Format(time.RFC3339Nano), dg.Src, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("export capture missing or unreadable (regenerate with go run testdata/real/gen/main.go): %v", err)
	}
	b.Flush()
	return out, stats
}

// weighted counts packets × sampling rate per key.
type weighted[K comparable] struct {
	n     map[K]uint64
	total uint64
}

func (w *weighted[K]) add(k K, v uint64) {
	if w.n == nil {
		w.n = map[K]uint64{}
	}
	w.n[k] += v
	w.total += v
}

// top returns the heaviest key and its share of the total.
func (w *weighted[K]) top() (K, float64) {
	var best K
	var max uint64
	for k, v := range w.n {
		if v > max {
			best, max = k, v
		}
	}
	if w.total == 0 {
		return best, 0
	}
	return best, float64(max) / float64(w.total)
}

func (w *weighted[K]) share(k K) float64 {
	if w.total == 0 {
		return 0
	}
	return float64(w.n[k]) / float64(w.total)
}

func weight(r *flow.Record) uint64 { return r.Packets * uint64(max(r.SamplingRate, 1)) }

// checkPort checks a port distribution against "random" or a number that
// must hold at least minShare of it.
func checkPort(t *testing.T, what string, w *weighted[uint16], want string, minShare float64, zeroExpected bool) {
	t.Helper()
	got, share := w.top()
	if want == "random" {
		if zeroExpected && got == 0 {
			// Non-first fragments are exported with ports 0/0 (checked
			// below): the random ports are the rest.
			var rest weighted[uint16]
			for k, v := range w.n {
				if k != 0 {
					rest.add(k, v)
				}
			}
			rest.total = w.total
			got, share = rest.top()
		}
		// Random ports: no port stands out (a few hundred sampled packets
		// spread over ~64k ports).
		if share > 0.05 {
			t.Errorf("%s: want random, but %d carries %.0f%% of the packets", what, got, 100*share)
		}
		return
	}
	n, err := strconv.ParseUint(want, 10, 16)
	if err != nil {
		t.Fatalf("%s: bad expectation %q", what, want)
	}
	if s := w.share(uint16(n)); s < minShare {
		t.Errorf("%s: %d carries %.1f%% of the packets, want at least %.0f%% (top: %d with %.1f%%)",
			what, n, 100*s, 100*minShare, got, 100*share)
	}
}

// TestRealExporterCaptures replays every softflowd capture in testdata/real
// and checks it against its ground truth: records decode, the victim is the
// heaviest destination, and its records show the attack's protocol, ports,
// TCP flags, fragment flag, packet size and time window.
func TestRealExporterCaptures(t *testing.T) {
	root := realDir(t)
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatalf("testdata/real missing: %v", err)
	}
	for _, e := range entries {
		if e.IsDir() && e.Name() != "gen" && !slices.Contains(realExporterCases, e.Name()) {
			t.Errorf("testdata/real/%s is not in realExporterCases", e.Name())
		}
	}
	for _, name := range realExporterCases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(root, name)
			tr := readRealTruth(t, dir)
			if tr.Case != name {
				t.Fatalf("truth.yaml is for %q", tr.Case)
			}
			victim, err := netip.ParseAddr(tr.Victim)
			if err != nil {
				t.Fatal(err)
			}
			recs, stats := decodeRealCapture(t, filepath.Join(dir, "export.pcap"))
			if len(recs) == 0 {
				t.Fatalf("no records decoded from %d datagrams", stats.UDP)
			}
			if tr.Exporter.Datagrams != 0 && stats.UDP != tr.Exporter.Datagrams {
				t.Errorf("%d datagrams in export.pcap, truth.yaml says %d", stats.UDP, tr.Exporter.Datagrams)
			}

			// Every record: NetFlow v9 with the exporter's sampling rate,
			// from its options data when it announces one.
			wantSampling, wantRate := flow.SamplingDefault, uint32(1)
			if tr.Exporter.SamplingRateInExport {
				wantSampling, wantRate = flow.SamplingOptions, tr.Exporter.SamplingRate
			}
			for i := range recs {
				r := &recs[i]
				if r.Format != flow.FormatNetFlow9 {
					t.Fatalf("record %d: format %s", i, r.Format)
				}
				if r.Sampling != wantSampling || r.SamplingRate != wantRate {
					t.Fatalf("record %d: sampling %s:%d, want %s:%d", i, r.Sampling, r.SamplingRate, wantSampling, wantRate)
				}
			}

			// The victim is the destination with the most packets × rate.
			var dsts weighted[netip.Addr]
			for i := range recs {
				dsts.add(recs[i].DstAddr(), weight(&recs[i]))
			}
			if top, share := dsts.top(); top != victim {
				t.Fatalf("heaviest destination is %s (%.0f%%), want the victim %s (%.0f%%)",
					top, 100*share, victim, 100*dsts.share(victim))
			}

			// The victim's records.
			var protos weighted[uint8]
			var src, dst weighted[uint16]
			var flags weighted[uint8]
			var frag weighted[bool]
			var zero weighted[bool]
			var n int
			for i := range recs {
				r := &recs[i]
				if r.DstAddr() != victim {
					continue
				}
				w := weight(r)
				protos.add(r.Proto, w)
				if r.Proto != *tr.Expect.Protocol {
					continue
				}
				n++
				src.add(r.SrcPort, w)
				dst.add(r.DstPort, w)
				flags.add(r.TCPFlags, w)
				frag.add(r.IsFragment(), w)
				zero.add(r.SrcPort == 0 && r.DstPort == 0, w)
				if bpp := r.Bytes / max(r.Packets, 1); bpp < tr.Expect.BytesPerPacket.Min || bpp > tr.Expect.BytesPerPacket.Max {
					t.Errorf("record %s:%d > %s:%d: %d bytes per packet, want %d..%d", r.SrcAddr(), r.SrcPort, r.DstAddr(), r.DstPort,
						bpp, tr.Expect.BytesPerPacket.Min, tr.Expect.BytesPerPacket.Max)
				}
				// Flow times are capture times (softflowd -a): within the
				// attack's window, give or take the second the NetFlow v9
				// header's export time is truncated to.
				start, end := time.Unix(0, r.Start), time.Unix(0, r.End)
				if r.Start == 0 || start.Before(tr.Attack.Start.Add(-2*time.Second)) || end.After(tr.Attack.End.Add(2*time.Second)) {
					t.Errorf("record %s > %s: %s..%s outside the attack's window %s..%s", r.SrcAddr(), r.DstAddr(),
						start.UTC().Format(time.RFC3339Nano), end.UTC().Format(time.RFC3339Nano),
						tr.Attack.Start.Format(time.RFC3339), tr.Attack.End.Format(time.RFC3339))
				}
			}
			if p, share := protos.top(); p != *tr.Expect.Protocol || share < 0.9 {
				t.Fatalf("victim's dominant protocol %d (%.0f%%), want %d", p, 100*share, *tr.Expect.Protocol)
			}
			zeroExpected := tr.Expect.PortZeroShareMin > 0
			checkPort(t, "source port", &src, tr.Expect.SrcPort, tr.Expect.SrcPortShareMin, zeroExpected)
			checkPort(t, "destination port", &dst, tr.Expect.DstPort, tr.Expect.DstPortShareMin, zeroExpected)
			if s := zero.share(true); s < tr.Expect.PortZeroShareMin {
				t.Errorf("records with ports 0/0 carry %.1f%%, want at least %.0f%%", 100*s, 100*tr.Expect.PortZeroShareMin)
			}
			if f, share := flags.top(); f != tr.Expect.TCPFlags || share < 0.95 {
				t.Errorf("victim's dominant TCP flags %#02x (%.0f%%), want %#02x", f, 100*share, tr.Expect.TCPFlags)
			}
			if f, share := frag.top(); f != tr.Expect.Fragment || share < 0.95 {
				t.Errorf("victim's fragment flag %t on %.0f%% of packets, want %t", f, 100*share, tr.Expect.Fragment)
			}
			t.Logf("%d records, %d for the victim %s (%d packets × rate); top source port %v, destination port %v",
				len(recs), n, victim, protos.total, topString(&src), topString(&dst))
		})
	}
}

func topString(w *weighted[uint16]) string {
	k, s := w.top()
	return fmt.Sprintf("%d (%.0f%%)", k, 100*s)
}

// TestRealExporterSoftflowdShape pins what softflowd's export looks like to
// Kapkan, so a change in the decoder that loses one of these shows here:
// ICMP type/code from softflowd's ICMP template, IPv6 addresses, and the
// reverse-direction records softflowd emits for bidirectional flows.
func TestRealExporterSoftflowdShape(t *testing.T) {
	root := realDir(t)
	t.Run("icmp type and code", func(t *testing.T) {
		recs, _ := decodeRealCapture(t, filepath.Join(root, "icmp-flood", "export.pcap"))
		n := 0
		for _, r := range recs {
			if r.Proto == 1 {
				n++
				if r.DstPort != 8<<8 || r.SrcPort != 0 {
					t.Fatalf("ICMP record %s > %s: ports %d/%#04x, want 0/0x0800 (echo request)", r.SrcAddr(), r.DstAddr(), r.SrcPort, r.DstPort)
				}
			}
		}
		if n == 0 {
			t.Fatal("no ICMP records")
		}
	})
	t.Run("ipv6 records", func(t *testing.T) {
		recs, _ := decodeRealCapture(t, filepath.Join(root, "ipv6-udp-flood", "export.pcap"))
		v6 := 0
		for _, r := range recs {
			if r.Flags&flow.FlagIPv6 != 0 {
				v6++
				if !r.DstAddr().Is6() || r.DstAddr().Is4In6() {
					t.Fatalf("IPv6 record with destination %s", r.DstAddr())
				}
			}
		}
		if v6 == 0 {
			t.Fatal("no IPv6 records")
		}
	})
	t.Run("every data record decoded", func(t *testing.T) {
		// softflowd's NetFlow v9 header Count is the number of flow
		// records only, not of template and options records too (RFC 3954
		// 5.1); the first datagram of an export holds all templates, the
		// options template and data, and few or one flow record. Kapkan
		// learns templates and options from every flowset, but, like
		// Wireshark, counts flow records only in the first Count flowsets.
		for _, name := range realExporterCases {
			path := filepath.Join(root, name, "export.pcap")
			recs, _ := decodeRealCapture(t, path)
			w := v9Walker{lens: map[uint16]int{}, options: map[uint16]bool{}}
			var want, i int
			var first string
			_, err := ReadCapture(path, func(dg Datagram) error {
				m, err := w.walk(dg.Payload)
				if err != nil {
					return fmt.Errorf("datagram %d: %w", i, err)
				}
				want += m.data - m.dataPastCount
				if first == "" && int(m.count) < m.flowSets {
					first = fmt.Sprintf("datagram %d: header Count %d, %d flowsets (%d templates, %d options templates, %d options records, %d flow records)",
						i, m.count, m.flowSets, m.templates, m.optionTemplates, m.options, m.data)
				}
				i++
				return nil
			})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if len(recs) != want {
				t.Errorf("%s: decoded %d records, the datagrams hold %d; first datagram whose Count is below its flowset count: %s",
					name, len(recs), want, first)
			}
		}
	})
	t.Run("record spans", func(t *testing.T) {
		// Every record's span is sane: end not before start, under
		// softflowd's maxlife (5 s) plus a second of rounding.
		for _, name := range realExporterCases {
			recs, _ := decodeRealCapture(t, filepath.Join(root, name, "export.pcap"))
			longest := slices.MaxFunc(recs, func(a, b flow.Record) int { return cmp.Compare(a.End-a.Start, b.End-b.Start) })
			if longest.End < longest.Start || time.Duration(longest.End-longest.Start) > 6*time.Second {
				t.Errorf("%s: record %s > %s spans %s", name, longest.SrcAddr(), longest.DstAddr(), time.Duration(longest.End-longest.Start))
			}
		}
	})
}

// v9Walker walks NetFlow v9 datagrams flowset by flowset, to the end of the
// datagram, learning template lengths on the way: a reference count of the
// records a datagram holds, independent of the header's Count.
type v9Walker struct {
	lens    map[uint16]int // template id -> record length
	options map[uint16]bool
}

type v9Message struct {
	count                                uint16
	flowSets, templates, optionTemplates int
	options, data                        int
	// dataPastCount counts flow records in flowsets past the header's Count.
	dataPastCount int
}

func (w *v9Walker) walk(b []byte) (m v9Message, err error) {
	if len(b) < 20 || binary.BigEndian.Uint16(b) != 9 {
		return m, errors.New("not NetFlow v9")
	}
	m.count = binary.BigEndian.Uint16(b[2:])
	b = b[20:]
	for len(b) >= 4 {
		id, n := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
		if n < 4 || n > len(b) {
			return m, fmt.Errorf("flowset %d of length %d, %d bytes left", id, n, len(b))
		}
		body := b[4:n]
		b = b[n:]
		m.flowSets++
		switch {
		case id == 0: // templates
			for len(body) >= 4 {
				tid, fields := binary.BigEndian.Uint16(body), int(binary.BigEndian.Uint16(body[2:]))
				if len(body) < 4+4*fields {
					return m, fmt.Errorf("template %d truncated", tid)
				}
				l := 0
				for f := range fields {
					l += int(binary.BigEndian.Uint16(body[4+4*f+2:]))
				}
				w.lens[tid] = l
				m.templates++
				body = body[4+4*fields:]
			}
		case id == 1: // options templates
			for len(body) >= 6 {
				tid := binary.BigEndian.Uint16(body)
				sl, ol := int(binary.BigEndian.Uint16(body[2:])), int(binary.BigEndian.Uint16(body[4:]))
				if len(body) < 6+sl+ol {
					return m, fmt.Errorf("options template %d truncated", tid)
				}
				l := 0
				for f := 0; f < (sl+ol)/4; f++ {
					l += int(binary.BigEndian.Uint16(body[6+4*f+2:]))
				}
				w.lens[tid], w.options[tid] = l, true
				m.optionTemplates++
				body = body[6+sl+ol:]
			}
		case id >= 256:
			l, ok := w.lens[id]
			if !ok || l == 0 {
				return m, fmt.Errorf("data flowset %d before its template", id)
			}
			if w.options[id] {
				m.options += len(body) / l
			} else {
				m.data += len(body) / l
				if m.flowSets > int(m.count) {
					m.dataPastCount += len(body) / l
				}
			}
		}
	}
	return m, nil
}
