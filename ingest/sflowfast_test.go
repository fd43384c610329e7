package ingest

import (
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kapkan-io/kapkan/flow"
	fg "github.com/kapkan-io/kapkan/ingest/flowgen"
)

// fastPathDatagrams are sFlow datagrams of every layout the generator makes.
func fastPathDatagrams() [][]byte {
	var out [][]byte
	flows := []fg.Flow{
		{Src: netip.MustParseAddr("198.51.100.1"), Dst: netip.MustParseAddr("203.0.113.1"), Proto: fg.ProtoUDP, SrcPort: 53, DstPort: 999, FrameLen: 1400},
		{Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8:1::1"), Proto: fg.ProtoTCP, SrcPort: 1, DstPort: 443, TCPFlags: fg.TCPSyn, FrameLen: 80},
		{Src: netip.MustParseAddr("198.51.100.1"), Dst: netip.MustParseAddr("203.0.113.1"), Proto: fg.ProtoUDP, Fragment: true, FragmentOffset: 185, FrameLen: 1500},
		{Src: netip.MustParseAddr("198.51.100.1"), Dst: netip.MustParseAddr("203.0.113.1"), Proto: fg.ProtoICMP, DstPort: 8 << 8, FrameLen: 100},
		{}, // ARP: a non-IP sample
	}
	seq := uint32(0)
	for _, f := range flows {
		for _, s := range []fg.SFlowSample{
			{Flow: f}, {Flow: f, VLAN: 7}, {Flow: f, Expanded: true}, {Flow: f, Record: fg.RecordSampledIP},
			{Flow: f, Header: fg.HeaderIPv4}, {Flow: f, Header: fg.HeaderIPv6},
		} {
			if !f.Src.IsValid() && (s.Record == fg.RecordSampledIP || s.Header != 0) {
				continue
			}
			seq++
			if len(out)%5 == 4 {
				seq += 3 // a gap now and then, for the sequence accounting
			}
			s.Sequence, s.SamplingRate, s.SourceIndex = seq, 1000, 3
			counter := fg.SFlowSample{Counters: &fg.IfCounters{}, Sequence: seq}
			out = append(out, fg.AppendSFlow(nil, fg.SFlowHeader{Agent: netip.MustParseAddr("192.0.2.1"), Sequence: seq}, []fg.SFlowSample{s, counter, s}))
		}
	}
	return out
}

// TestSFlowFastPathMatchesGoflow2 decodes every sFlow datagram of the corpus
// and of the generator through the fast path and through goflow2, and
// requires the same records, results, errors and sequence accounting.
func TestSFlowFastPathMatchesGoflow2(t *testing.T) {
	type dg struct {
		src     netip.Addr
		payload []byte
	}
	var dgs []dg
	for _, c := range corpusDatagrams(t, flow.FormatSFlow5) {
		dgs = append(dgs, dg{c.src, c.payload})
	}
	for _, p := range fastPathDatagrams() {
		dgs = append(dgs, dg{netip.MustParseAddr("192.0.2.1"), p})
	}
	fast, slow := newCollector(Options{}), newCollector(Options{})
	slow.d.noFastPath = true
	usedFast := 0
	for i, d := range dgs {
		if sflowFastOK(d.payload) {
			usedFast++
		}
		now := time.Unix(1_800_000_000, int64(i))
		rf, errF := fast.d.Decode(d.payload, d.src, now, fast.b)
		rs, errS := slow.d.Decode(d.payload, d.src, now, slow.b)
		if rf != rs || (errF == nil) != (errS == nil) {
			t.Fatalf("datagram %d: fast %+v %v, goflow2 %+v %v", i, rf, errF, rs, errS)
		}
	}
	fast.b.Flush()
	slow.b.Flush()
	if usedFast < len(dgs)/2 {
		t.Errorf("the fast path took only %d of %d datagrams", usedFast, len(dgs))
	}
	if len(fast.records) != len(slow.records) {
		t.Fatalf("%d records fast, %d through goflow2", len(fast.records), len(slow.records))
	}
	for i := range fast.records {
		if fast.records[i] != slow.records[i] {
			t.Fatalf("record %d differs:\nfast    %+v\ngoflow2 %+v", i, fast.records[i], slow.records[i])
		}
	}
	for _, lbl := range []string{"192.0.2.1"} {
		g1 := testutil.ToFloat64(fast.d.metrics.sequenceGaps.WithLabelValues(lbl, "sflow5"))
		g2 := testutil.ToFloat64(slow.d.metrics.sequenceGaps.WithLabelValues(lbl, "sflow5"))
		if g1 != g2 || g1 == 0 {
			t.Errorf("sequence gaps %v fast, %v goflow2 (want equal and non-zero)", g1, g2)
		}
	}
	t.Logf("%d datagrams, %d through the fast path, %d records", len(dgs), usedFast, len(fast.records))
}

// TestSFlowFastPathAllocatesNothing: the fast path decodes a datagram into
// a batch without allocating.
func TestSFlowFastPathAllocatesNothing(t *testing.T) {
	p := fastPathDatagrams()[0]
	if !sflowFastOK(p) {
		t.Fatal("generated datagram not taken by the fast path")
	}
	d := New(Options{}, Deps{Logger: newDiscardLogger()})
	b := NewBatcher(nil, &discardSink{})
	now := time.Unix(1_800_000_000, 0)
	_, _ = d.Decode(p, exporterA, now, b)
	allocs := testing.AllocsPerRun(1000, func() { _, _ = d.Decode(p, exporterA, now, b) })
	if allocs > 0 {
		t.Fatalf("%.1f allocations per datagram", allocs)
	}
}
