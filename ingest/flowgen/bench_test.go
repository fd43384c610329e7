package flowgen_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/ingest/flowgen"
)

// benchSamples returns n seeded flow samples with the mix of an edge router:
// mostly Ethernet IPv4 TCP and UDP, some IPv6, VLAN tags, fragments, ICMP.
func benchSamples(n int) []flowgen.SFlowSample {
	rng := rand.New(rand.NewPCG(1, 2))
	samples := make([]flowgen.SFlowSample, n)
	for i := range samples {
		f := flowgen.Flow{
			SrcPort:  uint16(rng.IntN(65536)),
			DstPort:  []uint16{53, 80, 123, 443, 11211}[rng.IntN(5)],
			FrameLen: uint32(64 + rng.IntN(1455)),
		}
		if rng.IntN(5) == 0 {
			f.Src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(rng.IntN(256))})
			f.Dst = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 1, 15: byte(rng.IntN(256))})
		} else {
			f.Src = netip.AddrFrom4([4]byte{byte(rng.IntN(224)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
			f.Dst = netip.AddrFrom4([4]byte{198, 51, 100, byte(rng.IntN(256))})
		}
		switch rng.IntN(10) {
		case 0, 1, 2, 3, 4:
			f.Proto, f.TCPFlags = flowgen.ProtoTCP, []uint8{flowgen.TCPSyn, flowgen.TCPAck, flowgen.TCPAck | flowgen.TCPPsh}[rng.IntN(3)]
		case 5, 6, 7:
			f.Proto = flowgen.ProtoUDP
		case 8:
			f.Proto, f.Fragment = flowgen.ProtoUDP, true
		default:
			f.Proto, f.DstPort = flowgen.ProtoICMP, 8<<8
			if f.Family() == flowgen.IPv6 {
				f.Proto = flowgen.ProtoICMPv6
			}
		}
		samples[i] = flowgen.SFlowSample{
			Sequence: uint32(i), SourceIndex: 3, SamplingRate: 4096, SamplePool: uint32(i) * 4096,
			Input: 3, Output: 7, Flow: f,
		}
		if rng.IntN(4) == 0 {
			samples[i].VLAN = uint16(1 + rng.IntN(4094))
		}
	}
	return samples
}

// BenchmarkAppendSFlow measures building sFlow datagrams of raw header samples
// into a reused buffer: samples/s and allocations per datagram (0).
func BenchmarkAppendSFlow(b *testing.B) {
	for _, n := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("samples=%d", n), func(b *testing.B) {
			samples := benchSamples(n)
			h := flowgen.SFlowHeader{Agent: netip.MustParseAddr("192.0.2.1"), Uptime: time.Hour}
			buf := make([]byte, 0, 256*n+64)
			b.ReportAllocs()
			for b.Loop() {
				h.Sequence++
				buf = flowgen.AppendSFlow(buf[:0], h, samples)
			}
			b.SetBytes(int64(len(buf)))
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

// BenchmarkAppendNetFlow5 measures full NetFlow v5 datagrams (30 records).
func BenchmarkAppendNetFlow5(b *testing.B) {
	flows := v5Flows(flowgen.MaxNetFlow5Records)
	h := flowgen.NetFlow5Header{Time: exportTime, Uptime: time.Hour}
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = flowgen.AppendNetFlow5(buf[:0], h, flows)
	}
	b.ReportMetric(float64(b.N*len(flows))/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkExporterIPFIX measures IPFIX messages of 20 records.
func BenchmarkExporterIPFIX(b *testing.B) {
	flows := make([]flowgen.Flow, 0, 20)
	for len(flows) < 20 {
		flows = append(flows, testFlows(flowgen.IPv4)...)
	}
	flows = flows[:20]
	tpl := flowgen.Template{ID: 256, Fields: flowgen.FlowFields(10, flowgen.IPv4, flowgen.TimesDefault)}
	e := &flowgen.Exporter{Version: 10, Now: exportTime}
	set := flowgen.DataSet(tpl, flows...)
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = e.AppendDatagram(buf[:0], set)
	}
	b.ReportMetric(float64(b.N*len(flows))/b.Elapsed().Seconds(), "records/s")
}
