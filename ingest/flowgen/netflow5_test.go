package flowgen_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/netsampler/goflow2/v2/decoders/netflowlegacy"

	"github.com/kapkan-io/kapkan/ingest/flowgen"
)

// exportTime is a whole-second export time most tests use.
var exportTime = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

func decodeNetFlow5(t *testing.T, b []byte) netflowlegacy.PacketNetFlowV5 {
	t.Helper()
	var p netflowlegacy.PacketNetFlowV5
	if err := netflowlegacy.DecodeMessageVersion(bytes.NewBuffer(b), &p); err != nil {
		t.Fatalf("goflow2 decode: %v", err)
	}
	return p
}

func v5Flows(n int) []flowgen.Flow {
	flows := make([]flowgen.Flow, n)
	for i := range flows {
		flows[i] = flowgen.Flow{
			Src:      netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}),
			Dst:      netip.AddrFrom4([4]byte{198, 51, 100, byte(200 - i)}),
			SrcPort:  uint16(1024 + i),
			DstPort:  uint16(53 + i),
			Proto:    []uint8{flowgen.ProtoTCP, flowgen.ProtoUDP, flowgen.ProtoICMP}[i%3],
			TCPFlags: uint8(i),
			Packets:  uint64(i + 1),
			Bytes:    uint64(i+1) * 1000,
			Start:    exportTime.Add(-time.Duration(i+10) * time.Second),
			End:      exportTime.Add(-time.Duration(i) * time.Millisecond),
			InIf:     uint32(i),
			OutIf:    uint32(65535 - i),
		}
	}
	flows[0].Packets, flows[0].Bytes = math.MaxUint32, math.MaxUint32
	return flows
}

func TestAppendNetFlow5(t *testing.T) {
	h := flowgen.NetFlow5Header{
		Uptime:     72 * time.Hour,
		Time:       exportTime.Add(123 * time.Millisecond),
		Sequence:   1 << 31,
		EngineType: 1, EngineID: 2,
		SamplingMode: 1, SamplingInterval: 0x3fff,
	}
	flows := v5Flows(flowgen.MaxNetFlow5Records)
	b, err := flowgen.AppendNetFlow5(nil, h, flows)
	if err != nil {
		t.Fatal(err)
	}
	if want := 24 + 48*len(flows); len(b) != want {
		t.Errorf("datagram of %d bytes, want %d", len(b), want)
	}
	p := decodeNetFlow5(t, b)
	if p.Version != 5 || int(p.Count) != len(flows) || p.SysUptime != uint32((72*time.Hour).Milliseconds()) {
		t.Errorf("version %d count %d uptime %d", p.Version, p.Count, p.SysUptime)
	}
	if p.UnixSecs != uint32(exportTime.Unix()) || p.UnixNSecs != 123000000 || p.FlowSequence != 1<<31 {
		t.Errorf("unix %d.%09d sequence %d", p.UnixSecs, p.UnixNSecs, p.FlowSequence)
	}
	if p.EngineType != 1 || p.EngineId != 2 || p.SamplingInterval>>14 != 1 || p.SamplingInterval&0x3fff != 0x3fff {
		t.Errorf("engine %d/%d sampling %#04x, want 1/2 mode 1 interval 0x3fff", p.EngineType, p.EngineId, p.SamplingInterval)
	}
	boot := h.Time.Add(-h.Uptime)
	for i, r := range p.Records {
		f := flows[i]
		t.Run(fmt.Sprint("record ", i), func(t *testing.T) {
			if a := v4addr(uint32(r.SrcAddr)); a != f.Src {
				t.Errorf("src %v, want %v", a, f.Src)
			}
			if a := v4addr(uint32(r.DstAddr)); a != f.Dst {
				t.Errorf("dst %v, want %v", a, f.Dst)
			}
			if r.SrcPort != f.SrcPort || r.DstPort != f.DstPort || r.Proto != f.Proto || r.TCPFlags != f.TCPFlags {
				t.Errorf("ports %d > %d proto %d flags %#x, want %d > %d %d %#x", r.SrcPort, r.DstPort, r.Proto, r.TCPFlags, f.SrcPort, f.DstPort, f.Proto, f.TCPFlags)
			}
			if uint64(r.DPkts) != f.Packets || uint64(r.DOctets) != f.Bytes || uint32(r.Input) != f.InIf || uint32(r.Output) != f.OutIf {
				t.Errorf("packets %d bytes %d interfaces %d > %d", r.DPkts, r.DOctets, r.Input, r.Output)
			}
			// A collector turns First/Last back into times from the header.
			if got := boot.Add(time.Duration(r.First) * time.Millisecond); !got.Equal(f.Start) {
				t.Errorf("first %d is %v, want %v", r.First, got, f.Start)
			}
			if got := boot.Add(time.Duration(r.Last) * time.Millisecond); !got.Equal(f.End) {
				t.Errorf("last %d is %v, want %v", r.Last, got, f.End)
			}
			if r.NextHop != 0 || r.Pad1 != 0 || r.Pad2 != 0 || r.Tos != 0 || r.SrcAS != 0 || r.DstAS != 0 {
				t.Errorf("unused fields not zero: %+v", r)
			}
		})
	}
}

func v4addr(a uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
}

func TestAppendNetFlow5Times(t *testing.T) {
	h := flowgen.NetFlow5Header{Uptime: 5 * time.Second, Time: exportTime}
	flows := []flowgen.Flow{
		{Src: v4a, Dst: v4b}, // no times: the export time
		{Src: v4a, Dst: v4b, Start: exportTime.Add(-10 * time.Second), End: exportTime.Add(-6 * time.Second)}, // before boot: wraps
	}
	b, err := flowgen.AppendNetFlow5(nil, h, flows)
	if err != nil {
		t.Fatal(err)
	}
	p := decodeNetFlow5(t, b)
	if r := p.Records[0]; r.First != 5000 || r.Last != 5000 {
		t.Errorf("first %d last %d, want the uptime 5000", r.First, r.Last)
	}
	if r := p.Records[1]; r.First != uint32(math.MaxUint32-4999) || r.Last != uint32(math.MaxUint32-999) {
		t.Errorf("first %d last %d, want -5000 and -1000 modulo 2^32", r.First, r.Last)
	}
}

func TestAppendNetFlow5Errors(t *testing.T) {
	h := flowgen.NetFlow5Header{Time: exportTime}
	for _, tc := range []struct {
		name  string
		h     flowgen.NetFlow5Header
		flows []flowgen.Flow
		is    error
	}{
		{name: "31 records", h: h, flows: v5Flows(31), is: flowgen.ErrTooManyRecords},
		{name: "ipv6 flow", h: h, flows: []flowgen.Flow{{Src: v4a, Dst: v6a}}},
		{name: "packets past 32 bits", h: h, flows: []flowgen.Flow{{Src: v4a, Dst: v4b, Packets: 1 << 32}}},
		{name: "bytes past 32 bits", h: h, flows: []flowgen.Flow{{Src: v4a, Dst: v4b, Bytes: 1 << 32}}},
		{name: "interface past 16 bits", h: h, flows: []flowgen.Flow{{Src: v4a, Dst: v4b, OutIf: 1 << 16}}},
		{name: "sampling mode past 2 bits", h: flowgen.NetFlow5Header{SamplingMode: 4}},
		{name: "sampling interval past 14 bits", h: flowgen.NetFlow5Header{SamplingInterval: 0x4000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("kept")
			got, err := flowgen.AppendNetFlow5(dst, tc.h, tc.flows)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v, want %v", err, tc.is)
			}
			if string(got) != "kept" {
				t.Errorf("dst changed to %q", got)
			}
		})
	}
}

// TestAppendNetFlow5Bytes pins a datagram byte for byte, written out by hand
// from Cisco's NetFlow v5 format.
func TestAppendNetFlow5Bytes(t *testing.T) {
	h := flowgen.NetFlow5Header{
		Uptime: 0x01020304 * time.Millisecond, Time: time.Unix(0x05060708, 0x090a0b0c),
		Sequence: 0x0d0e0f10, EngineType: 0x11, EngineID: 0x12, SamplingMode: 2, SamplingInterval: 0x0100,
	}
	f := flowgen.Flow{
		Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"),
		InIf: 0x0102, OutIf: 0x0304, Packets: 0x05060708, Bytes: 0x090a0b0c,
		Start: h.Time.Add(-h.Uptime).Add(0x11 * time.Millisecond), End: h.Time.Add(-h.Uptime).Add(0x22 * time.Millisecond),
		SrcPort: 0x1314, DstPort: 0x1516, TCPFlags: 0x17, Proto: 0x06,
	}
	got, err := flowgen.AppendNetFlow5(nil, h, []flowgen.Flow{f})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0x00, 0x05, 0x00, 0x01, // version, count
		0x01, 0x02, 0x03, 0x04, // sys_uptime
		0x05, 0x06, 0x07, 0x08, // unix_secs
		0x09, 0x0a, 0x0b, 0x0c, // unix_nsecs
		0x0d, 0x0e, 0x0f, 0x10, // flow_sequence
		0x11, 0x12, // engine type, id
		0x81, 0x00, // sampling: mode 2, interval 0x100
		10, 0, 0, 1, 10, 0, 0, 2, 0, 0, 0, 0, // src, dst, next hop
		0x01, 0x02, 0x03, 0x04, // input, output
		0x05, 0x06, 0x07, 0x08, // dPkts
		0x09, 0x0a, 0x0b, 0x0c, // dOctets
		0x00, 0x00, 0x00, 0x11, // First
		0x00, 0x00, 0x00, 0x22, // Last
		0x13, 0x14, 0x15, 0x16, // ports
		0x00, 0x17, 0x06, 0x00, // pad1, tcp_flags, prot, tos
		0x00, 0x00, 0x00, 0x00, // src_as, dst_as
		0x00, 0x00, 0x00, 0x00, // src_mask, dst_mask, pad2
	}
	if !bytes.Equal(got, want) {
		t.Errorf("datagram\n got % x\nwant % x", got, want)
	}
}

func TestAppendNetFlow5Allocs(t *testing.T) {
	flows := v5Flows(flowgen.MaxNetFlow5Records)
	h := flowgen.NetFlow5Header{Time: exportTime, Uptime: time.Hour}
	buf := make([]byte, 0, 2048)
	allocs := testing.AllocsPerRun(100, func() {
		buf, _ = flowgen.AppendNetFlow5(buf[:0], h, flows)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per datagram, want 0", allocs)
	}
}
