package flowgen_test

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/netsampler/goflow2/v2/decoders/netflowlegacy"

	"github.com/kapkan-io/kapkan/ingest/flowgen"
)

func TestWritePCAP(t *testing.T) {
	sflowDatagram := flowgen.AppendSFlow(nil, flowgen.SFlowHeader{Agent: v4a, Sequence: 1}, []flowgen.SFlowSample{
		{SamplingRate: 1000, Flow: flowgen.Flow{Src: v4a, Dst: v4b, Proto: flowgen.ProtoUDP, SrcPort: 53, DstPort: 1}},
	})
	v5, err := flowgen.AppendNetFlow5(nil, flowgen.NetFlow5Header{Time: exportTime}, v5Flows(3))
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{0xa5}, 9001) // odd length: the checksum pads a byte
	packets := []flowgen.Packet{
		{Time: exportTime.Add(1234567 * time.Nanosecond), Src: netip.MustParseAddrPort("192.0.2.1:50000"), Dst: netip.MustParseAddrPort("192.0.2.2:6343"), Payload: sflowDatagram},
		{Time: exportTime.Add(2 * time.Second), Src: netip.MustParseAddrPort("[2001:db8::1]:50001"), Dst: netip.MustParseAddrPort("[2001:db8::2]:2055"), Payload: v5},
		{Time: exportTime.Add(3 * time.Second), Src: netip.MustParseAddrPort("[::ffff:192.0.2.1]:1"), Dst: netip.MustParseAddrPort("192.0.2.2:2"), Payload: big},
		{Time: exportTime.Add(4 * time.Second), Src: netip.MustParseAddrPort("[2001:db8::1]:7"), Dst: netip.MustParseAddrPort("[2001:db8::2]:9"), Payload: big},
		{Time: exportTime.Add(5 * time.Second), Src: netip.MustParseAddrPort("192.0.2.1:0"), Dst: netip.MustParseAddrPort("192.0.2.2:0")}, // empty payload
	}
	var buf bytes.Buffer
	if err := flowgen.WritePCAP(&buf, packets); err != nil {
		t.Fatal(err)
	}

	r, err := pcapgo.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeEthernet || r.Resolution() != gopacket.TimestampResolutionMicrosecond || r.Snaplen() < 65535+14+40+8 {
		t.Errorf("link type %v resolution %v snaplen %d", r.LinkType(), r.Resolution(), r.Snaplen())
	}
	for i, want := range packets {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !ci.Timestamp.Equal(want.Time.Truncate(time.Microsecond)) || ci.CaptureLength != len(data) || ci.Length != len(data) {
			t.Errorf("packet %d: capture info %+v, want time %v and whole lengths", i, ci, want.Time)
		}
		pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		if el := pkt.ErrorLayer(); el != nil {
			t.Fatalf("packet %d: %v", i, el.Error())
		}
		src, dst := want.Src.Addr().Unmap(), want.Dst.Addr().Unmap()
		switch ip := pkt.NetworkLayer().(type) {
		case *layers.IPv4:
			if !src.Is4() || ip.SrcIP.String() != src.String() || ip.DstIP.String() != dst.String() || ip.Protocol != layers.IPProtocolUDP {
				t.Errorf("packet %d: IPv4 %v > %v protocol %v, want %v > %v UDP", i, ip.SrcIP, ip.DstIP, ip.Protocol, src, dst)
			}
			if int(ip.Length) != 20+8+len(want.Payload) || ip.Flags != 0 || ip.FragOffset != 0 {
				t.Errorf("packet %d: IPv4 length %d flags %v offset %d", i, ip.Length, ip.Flags, ip.FragOffset)
			}
		case *layers.IPv6:
			if !src.Is6() || ip.SrcIP.String() != src.String() || ip.DstIP.String() != dst.String() || ip.NextHeader != layers.IPProtocolUDP {
				t.Errorf("packet %d: IPv6 %v > %v next header %v, want %v > %v UDP", i, ip.SrcIP, ip.DstIP, ip.NextHeader, src, dst)
			}
			if int(ip.Length) != 8+len(want.Payload) {
				t.Errorf("packet %d: IPv6 payload length %d", i, ip.Length)
			}
		default:
			t.Fatalf("packet %d: network layer %T", i, ip)
		}
		udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if udp == nil {
			t.Fatalf("packet %d: no UDP layer", i)
		}
		if uint16(udp.SrcPort) != want.Src.Port() || uint16(udp.DstPort) != want.Dst.Port() || int(udp.Length) != 8+len(want.Payload) {
			t.Errorf("packet %d: UDP %d > %d length %d", i, udp.SrcPort, udp.DstPort, udp.Length)
		}
		if !bytes.Equal(udp.Payload, want.Payload) {
			t.Errorf("packet %d: payload differs", i)
		}
		if udp.Checksum == 0 {
			t.Errorf("packet %d: no UDP checksum", i)
		}
		_ = udp.SetNetworkLayerForChecksum(pkt.NetworkLayer())
		err, bad := pkt.VerifyChecksums()
		if err != nil {
			t.Fatalf("packet %d: verify checksums: %v", i, err)
		}
		for _, m := range bad {
			t.Errorf("packet %d: %v checksum %#04x, want %#04x", i, m.Layer.LayerType(), m.Actual, m.Correct)
		}
		if i == 1 { // the NetFlow v5 payload decodes
			var p netflowlegacy.PacketNetFlowV5
			if err := netflowlegacy.DecodeMessageVersion(bytes.NewBuffer(udp.Payload), &p); err != nil || p.Count != 3 {
				t.Errorf("packet %d: NetFlow v5 payload: count %d error %v", i, p.Count, err)
			}
		}
	}
	if _, _, err := r.ReadPacketData(); !errors.Is(err, io.EOF) {
		t.Errorf("after the last packet: %v, want EOF", err)
	}
}

func TestWritePCAPErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    flowgen.Packet
		want string
	}{
		{"mixed families", flowgen.Packet{Time: exportTime, Src: netip.MustParseAddrPort("192.0.2.1:1"), Dst: netip.MustParseAddrPort("[2001:db8::1]:2")}, "one family"},
		{"no address", flowgen.Packet{Time: exportTime, Dst: netip.MustParseAddrPort("192.0.2.1:2")}, "one family"},
		{"ipv4 payload too large", flowgen.Packet{Time: exportTime, Src: netip.MustParseAddrPort("192.0.2.1:1"), Dst: netip.MustParseAddrPort("192.0.2.2:2"), Payload: make([]byte, 65508)}, "too large"},
		{"before 1970", flowgen.Packet{Time: time.Unix(-1, 0), Src: netip.MustParseAddrPort("192.0.2.1:1"), Dst: netip.MustParseAddrPort("192.0.2.2:2")}, "out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := flowgen.NewPCAPWriter(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.WritePacket(tc.p); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one about %q", err, tc.want)
			}
			if buf.Len() != 24 {
				t.Errorf("%d bytes written, want the 24 of the file header only", buf.Len())
			}
		})
	}
	// The largest IPv4 payload fits.
	w, _ := flowgen.NewPCAPWriter(io.Discard)
	if err := w.WritePacket(flowgen.Packet{Time: exportTime, Src: netip.MustParseAddrPort("192.0.2.1:1"), Dst: netip.MustParseAddrPort("192.0.2.2:2"), Payload: make([]byte, 65507)}); err != nil {
		t.Errorf("largest IPv4 payload: %v", err)
	}
}
