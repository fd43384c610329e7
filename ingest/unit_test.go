package ingest

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/netsampler/goflow2/v2/decoders/netflow"

	"github.com/kapkan-io/kapkan/flow"
)

func ipv4Header(proto uint8, src, dst string, flagsFrag uint16, payload []byte) []byte {
	h := make([]byte, 20, 20+len(payload))
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	binary.BigEndian.PutUint16(h[6:], flagsFrag)
	h[8] = 64
	h[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	return append(h, payload...)
}

func ipv6Header(next uint8, src, dst string, payload []byte) []byte {
	h := make([]byte, 40, 40+len(payload))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6] = next
	h[7] = 64
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, payload...)
}

func ports(src, dst uint16, tcpFlags uint8) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], src)
	binary.BigEndian.PutUint16(b[2:], dst)
	b[13] = tcpFlags
	return b
}

func ethernet(etype uint16, vlans int, payload []byte) []byte {
	b := make([]byte, 12)
	for range vlans {
		b = binary.BigEndian.AppendUint16(b, 0x8100)
		b = binary.BigEndian.AppendUint16(b, 100)
	}
	b = binary.BigEndian.AppendUint16(b, etype)
	return append(b, payload...)
}

func TestParseHeader(t *testing.T) {
	udp4 := ipv4Header(17, "198.51.100.7", "203.0.113.9", 0, ports(53, 40000, 0))
	syn6 := ipv6Header(6, "2001:db8::1", "2001:db8:1::9", ports(1234, 443, 0x02))
	frag4 := ipv4Header(17, "198.51.100.7", "203.0.113.9", 0x0010, ports(53, 40000, 0)) // offset 16, no ports
	firstFrag4 := ipv4Header(17, "198.51.100.7", "203.0.113.9", 0x2000, ports(123, 5555, 0))
	fragHdr := []byte{17, 0, 0x00, 0x08, 0, 0, 0, 1} // next UDP, offset 1 (non-first)
	frag6 := ipv6Header(44, "2001:db8::1", "2001:db8:1::9", append(fragHdr, ports(1, 2, 0)...))
	hbh := append([]byte{ipv6DestOpts, 0, 0, 0, 0, 0, 0, 0}, append([]byte{17, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, ports(53, 7, 0)...)...)
	ext6 := ipv6Header(ipv6HopByHop, "2001:db8::1", "2001:db8:1::9", hbh) // hop-by-hop (8), then destination options (16), then UDP
	ah := append([]byte{6, 4, 0, 0}, make([]byte, 20)...)                 // AH of (4+2)*4 = 24 bytes, then TCP
	ah6 := ipv6Header(ipv6AH, "2001:db8::1", "2001:db8:1::9", append(ah, ports(22, 2222, 0x10)...))
	icmp4 := ipv4Header(1, "198.51.100.7", "203.0.113.9", 0, []byte{8, 0, 0, 0})
	mpls := append([]byte{0, 0x01, 0x01, 64}, udp4...) // one label, bottom of stack
	tests := []struct {
		name     string
		proto    uint32
		data     []byte
		src, dst string
		sp, dp   uint16
		ipProto  uint8
		flags    uint8
		tcpFlags uint8
	}{
		{"ethernet ipv4 udp", headerEthernet, ethernet(0x0800, 0, udp4), "198.51.100.7", "203.0.113.9", 53, 40000, 17, flow.FlagHasIP, 0},
		{"ethernet qinq ipv4", headerEthernet, ethernet(0x0800, 2, udp4), "198.51.100.7", "203.0.113.9", 53, 40000, 17, flow.FlagHasIP, 0},
		{"raw ipv4 header", headerIPv4, udp4, "198.51.100.7", "203.0.113.9", 53, 40000, 17, flow.FlagHasIP, 0},
		{"raw ipv6 header tcp syn", headerIPv6, syn6, "2001:db8::1", "2001:db8:1::9", 1234, 443, 6, flow.FlagHasIP | flow.FlagIPv6, 0x02},
		{"ethernet ipv6", headerEthernet, ethernet(0x86dd, 0, syn6), "2001:db8::1", "2001:db8:1::9", 1234, 443, 6, flow.FlagHasIP | flow.FlagIPv6, 0x02},
		{"ipv4 non-first fragment", headerIPv4, frag4, "198.51.100.7", "203.0.113.9", 0, 0, 17, flow.FlagHasIP | flow.FlagFragment, 0},
		{"ipv4 first fragment keeps ports", headerIPv4, firstFrag4, "198.51.100.7", "203.0.113.9", 123, 5555, 17, flow.FlagHasIP | flow.FlagFragment, 0},
		{"ipv6 extension headers", headerIPv6, ext6, "2001:db8::1", "2001:db8:1::9", 53, 7, 17, flow.FlagHasIP | flow.FlagIPv6, 0},
		{"ipv6 authentication header", headerIPv6, ah6, "2001:db8::1", "2001:db8:1::9", 22, 2222, 6, flow.FlagHasIP | flow.FlagIPv6, 0x10},
		{"ipv6 non-first fragment", headerIPv6, frag6, "2001:db8::1", "2001:db8:1::9", 0, 0, 17, flow.FlagHasIP | flow.FlagIPv6 | flow.FlagFragment, 0},
		{"icmp echo", headerIPv4, icmp4, "198.51.100.7", "203.0.113.9", 0, 8 << 8, 1, flow.FlagHasIP, 0},
		{"mpls ipv4", headerEthernet, ethernet(0x8847, 0, mpls), "198.51.100.7", "203.0.113.9", 53, 40000, 17, flow.FlagHasIP, 0},
		{"arp is not ip", headerEthernet, ethernet(0x0806, 0, make([]byte, 28)), "", "", 0, 0, 0, 0, 0},
		{"truncated ipv4", headerIPv4, udp4[:19], "", "", 0, 0, 0, 0, 0},
		{"truncated transport", headerIPv4, udp4[:22], "198.51.100.7", "203.0.113.9", 0, 0, 17, flow.FlagHasIP, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r flow.Record
			parseHeader(&r, tc.proto, tc.data)
			gotSrc, gotDst := "", ""
			if a := r.SrcAddr(); a.IsValid() {
				gotSrc, gotDst = a.String(), r.DstAddr().String()
			}
			if gotSrc != tc.src || gotDst != tc.dst || r.SrcPort != tc.sp || r.DstPort != tc.dp ||
				r.Proto != tc.ipProto || r.Flags != tc.flags || r.TCPFlags != tc.tcpFlags {
				t.Errorf("got %s:%d → %s:%d proto %d flags %b tcp %#x; want %s:%d → %s:%d proto %d flags %b tcp %#x",
					gotSrc, r.SrcPort, gotDst, r.DstPort, r.Proto, r.Flags, r.TCPFlags,
					tc.src, tc.sp, tc.dst, tc.dp, tc.ipProto, tc.flags, tc.tcpFlags)
			}
		})
	}
}

func TestSequenceTracker(t *testing.T) {
	var tr seqTracker
	k := seqKey{format: flow.FormatNetFlow9, a: 1}
	steps := []struct {
		seq, advance uint32
		gap          uint32
		reset        bool
	}{
		{100, 1, 0, false},              // first sight
		{101, 1, 0, false},              // in order
		{105, 1, 3, false},              // 102..104 lost
		{103, 1, 0, false},              // late: not a gap, not a reset
		{106, 1, 0, false},              // expectation kept at 106
		{50000, 1, 49893, false},        // a large loss is still a gap
		{5, 1, 0, true},                 // exporter restarted
		{6, 1, 0, false},                // follows the new sequence
		{0x80000000, 1, 0, true},        // far jump
		{0xffffffff, 1, 0, true},        // far jump again
		{0, 10, 0, false},               // wraps around
		{10, 1, 0, false},               // advance of 10 records
		{11 + 1<<20, 1, 0, true},        // too far to be a gap
		{12 + 1<<20, 1, 0, false},       // follows
		{12 + 1<<20 - 2000, 1, 0, true}, // far backwards
		{13 + 1<<20 - 2000 + 7, 1, 7, false},
	}
	for i, s := range steps {
		gap, reset := tr.observe(k, s.seq, s.advance)
		if gap != s.gap || reset != s.reset {
			t.Errorf("step %d (seq %d): gap %d reset %v, want gap %d reset %v", i, s.seq, gap, reset, s.gap, s.reset)
		}
	}
}

func TestSamplingFieldsRate(t *testing.T) {
	tests := []struct {
		name string
		f    samplingFields
		want uint32
	}{
		{"none", samplingFields{}, 0},
		{"interval", samplingFields{interval: 1000}, 1000},
		{"random interval wins over interval", samplingFields{interval: 10, randomInterval: 512}, 512},
		{"psamp interval and space", samplingFields{pktInterval: 1, pktSpace: 999, hasPktSpace: true}, 1000},
		{"psamp 2 of 10", samplingFields{pktInterval: 2, pktSpace: 8, hasPktSpace: true}, 5},
		{"psamp space zero is unsampled", samplingFields{pktInterval: 1, pktSpace: 0, hasPktSpace: true}, 1},
		{"psamp interval without space is not a rate", samplingFields{pktInterval: 4}, 0},
		{"population over size", samplingFields{size: 1, population: 4096}, 4096},
		{"probability", samplingFields{probability: 0.001}, 1000},
		{"bad probability", samplingFields{probability: 2}, 0},
	}
	for _, tc := range tests {
		if got := tc.f.rate(); got != tc.want {
			t.Errorf("%s: rate %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestRateStoreLookup(t *testing.T) {
	var s rateStore
	if _, ok := s.lookup(9, 1, scopeDomain, 0); ok {
		t.Fatal("empty store found a rate")
	}
	s.set(samplerKey{9, 1, scopeSampler, 7}, 100)
	if r, ok := s.lookup(9, 1, scopeDomain, 0); !ok || r != 100 {
		t.Errorf("single sampler fallback: got %d %v, want 100", r, ok)
	}
	s.set(samplerKey{9, 1, scopeSampler, 8}, 200)
	if _, ok := s.lookup(9, 1, scopeDomain, 0); ok {
		t.Error("two samplers and no domain rate: a record without sampler id must stay unknown")
	}
	if r, _ := s.lookup(9, 1, scopeSampler, 8); r != 200 {
		t.Errorf("sampler 8: got %d, want 200", r)
	}
	if _, ok := s.lookup(9, 2, scopeSampler, 8); ok {
		t.Error("a rate leaked to another domain")
	}
	if _, ok := s.lookup(10, 1, scopeSampler, 8); ok {
		t.Error("a rate leaked to another version")
	}
	s.set(samplerKey{9, 1, scopeDomain, 0}, 50)
	if r, _ := s.lookup(9, 1, scopeSampler, 99); r != 50 {
		t.Errorf("unknown sampler falls back to the domain rate: got %d, want 50", r)
	}
	s.set(samplerKey{9, 1, scopeSampler, 7}, 0) // a zero rate is ignored
	if r, _ := s.lookup(9, 1, scopeSampler, 7); r != 100 {
		t.Errorf("zero rate overwrote sampler 7: got %d", r)
	}
}

func TestTemplateStoreRefusesEmptyTemplates(t *testing.T) {
	var ts templateStore
	ts.init()
	good := netflow.TemplateRecord{TemplateId: 256, Fields: []netflow.Field{{Type: 8, Length: 4}}}
	if err := ts.AddTemplate(10, 1, 256, good); err != nil {
		t.Fatal(err)
	}
	zero := netflow.TemplateRecord{TemplateId: 256, Fields: []netflow.Field{{Type: 8, Length: 0}}}
	if err := ts.AddTemplate(10, 1, 256, zero); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.GetTemplate(10, 1, 256); err == nil {
		t.Fatal("a template with only zero-length fields must withdraw the id, not replace it")
	}
	varOnly := netflow.TemplateRecord{TemplateId: 257, Fields: []netflow.Field{{Type: 82, Length: 0xffff}}}
	if err := ts.AddTemplate(10, 1, 257, varOnly); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.GetTemplate(10, 1, 257); err != nil {
		t.Fatal("a template of variable-length fields consumes input and must be kept")
	}
	for i := range maxTemplatesPerExporter {
		_ = ts.AddTemplate(9, 2, uint16(i), good)
	}
	if err := ts.AddTemplate(9, 3, 300, good); err == nil {
		t.Fatal("template limit not enforced")
	}
}

func TestTimeConversions(t *testing.T) {
	// Exported at Unix 1000 s with uptime 50 s; a flow that started at uptime 45 s.
	if got := uptimeToUnixNano(1000_000, 50_000, 45_000); got != 995_000*1e6 {
		t.Errorf("uptime: got %d", got)
	}
	// Uptime wrapped since the flow started.
	if got := uptimeToUnixNano(1000_000, 1000, 0xffffffff-999); got != (1000_000-2000)*1e6 {
		t.Errorf("uptime across wrap: got %d", got)
	}
	// NTP 2024-01-01T00:00:00Z + 0.5 s.
	ntp := make([]byte, 8)
	binary.BigEndian.PutUint32(ntp, 1704067200+2208988800)
	binary.BigEndian.PutUint32(ntp[4:], 1<<31)
	if got := ntpToUnixNano(ntp, false); got != 1704067200*1e9+5e8 {
		t.Errorf("ntp: got %d", got)
	}
}
