package flowgen_test

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/netsampler/goflow2/v2/decoders/sflow"

	"github.com/kapkan-io/kapkan/ingest/flowgen"
)

var (
	v4a = netip.MustParseAddr("192.0.2.10")
	v4b = netip.MustParseAddr("198.51.100.20")
	v6a = netip.MustParseAddr("2001:db8::1")
	v6b = netip.MustParseAddr("2001:db8:1::53")
)

func decodeSFlow(t *testing.T, b []byte) sflow.Packet {
	t.Helper()
	var p sflow.Packet
	if err := sflow.DecodeMessageVersion(bytes.NewBuffer(b), &p); err != nil {
		t.Fatalf("goflow2 decode: %v", err)
	}
	return p
}

func TestAppendSFlowHeader(t *testing.T) {
	for _, tc := range []struct {
		name      string
		agent     netip.Addr
		ipVersion uint32
	}{
		{"ipv4 agent", netip.MustParseAddr("203.0.113.1"), 1},
		{"ipv6 agent", netip.MustParseAddr("2001:db8:ffff::1"), 2},
		{"ipv4-mapped agent is ipv4", netip.MustParseAddr("::ffff:203.0.113.1"), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := flowgen.SFlowHeader{Agent: tc.agent, SubAgentID: 7, Sequence: 4242, Uptime: 49*24*time.Hour + 1500*time.Millisecond}
			samples := []flowgen.SFlowSample{
				{Sequence: 1, SamplingRate: 1000, Flow: flowgen.Flow{Src: v4a, Dst: v4b, Proto: flowgen.ProtoUDP}},
				{Sequence: 2, SamplingRate: 1000, Flow: flowgen.Flow{Src: v6a, Dst: v6b, Proto: flowgen.ProtoTCP}},
			}
			p := decodeSFlow(t, flowgen.AppendSFlow(nil, h, samples))
			if p.Version != 5 || p.IPVersion != tc.ipVersion {
				t.Errorf("version %d ip version %d, want 5 and %d", p.Version, p.IPVersion, tc.ipVersion)
			}
			if got, ok := netip.AddrFromSlice(p.AgentIP); !ok || got != tc.agent.Unmap() {
				t.Errorf("agent %v, want %v", got, tc.agent.Unmap())
			}
			wantUptime := uint32(h.Uptime.Milliseconds()) // wraps past 49.7 days
			if p.SubAgentId != 7 || p.SequenceNumber != 4242 || p.Uptime != wantUptime {
				t.Errorf("sub-agent %d sequence %d uptime %d, want 7 4242 %d", p.SubAgentId, p.SequenceNumber, p.Uptime, wantUptime)
			}
			if p.SamplesCount != 2 || len(p.Samples) != 2 {
				t.Fatalf("%d samples (%d decoded), want 2", p.SamplesCount, len(p.Samples))
			}
		})
	}
}

// sampleCase is one flow sample and what its raw header must hold.
type sampleCase struct {
	name       string
	s          flowgen.SFlowSample
	frameLen   uint32 // frame_length
	headerLen  int    // bytes of sampled header
	ipLen      int    // IP total length (0: no IP)
	etherType  layers.EthernetType
	moreFrags  bool
	fragOffset uint16
}

func sampleCases() []sampleCase {
	return []sampleCase{
		{
			name: "ethernet ipv4 tcp syn, shortest frame",
			s: flowgen.SFlowSample{Flow: flowgen.Flow{
				Src: v4a, Dst: v4b, SrcPort: 40000, DstPort: 443, Proto: flowgen.ProtoTCP, TCPFlags: flowgen.TCPSyn,
			}},
			frameLen: 64, headerLen: 60, ipLen: 40, etherType: layers.EthernetTypeIPv4,
		},
		{
			name: "ethernet vlan ipv6 udp, full-size frame cut at 128",
			s: flowgen.SFlowSample{VLAN: 100, Flow: flowgen.Flow{
				Src: v6a, Dst: v6b, SrcPort: 53, DstPort: 33333, Proto: flowgen.ProtoUDP, FrameLen: 1522,
			}},
			frameLen: 1522, headerLen: 128, ipLen: 1500, etherType: layers.EthernetTypeIPv6,
		},
		{
			name: "ethernet ipv4 tcp ack psh, all flag bits",
			s: flowgen.SFlowSample{Flow: flowgen.Flow{
				Src: v4b, Dst: v4a, SrcPort: 80, DstPort: 51000, Proto: flowgen.ProtoTCP,
				TCPFlags: flowgen.TCPAck | flowgen.TCPPsh | flowgen.TCPEce | flowgen.TCPCwr | flowgen.TCPUrg | flowgen.TCPFin, FrameLen: 900,
			}},
			frameLen: 900, headerLen: 128, ipLen: 882, etherType: layers.EthernetTypeIPv4,
		},
		{
			name: "raw ipv4 header icmp echo request",
			s: flowgen.SFlowSample{Header: flowgen.HeaderIPv4, Flow: flowgen.Flow{
				Src: v4a, Dst: v4b, DstPort: 8 << 8, Proto: flowgen.ProtoICMP, FrameLen: 84,
			}},
			frameLen: 84, headerLen: 84, ipLen: 84,
		},
		{
			name: "raw ipv6 header icmpv6 echo reply, shortest",
			s: flowgen.SFlowSample{Header: flowgen.HeaderIPv6, Flow: flowgen.Flow{
				Src: v6b, Dst: v6a, DstPort: 129 << 8, Proto: flowgen.ProtoICMPv6,
			}},
			frameLen: 48, headerLen: 48, ipLen: 48,
		},
		{
			name:     "ethernet ipv4 experimental protocol 253, no transport header",
			s:        flowgen.SFlowSample{Flow: flowgen.Flow{Src: v4a, Dst: v4b, Proto: 253, FrameLen: 200}},
			frameLen: 200, headerLen: 128, ipLen: 182, etherType: layers.EthernetTypeIPv4,
		},
		{
			name: "ethernet ipv4 udp first fragment",
			s: flowgen.SFlowSample{Flow: flowgen.Flow{
				Src: v4a, Dst: v4b, SrcPort: 123, DstPort: 123, Proto: flowgen.ProtoUDP, Fragment: true, FrameLen: 1518,
			}},
			frameLen: 1518, headerLen: 128, ipLen: 1500, etherType: layers.EthernetTypeIPv4, moreFrags: true,
		},
		{
			name: "ethernet ipv4 udp last fragment",
			s: flowgen.SFlowSample{Flow: flowgen.Flow{
				Src: v4a, Dst: v4b, Proto: flowgen.ProtoUDP, FragmentOffset: 185, FrameLen: 600,
			}},
			frameLen: 600, headerLen: 128, ipLen: 582, etherType: layers.EthernetTypeIPv4, fragOffset: 185,
		},
		{
			name: "ethernet ipv6 udp middle fragment",
			s: flowgen.SFlowSample{Flow: flowgen.Flow{
				Src: v6a, Dst: v6b, Proto: flowgen.ProtoUDP, Fragment: true, FragmentOffset: 181, FrameLen: 1518,
			}},
			frameLen: 1518, headerLen: 128, ipLen: 1500, etherType: layers.EthernetTypeIPv6, moreFrags: true, fragOffset: 181,
		},
		{
			name: "raw ipv6 header tcp first fragment",
			s: flowgen.SFlowSample{Header: flowgen.HeaderIPv6, Flow: flowgen.Flow{
				Src: v6a, Dst: v6b, SrcPort: 1234, DstPort: 80, Proto: flowgen.ProtoTCP, TCPFlags: flowgen.TCPAck, Fragment: true, FrameLen: 1280,
			}},
			frameLen: 1280, headerLen: 128, ipLen: 1280, moreFrags: true,
		},
		{
			name:     "frame shorter than its headers is raised",
			s:        flowgen.SFlowSample{Flow: flowgen.Flow{Src: v6a, Dst: v6b, Proto: flowgen.ProtoTCP, FrameLen: 30}},
			frameLen: 78, headerLen: 74, ipLen: 60, etherType: layers.EthernetTypeIPv6,
		},
		{
			name:     "arp frame without addresses",
			s:        flowgen.SFlowSample{VLAN: 4094},
			frameLen: 64, headerLen: 60, etherType: layers.EthernetTypeARP,
		},
	}
}

func TestAppendSFlowRawHeader(t *testing.T) {
	for _, tc := range sampleCases() {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s
			s.Sequence, s.SourceType, s.SourceIndex = 99, 0, 17
			s.SamplingRate, s.SamplePool, s.Drops = 2048, 2048*99, 3
			s.Input, s.Output = 17, 42
			p := decodeSFlow(t, flowgen.AppendSFlow(nil, flowgen.SFlowHeader{Agent: v4a}, []flowgen.SFlowSample{s}))
			fs, ok := p.Samples[0].(sflow.FlowSample)
			if !ok {
				t.Fatalf("sample is %T, want sflow.FlowSample", p.Samples[0])
			}
			h := fs.Header
			if h.Format != 1 || h.SampleSequenceNumber != 99 || h.SourceIdType != 0 || h.SourceIdValue != 17 {
				t.Errorf("sample header %+v, want format 1 sequence 99 source 0:17", h)
			}
			if fs.SamplingRate != 2048 || fs.SamplePool != 2048*99 || fs.Drops != 3 || fs.Input != 17 || fs.Output != 42 {
				t.Errorf("sample %+v, want rate 2048 pool %d drops 3 input 17 output 42", fs, 2048*99)
			}
			if len(fs.Records) != 1 {
				t.Fatalf("%d records, want 1", len(fs.Records))
			}
			checkRawHeader(t, &tc, fs.Records[0])
		})
	}
}

// checkRawHeader checks a raw packet header record against tc, decoding the
// packet with gopacket. The header holds the first bytes of a packet whose
// payload is zeros, so the whole packet is rebuilt to verify its checksums.
func checkRawHeader(t *testing.T, tc *sampleCase, rec sflow.FlowRecord) {
	t.Helper()
	sh, ok := rec.Data.(sflow.SampledHeader)
	if !ok {
		t.Fatalf("record is %T, want sflow.SampledHeader", rec.Data)
	}
	wantProto := tc.s.Header
	if wantProto == 0 {
		wantProto = flowgen.HeaderEthernet
	}
	if sh.Protocol != uint32(wantProto) || sh.FrameLength != tc.frameLen || sh.Stripped != 4 || sh.OriginalLength != uint32(tc.headerLen) {
		t.Errorf("sampled header protocol %d frame %d stripped %d length %d, want %d %d 4 %d",
			sh.Protocol, sh.FrameLength, sh.Stripped, sh.OriginalLength, wantProto, tc.frameLen, tc.headerLen)
	}
	if pad := (4 - tc.headerLen%4) % 4; len(sh.HeaderData) != tc.headerLen+pad {
		t.Fatalf("header data of %d bytes, want %d plus %d of padding", len(sh.HeaderData), tc.headerLen, pad)
	}
	if rec.Header.Length%4 != 0 {
		t.Errorf("record length %d is not a multiple of 4", rec.Header.Length)
	}
	hdr := sh.HeaderData[:tc.headerLen]

	// Rebuild the whole packet: the header, then zeros.
	full := int(tc.frameLen)
	first := gopacket.Decoder(layers.LayerTypeEthernet)
	switch wantProto {
	case flowgen.HeaderEthernet:
		full -= 4 // FCS
	case flowgen.HeaderIPv4:
		first = layers.LayerTypeIPv4
	case flowgen.HeaderIPv6:
		first = layers.LayerTypeIPv6
	}
	data := append(bytes.Clone(hdr), make([]byte, full-len(hdr))...)
	pkt := gopacket.NewPacket(data, first, gopacket.Default)
	f := &tc.s.Flow
	if el := pkt.ErrorLayer(); el != nil {
		// gopacket has no decoder for some protocols; what precedes them
		// must still decode.
		switch f.Proto {
		case flowgen.ProtoTCP, flowgen.ProtoUDP, flowgen.ProtoICMP, flowgen.ProtoICMPv6:
			t.Fatalf("gopacket: %v", el.Error())
		}
		if pkt.NetworkLayer() == nil {
			t.Fatalf("gopacket: %v", el.Error())
		}
	}

	if wantProto == flowgen.HeaderEthernet {
		eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		if eth == nil {
			t.Fatalf("no Ethernet layer in %v", pkt)
		}
		etype := eth.EthernetType
		if tc.s.VLAN != 0 {
			q, _ := pkt.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q)
			if etype != layers.EthernetTypeDot1Q || q == nil || q.VLANIdentifier != tc.s.VLAN {
				t.Fatalf("ethertype %v tag %+v, want an 802.1Q tag for VLAN %d", etype, q, tc.s.VLAN)
			}
			etype = q.Type
		}
		if etype != tc.etherType {
			t.Errorf("ethertype %v, want %v", etype, tc.etherType)
		}
		if eth.SrcMAC[0]&2 == 0 {
			t.Errorf("source MAC %v is not locally administered", eth.SrcMAC)
		}
		if tc.etherType == layers.EthernetTypeARP {
			arp, _ := pkt.Layer(layers.LayerTypeARP).(*layers.ARP)
			if arp == nil || arp.Operation != layers.ARPRequest || arp.Protocol != layers.EthernetTypeIPv4 {
				t.Errorf("ARP layer %+v, want an IPv4 request", arp)
			}
			return
		}
	}

	var (
		network  gopacket.NetworkLayer
		proto    layers.IPProtocol
		isFrag   bool
		l4       []byte // bytes after the IP header(s), for fragments
		fragMore bool
		fragOff  uint16
	)
	if ip4, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ip4 != nil {
		network = ip4
		if ip4.SrcIP.String() != f.Src.String() || ip4.DstIP.String() != f.Dst.String() {
			t.Errorf("IPv4 %v > %v, want %v > %v", ip4.SrcIP, ip4.DstIP, f.Src, f.Dst)
		}
		if int(ip4.Length) != tc.ipLen || ip4.IHL != 5 || ip4.TTL == 0 {
			t.Errorf("IPv4 length %d IHL %d TTL %d, want %d 5 non-zero", ip4.Length, ip4.IHL, ip4.TTL, tc.ipLen)
		}
		if _, res := ip4.VerifyChecksum(); !res.Valid {
			t.Errorf("IPv4 header checksum %#04x, want %#04x", res.Actual, res.Correct)
		}
		proto = ip4.Protocol
		fragMore, fragOff = ip4.Flags&layers.IPv4MoreFragments != 0, ip4.FragOffset
		isFrag = fragMore || fragOff != 0
		l4 = ip4.Payload
	} else if ip6, _ := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ip6 != nil {
		network = ip6
		if ip6.SrcIP.String() != f.Src.String() || ip6.DstIP.String() != f.Dst.String() {
			t.Errorf("IPv6 %v > %v, want %v > %v", ip6.SrcIP, ip6.DstIP, f.Src, f.Dst)
		}
		if int(ip6.Length) != tc.ipLen-40 || ip6.HopLimit == 0 {
			t.Errorf("IPv6 payload length %d hop limit %d, want %d non-zero", ip6.Length, ip6.HopLimit, tc.ipLen-40)
		}
		proto = ip6.NextHeader
		if fr, _ := pkt.Layer(layers.LayerTypeIPv6Fragment).(*layers.IPv6Fragment); fr != nil {
			isFrag = true
			proto, fragMore, fragOff = fr.NextHeader, fr.MoreFragments, fr.FragmentOffset
			l4 = fr.Payload
		}
	} else {
		t.Fatalf("no IP layer in %v", pkt)
	}
	if proto != layers.IPProtocol(f.Proto) {
		t.Errorf("IP protocol %v, want %d", proto, f.Proto)
	}
	if fragMore != tc.moreFrags || fragOff != tc.fragOffset {
		t.Errorf("more fragments %v offset %d, want %v %d", fragMore, fragOff, tc.moreFrags, tc.fragOffset)
	}

	if isFrag {
		// gopacket does not decode the transport header of fragments.
		if tc.fragOffset != 0 {
			if len(l4) > 0 && !bytes.Equal(l4, make([]byte, len(l4))) {
				t.Errorf("non-first fragment payload %x, want zeros", l4)
			}
			return
		}
		if sp, dp := binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:]); sp != f.SrcPort || dp != f.DstPort {
			t.Errorf("fragment ports %d > %d, want %d > %d", sp, dp, f.SrcPort, f.DstPort)
		}
		return
	}

	switch f.Proto {
	case flowgen.ProtoTCP:
		tcp, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tcp == nil {
			t.Fatalf("no TCP layer in %v", pkt)
		}
		if uint16(tcp.SrcPort) != f.SrcPort || uint16(tcp.DstPort) != f.DstPort || tcp.Contents[13] != f.TCPFlags || tcp.DataOffset != 5 {
			t.Errorf("TCP %d > %d flags %#02x offset %d, want %d > %d %#02x 5", tcp.SrcPort, tcp.DstPort, tcp.Contents[13], tcp.DataOffset, f.SrcPort, f.DstPort, f.TCPFlags)
		}
		if tcp.SYN != (f.TCPFlags&flowgen.TCPSyn != 0) || tcp.ACK != (f.TCPFlags&flowgen.TCPAck != 0) {
			t.Errorf("TCP SYN %v ACK %v, want flags %#02x", tcp.SYN, tcp.ACK, f.TCPFlags)
		}
		_ = tcp.SetNetworkLayerForChecksum(network)
	case flowgen.ProtoUDP:
		udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if udp == nil {
			t.Fatalf("no UDP layer in %v", pkt)
		}
		if uint16(udp.SrcPort) != f.SrcPort || uint16(udp.DstPort) != f.DstPort || int(udp.Length) != len(udp.Contents)+len(udp.Payload) {
			t.Errorf("UDP %d > %d length %d, want %d > %d %d", udp.SrcPort, udp.DstPort, udp.Length, f.SrcPort, f.DstPort, len(udp.Contents)+len(udp.Payload))
		}
		if udp.Checksum == 0 {
			t.Error("UDP checksum left out")
		}
		_ = udp.SetNetworkLayerForChecksum(network)
	case flowgen.ProtoICMP:
		icmp, _ := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if icmp == nil || uint16(icmp.TypeCode) != f.DstPort {
			t.Errorf("ICMP layer %+v, want type/code %#04x", icmp, f.DstPort)
		}
	case flowgen.ProtoICMPv6:
		icmp, _ := pkt.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
		if icmp == nil || uint16(icmp.TypeCode) != f.DstPort {
			t.Fatalf("ICMPv6 layer %+v, want type/code %#04x", icmp, f.DstPort)
		}
		_ = icmp.SetNetworkLayerForChecksum(network)
	}
	err, bad := pkt.VerifyChecksums()
	if err != nil {
		t.Fatalf("verify checksums: %v", err)
	}
	for _, m := range bad {
		t.Errorf("%v checksum %#04x, want %#04x", m.Layer.LayerType(), m.Actual, m.Correct)
	}
}

func TestAppendSFlowExpanded(t *testing.T) {
	s := flowgen.SFlowSample{
		Sequence: 1 << 31, SourceType: 2, SourceIndex: 0x01234567, // past 24 bits
		SamplingRate: 16384, SamplePool: 123456789, Drops: 5,
		Input: 0x7fffffff, Output: 3, OutputFormat: flowgen.IfDiscarded, // past 30 bits
		Expanded: true,
		Flow:     flowgen.Flow{Src: v4a, Dst: v4b, SrcPort: 1, DstPort: 2, Proto: flowgen.ProtoUDP},
	}
	p := decodeSFlow(t, flowgen.AppendSFlow(nil, flowgen.SFlowHeader{Agent: v4a}, []flowgen.SFlowSample{s}))
	fs, ok := p.Samples[0].(sflow.ExpandedFlowSample)
	if !ok {
		t.Fatalf("sample is %T, want sflow.ExpandedFlowSample", p.Samples[0])
	}
	h := fs.Header
	if h.Format != 3 || h.SampleSequenceNumber != 1<<31 || h.SourceIdType != 2 || h.SourceIdValue != 0x01234567 {
		t.Errorf("header %+v, want format 3 sequence 2^31 source 2:0x01234567", h)
	}
	if fs.SamplingRate != 16384 || fs.SamplePool != 123456789 || fs.Drops != 5 {
		t.Errorf("rate %d pool %d drops %d, want 16384 123456789 5", fs.SamplingRate, fs.SamplePool, fs.Drops)
	}
	if fs.InputIfFormat != 0 || fs.InputIfValue != 0x7fffffff || fs.OutputIfFormat != 1 || fs.OutputIfValue != 3 {
		t.Errorf("interfaces %d:%d > %d:%d, want 0:0x7fffffff > 1:3", fs.InputIfFormat, fs.InputIfValue, fs.OutputIfFormat, fs.OutputIfValue)
	}
	tc := sampleCase{s: s, frameLen: 64, headerLen: 60, ipLen: 28, etherType: layers.EthernetTypeIPv4}
	checkRawHeader(t, &tc, fs.Records[0])
}

func TestAppendSFlowCompactInterfaces(t *testing.T) {
	s := flowgen.SFlowSample{
		SourceType: 1, SourceIndex: 0xabcdef,
		Input: 5, Output: 4, OutputFormat: flowgen.IfMultiple,
		Flow: flowgen.Flow{Src: v4a, Dst: v4b, Proto: flowgen.ProtoUDP},
	}
	p := decodeSFlow(t, flowgen.AppendSFlow(nil, flowgen.SFlowHeader{}, []flowgen.SFlowSample{s}))
	fs := p.Samples[0].(sflow.FlowSample)
	if fs.Header.SourceIdType != 1 || fs.Header.SourceIdValue != 0xabcdef {
		t.Errorf("source %d:%#x, want 1:0xabcdef", fs.Header.SourceIdType, fs.Header.SourceIdValue)
	}
	if fs.Input != 5 || fs.Output != 2<<30|4 {
		t.Errorf("input %#x output %#x, want 0x5 %#x", fs.Input, fs.Output, 2<<30|4)
	}
}

func TestAppendSFlowSampledIP(t *testing.T) {
	for _, tc := range []struct {
		name   string
		s      flowgen.SFlowSample
		format uint32
		length uint32
	}{
		{
			name: "sampled ipv4 from an ethernet frame",
			s: flowgen.SFlowSample{Record: flowgen.RecordSampledIP, Flow: flowgen.Flow{
				Src: v4a, Dst: v4b, SrcPort: 12345, DstPort: 80, Proto: flowgen.ProtoTCP, TCPFlags: flowgen.TCPSyn | flowgen.TCPAck, FrameLen: 1518,
			}},
			format: 3, length: 1500,
		},
		{
			name: "sampled ipv6 from a raw ipv6 header",
			s: flowgen.SFlowSample{Record: flowgen.RecordSampledIP, Header: flowgen.HeaderIPv6, Flow: flowgen.Flow{
				Src: v6a, Dst: v6b, SrcPort: 443, DstPort: 55555, Proto: flowgen.ProtoUDP, FrameLen: 1280,
			}},
			format: 4, length: 1280,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := decodeSFlow(t, flowgen.AppendSFlow(nil, flowgen.SFlowHeader{Agent: v6a}, []flowgen.SFlowSample{tc.s}))
			rec := p.Samples[0].(sflow.FlowSample).Records[0]
			if rec.Header.DataFormat != tc.format {
				t.Fatalf("record format %d, want %d", rec.Header.DataFormat, tc.format)
			}
			var base sflow.SampledIPBase
			switch d := rec.Data.(type) {
			case sflow.SampledIPv4:
				base = d.SampledIPBase
			case sflow.SampledIPv6:
				base = d.SampledIPBase
			default:
				t.Fatalf("record data %T", rec.Data)
			}
			f := tc.s.Flow
			src, _ := netip.AddrFromSlice(base.SrcIP)
			dst, _ := netip.AddrFromSlice(base.DstIP)
			if src != f.Src || dst != f.Dst {
				t.Errorf("addresses %v > %v, want %v > %v", src, dst, f.Src, f.Dst)
			}
			if base.Length != tc.length || base.Protocol != uint32(f.Proto) || base.SrcPort != uint32(f.SrcPort) ||
				base.DstPort != uint32(f.DstPort) || base.TcpFlags != uint32(f.TCPFlags) {
				t.Errorf("record %+v, want length %d and the flow's protocol, ports and flags", base, tc.length)
			}
		})
	}
}

func TestAppendSFlowCounters(t *testing.T) {
	c := flowgen.IfCounters{
		Index: 17, Type: 6, Speed: 100e9, Direction: 1, Status: 3,
		InOctets: 1 << 40, InUcastPkts: 1, InMulticastPkts: 2, InBroadcastPkts: 3, InDiscards: 4, InErrors: 5, InUnknownProtos: 6,
		OutOctets: 1<<41 + 7, OutUcastPkts: 8, OutMulticastPkts: 9, OutBroadcastPkts: 10, OutDiscards: 11, OutErrors: 12, PromiscuousMode: 1,
	}
	want := sflow.IfCounters{
		IfIndex: 17, IfType: 6, IfSpeed: 100e9, IfDirection: 1, IfStatus: 3,
		IfInOctets: 1 << 40, IfInUcastPkts: 1, IfInMulticastPkts: 2, IfInBroadcastPkts: 3, IfInDiscards: 4, IfInErrors: 5, IfInUnknownProtos: 6,
		IfOutOctets: 1<<41 + 7, IfOutUcastPkts: 8, IfOutMulticastPkts: 9, IfOutBroadcastPkts: 10, IfOutDiscards: 11, IfOutErrors: 12, IfPromiscuousMode: 1,
	}
	samples := []flowgen.SFlowSample{
		{Sequence: 1, SamplingRate: 512, Flow: flowgen.Flow{Src: v4a, Dst: v4b, Proto: flowgen.ProtoTCP}},
		{Sequence: 10, SourceIndex: 17, Counters: &c},
		{Sequence: 11, SourceIndex: 18, Counters: &c, Expanded: true},
	}
	p := decodeSFlow(t, flowgen.AppendSFlow(nil, flowgen.SFlowHeader{Agent: v4a}, samples))
	if len(p.Samples) != 3 {
		t.Fatalf("%d samples, want 3", len(p.Samples))
	}
	if _, ok := p.Samples[0].(sflow.FlowSample); !ok {
		t.Errorf("sample 0 is %T, want a flow sample", p.Samples[0])
	}
	for i, format := range map[int]uint32{1: 2, 2: 4} {
		cs, ok := p.Samples[i].(sflow.CounterSample)
		if !ok {
			t.Fatalf("sample %d is %T, want sflow.CounterSample", i, p.Samples[i])
		}
		if cs.Header.Format != format || cs.Header.SampleSequenceNumber != samples[i].Sequence || cs.Header.SourceIdValue != samples[i].SourceIndex {
			t.Errorf("sample %d header %+v, want format %d sequence %d source %d", i, cs.Header, format, samples[i].Sequence, samples[i].SourceIndex)
		}
		if len(cs.Records) != 1 || cs.Records[0].Header.DataFormat != 1 || cs.Records[0].Header.Length != 88 {
			t.Fatalf("sample %d records %+v, want one generic interface record of 88 bytes", i, cs.Records)
		}
		if got := cs.Records[0].Data; got != want {
			t.Errorf("sample %d counters\n got %+v\nwant %+v", i, got, want)
		}
	}
}

// TestAppendSFlowBytes pins a whole datagram byte for byte, written out by
// hand from SFLOW-DATAGRAM5 and SFLOW-STRUCTS5.
func TestAppendSFlowBytes(t *testing.T) {
	got := flowgen.AppendSFlow(nil, flowgen.SFlowHeader{
		Agent: netip.MustParseAddr("10.0.0.1"), SubAgentID: 2, Sequence: 3, Uptime: 4 * time.Millisecond,
	}, []flowgen.SFlowSample{{
		Sequence: 5, SourceType: 0, SourceIndex: 6, SamplingRate: 7, SamplePool: 8, Drops: 9, Input: 10, Output: 11,
		Record: flowgen.RecordSampledIP,
		Flow: flowgen.Flow{
			Src: netip.MustParseAddr("10.1.1.1"), Dst: netip.MustParseAddr("10.2.2.2"),
			SrcPort: 1000, DstPort: 53, Proto: flowgen.ProtoUDP, FrameLen: 100,
		},
	}})
	want := []byte{
		0, 0, 0, 5, // version
		0, 0, 0, 1, 10, 0, 0, 1, // agent address: IPv4 10.0.0.1
		0, 0, 0, 2, // sub-agent id
		0, 0, 0, 3, // sequence number
		0, 0, 0, 4, // uptime
		0, 0, 0, 1, // one sample
		0, 0, 0, 1, 0, 0, 0, 72, // flow_sample, 72 bytes
		0, 0, 0, 5, // sequence number
		0, 0, 0, 6, // source id: type 0, index 6
		0, 0, 0, 7, // sampling rate
		0, 0, 0, 8, // sample pool
		0, 0, 0, 9, // drops
		0, 0, 0, 10, // input
		0, 0, 0, 11, // output
		0, 0, 0, 1, // one record
		0, 0, 0, 3, 0, 0, 0, 32, // sampled_ipv4, 32 bytes
		0, 0, 0, 82, // IP length: 100 - 14 - 4
		0, 0, 0, 17, // protocol
		10, 1, 1, 1, 10, 2, 2, 2, // addresses
		0, 0, 0x03, 0xe8, 0, 0, 0, 53, // ports
		0, 0, 0, 0, 0, 0, 0, 0, // TCP flags, ToS
	}
	if !bytes.Equal(got, want) {
		t.Errorf("datagram\n got % x\nwant % x", got, want)
	}
}

func TestAppendSFlowAppends(t *testing.T) {
	prefix := []byte("prefix")
	s := []flowgen.SFlowSample{{Flow: flowgen.Flow{Src: v4a, Dst: v4b, Proto: flowgen.ProtoUDP}}}
	alone := flowgen.AppendSFlow(nil, flowgen.SFlowHeader{}, s)
	got := flowgen.AppendSFlow(bytes.Clone(prefix), flowgen.SFlowHeader{}, s)
	if !bytes.Equal(got[:len(prefix)], prefix) || !bytes.Equal(got[len(prefix):], alone) {
		t.Errorf("appended datagram differs from the datagram alone")
	}
}

func TestAppendSFlowAllocs(t *testing.T) {
	samples := benchSamples(8)
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		buf = flowgen.AppendSFlow(buf[:0], flowgen.SFlowHeader{Agent: v4a}, samples)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per datagram, want 0", allocs)
	}
}
