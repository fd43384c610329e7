package ingest

import (
	"net/netip"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/flow"
	fg "github.com/kapkan-io/kapkan/ingest/flowgen"
)

// netflowFastDatagrams are NetFlow v9 and IPFIX datagrams of many layouts:
// every time encoding, sampler ids, in-record sampling, fragments, ICMP,
// IPv6, each template sent first, then data-only datagrams.
func netflowFastDatagrams() [][]byte {
	var out [][]byte
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	flows := []fg.Flow{
		{Src: netip.MustParseAddr("198.51.100.1"), Dst: netip.MustParseAddr("203.0.113.1"), Proto: fg.ProtoUDP, SrcPort: 53, DstPort: 999,
			Packets: 3, Bytes: 4000, Start: t0.Add(-3 * time.Second), End: t0.Add(-time.Second), SamplerID: 2, SamplingRate: 512},
		{Src: netip.MustParseAddr("198.51.100.2"), Dst: netip.MustParseAddr("203.0.113.2"), Proto: fg.ProtoICMP, DstPort: 8 << 8,
			Packets: 1, Bytes: 84, Start: t0.Add(-time.Second), End: t0, SamplerID: 1, Fragment: true},
		{Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8:1::1"), Proto: fg.ProtoTCP, SrcPort: 1, DstPort: 443,
			TCPFlags: fg.TCPSyn, Packets: 10, Bytes: 600, Start: t0.Add(-5 * time.Second), End: t0.Add(-2 * time.Second), SamplerID: 2},
	}
	for _, version := range []uint16{fg.VersionNetFlow9, fg.VersionIPFIX} {
		for ti, times := range []fg.Times{fg.TimesDefault, fg.TimesSysUpTime, fg.TimesSeconds, fg.TimesMilliseconds,
			fg.TimesMicroseconds, fg.TimesNanoseconds, fg.TimesDeltaMicroseconds, fg.TimesNone} {
			extra := []fg.Field{{ID: fg.IESamplerID, Len: 1}, {ID: fg.IEFragmentFlags, Len: 1}, {ID: fg.IESamplingInterval, Len: 4}}
			if version == fg.VersionIPFIX {
				extra = append(extra, fg.Field{ID: 4000, Len: 4, Enterprise: 9}) // an enterprise field, skipped
			}
			e := &fg.Exporter{Version: version, DomainID: uint32(ti), Now: t0}
			t4 := fg.Template{ID: 256, Fields: fg.FlowFields(version, fg.IPv4, times, extra...)}
			t6 := fg.Template{ID: 257, Fields: fg.FlowFields(version, fg.IPv6, times, extra...)}
			opt := fg.SamplingOptions(version, 258)
			out = append(out, e.Datagram(fg.TemplateSet(t4, t6, opt), fg.OptionsDataSet(opt, fg.Options{SamplingRate: 100})))
			for range 3 {
				e.Now = e.Now.Add(time.Second)
				out = append(out, e.Datagram(fg.DataSet(t4, flows[0], flows[1]), fg.DataSet(t6, flows[2])))
			}
			e.Sequence += 3 // a gap
			out = append(out, e.Datagram(fg.DataSet(t4, flows[1])))
		}
	}
	return out
}

// TestNetFlowFastPathMatchesGoflow2 decodes every NetFlow v9 and IPFIX
// datagram of the corpus and of the generator through the fast path and
// through goflow2, and requires the same records, results and sequence
// accounting.
func TestNetFlowFastPathMatchesGoflow2(t *testing.T) {
	type dg struct {
		src     netip.Addr
		payload []byte
	}
	var dgs []dg
	for _, f := range []flow.Format{flow.FormatNetFlow9, flow.FormatIPFIX} {
		for _, c := range corpusDatagrams(t, f) {
			dgs = append(dgs, dg{c.src, c.payload})
		}
	}
	for _, p := range netflowFastDatagrams() {
		dgs = append(dgs, dg{netip.MustParseAddr("192.0.2.7"), p})
	}
	fast, slow := newCollector(Options{}), newCollector(Options{})
	slow.d.noFastPath = true
	for i, d := range dgs {
		now := time.Unix(1_800_000_000, int64(i))
		before := len(fast.records)
		rf, errF := fast.d.Decode(d.payload, d.src, now, fast.b)
		rs, errS := slow.d.Decode(d.payload, d.src, now, slow.b)
		if rf != rs || (errF == nil) != (errS == nil) {
			t.Fatalf("datagram %d: fast %+v %v, goflow2 %+v %v", i, rf, errF, rs, errS)
		}
		fast.b.Flush()
		slow.b.Flush()
		if len(fast.records) != len(slow.records) {
			t.Fatalf("datagram %d: %d records fast, %d through goflow2", i, len(fast.records), len(slow.records))
		}
		for j := before; j < len(fast.records); j++ {
			if fast.records[j] != slow.records[j] {
				t.Fatalf("datagram %d record %d differs:\nfast    %+v\ngoflow2 %+v", i, j, fast.records[j], slow.records[j])
			}
		}
	}
	for _, lbl := range []string{"192.0.2.7"} {
		for _, f := range []string{"netflow9", "ipfix"} {
			g1 := fast.d.metrics.sequenceGaps.WithLabelValues(lbl, f)
			g2 := slow.d.metrics.sequenceGaps.WithLabelValues(lbl, f)
			if v1, v2 := counterValue(g1), counterValue(g2); v1 != v2 || v1 == 0 {
				t.Errorf("%s sequence gaps %v fast, %v goflow2 (want equal and non-zero)", f, v1, v2)
			}
		}
	}
	t.Logf("%d datagrams, %d records", len(dgs), len(fast.records))
}

// TestNetFlowFastPathTakesDataAndAllocatesNothing: data-only datagrams of a
// known fixed-length template take the fast path, without allocating.
func TestNetFlowFastPathTakesDataAndAllocatesNothing(t *testing.T) {
	dgs := netflowFastDatagrams()
	d := New(Options{}, Deps{Logger: newDiscardLogger()})
	b := NewBatcher(nil, &discardSink{})
	now := time.Unix(1_800_000_000, 0)
	_, _ = d.Decode(dgs[0], exporterA, now, b) // templates and options
	st := d.exporters[exporterA]
	var res Result
	res.Format = flow.FormatNetFlow9
	if !d.decodeNetFlowFast(st, dgs[1], now.UnixNano(), b, &res) || res.Records != 3 {
		t.Fatalf("data datagram not taken by the fast path: %+v", res)
	}
	allocs := testing.AllocsPerRun(1000, func() { _, _ = d.Decode(dgs[1], exporterA, now, b) })
	if allocs > 0 {
		t.Fatalf("%.1f allocations per datagram", allocs)
	}
	// A datagram with a template goes to goflow2.
	res = Result{Format: flow.FormatNetFlow9}
	if d.decodeNetFlowFast(st, dgs[0], now.UnixNano(), b, &res) {
		t.Fatal("a template datagram took the fast path")
	}
}
