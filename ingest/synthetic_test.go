package ingest

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kapkan-io/kapkan/flow"
	fg "github.com/kapkan-io/kapkan/ingest/flowgen"
)

var (
	exporterA = netip.MustParseAddr("192.0.2.1")
	exporterB = netip.MustParseAddr("192.0.2.2")
	tExport   = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
)

// collect decodes datagrams from one exporter, in order, and returns the
// records and the decoder.
type collector struct {
	d       *Decoder
	records []flow.Record
	b       *Batcher
}

func newCollector(opts Options) *collector {
	c := &collector{d: New(opts, Deps{Logger: newDiscardLogger()})}
	c.b = NewBatcher(nil, flow.SinkFunc(func(b *flow.Batch) {
		c.records = append(c.records, b.Valid()...)
		flow.DefaultPool.Put(b)
	}))
	return c
}

func (c *collector) feed(t *testing.T, from netip.Addr, dgs ...[]byte) {
	t.Helper()
	for _, dg := range dgs {
		if _, err := c.d.Decode(dg, from, tExport, c.b); err != nil {
			t.Fatalf("decode: %v", err)
		}
	}
	c.b.Flush()
}

func v4flow(src, dst string, sport, dport uint16, pkts, bytes uint64) fg.Flow {
	return fg.Flow{
		Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), SrcPort: sport, DstPort: dport,
		Proto: fg.ProtoUDP, Packets: pkts, Bytes: bytes,
		Start: tExport.Add(-10 * time.Second), End: tExport.Add(-time.Second),
	}
}

func checkRecord(t *testing.T, r flow.Record, f fg.Flow, rate uint32, src flow.SamplingSource) {
	t.Helper()
	if r.SrcAddr() != f.Src.Unmap() || r.DstAddr() != f.Dst.Unmap() || r.SrcPort != f.SrcPort || r.DstPort != f.DstPort ||
		r.Proto != f.Proto || r.Packets != f.Packets || r.Bytes != f.Bytes {
		t.Errorf("record %s:%d → %s:%d proto %d %d pkts %d bytes; want %s:%d → %s:%d proto %d %d pkts %d bytes",
			r.SrcAddr(), r.SrcPort, r.DstAddr(), r.DstPort, r.Proto, r.Packets, r.Bytes,
			f.Src, f.SrcPort, f.Dst, f.DstPort, f.Proto, f.Packets, f.Bytes)
	}
	if r.SamplingRate != rate || r.Sampling != src {
		t.Errorf("sampling %d (%s), want %d (%s)", r.SamplingRate, r.Sampling, rate, src)
	}
	if !f.Start.IsZero() && (r.Start != f.Start.UnixNano() || r.End != f.End.UnixNano()) {
		t.Errorf("times %s..%s, want %s..%s", time.Unix(0, r.Start).UTC(), time.Unix(0, r.End).UTC(), f.Start, f.End)
	}
}

func TestNetFlow9TemplateAfterData(t *testing.T) {
	tpl := fg.Template{ID: 300, Fields: fg.FlowFields(fg.VersionNetFlow9, fg.IPv4, fg.TimesDefault)}
	e := &fg.Exporter{Version: fg.VersionNetFlow9, DomainID: 7, Now: tExport}
	f1 := v4flow("198.51.100.1", "203.0.113.1", 53, 4000, 10, 1500)
	f2 := v4flow("198.51.100.2", "203.0.113.2", 123, 4001, 20, 2500)
	c := newCollector(Options{})
	c.feed(t, exporterA, e.Datagram(fg.DataSet(tpl, f1)))
	if len(c.records) != 0 {
		t.Fatalf("data without its template produced %d records", len(c.records))
	}
	c.feed(t, exporterA, e.Datagram(fg.TemplateSet(tpl), fg.DataSet(tpl, f2)))
	if len(c.records) != 2 {
		t.Fatalf("got %d records after the template, want 2 (the buffered one too)", len(c.records))
	}
	// The buffered record comes first: records keep their arrival order.
	checkRecord(t, c.records[0], f1, 1, flow.SamplingDefault)
	checkRecord(t, c.records[1], f2, 1, flow.SamplingDefault)
	if got := testutil.ToFloat64(c.d.metrics.pendingSets.WithLabelValues("192.0.2.1", "netflow9", "decoded")); got != 1 {
		t.Errorf("pending decoded = %v, want 1", got)
	}
}

func TestIPFIXTemplateAfterDataInOneMessage(t *testing.T) {
	tpl := fg.Template{ID: 256, Fields: fg.FlowFields(fg.VersionIPFIX, fg.IPv4, fg.TimesDefault)}
	e := &fg.Exporter{Version: fg.VersionIPFIX, DomainID: 1, Now: tExport}
	f := v4flow("198.51.100.1", "203.0.113.1", 53, 4000, 3, 300)
	c := newCollector(Options{})
	c.feed(t, exporterA, e.Datagram(fg.DataSet(tpl, f), fg.TemplateSet(tpl)))
	if len(c.records) != 1 {
		t.Fatalf("got %d records, want 1", len(c.records))
	}
	checkRecord(t, c.records[0], f, 1, flow.SamplingDefault)
}

func TestPendingDataIsNeverDecodedWithAnEarlierTemplate(t *testing.T) {
	// Template 256 is known; data for template 257 arrives, then 257 is
	// defined: the buffered data must be decoded with 257, not anything else.
	t256 := fg.Template{ID: 256, Fields: fg.FlowFields(fg.VersionIPFIX, fg.IPv4, fg.TimesDefault)}
	t257 := fg.Template{ID: 257, Fields: fg.FlowFields(fg.VersionIPFIX, fg.IPv6, fg.TimesDefault)}
	e := &fg.Exporter{Version: fg.VersionIPFIX, DomainID: 1, Now: tExport}
	f6 := fg.Flow{Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8:1::1"), SrcPort: 1, DstPort: 2,
		Proto: fg.ProtoTCP, Packets: 1, Bytes: 60, Start: tExport.Add(-time.Second), End: tExport}
	c := newCollector(Options{})
	c.feed(t, exporterA, e.Datagram(fg.TemplateSet(t256)), e.Datagram(fg.DataSet(t257, f6)))
	if len(c.records) != 0 {
		t.Fatal("data decoded before its template")
	}
	c.feed(t, exporterA, e.Datagram(fg.TemplateSet(t257)))
	if len(c.records) != 1 {
		t.Fatalf("%d records", len(c.records))
	}
	checkRecord(t, c.records[0], f6, 1, flow.SamplingDefault)
	if c.records[0].Flags&flow.FlagIPv6 == 0 {
		t.Error("IPv6 record not flagged")
	}
}

func TestTemplateRedefinedMidStream(t *testing.T) {
	v4 := fg.Template{ID: 256, Fields: fg.FlowFields(fg.VersionNetFlow9, fg.IPv4, fg.TimesDefault)}
	v6 := fg.Template{ID: 256, Fields: fg.FlowFields(fg.VersionNetFlow9, fg.IPv6, fg.TimesDefault)}
	e := &fg.Exporter{Version: fg.VersionNetFlow9, DomainID: 1, Now: tExport}
	f4 := v4flow("198.51.100.1", "203.0.113.1", 53, 4000, 10, 1500)
	f6 := fg.Flow{Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8:1::1"), SrcPort: 443, DstPort: 5000,
		Proto: fg.ProtoTCP, Packets: 5, Bytes: 700, Start: tExport.Add(-2 * time.Second), End: tExport}
	c := newCollector(Options{})
	c.feed(t, exporterA,
		e.Datagram(fg.TemplateSet(v4), fg.DataSet(v4, f4)),
		e.Datagram(fg.TemplateSet(v6), fg.DataSet(v6, f6)),
	)
	if len(c.records) != 2 {
		t.Fatalf("%d records", len(c.records))
	}
	checkRecord(t, c.records[0], f4, 1, flow.SamplingDefault)
	checkRecord(t, c.records[1], f6, 1, flow.SamplingDefault)
}

func TestTwoExportersSameTemplateID(t *testing.T) {
	// Both exporters use template 256 and domain 0 with different layouts.
	ta := fg.Template{ID: 256, Fields: fg.FlowFields(fg.VersionIPFIX, fg.IPv4, fg.TimesMilliseconds)}
	tb := fg.Template{ID: 256, Fields: fg.FlowFields(fg.VersionIPFIX, fg.IPv6, fg.TimesSeconds)}
	ea := &fg.Exporter{Version: fg.VersionIPFIX, Now: tExport}
	eb := &fg.Exporter{Version: fg.VersionIPFIX, Now: tExport}
	fa := v4flow("198.51.100.1", "203.0.113.1", 53, 4000, 10, 1500)
	fb := fg.Flow{Src: netip.MustParseAddr("2001:db8::7"), Dst: netip.MustParseAddr("2001:db8:1::7"), SrcPort: 123, DstPort: 9,
		Proto: fg.ProtoUDP, Packets: 3, Bytes: 1400, Start: tExport.Add(-3 * time.Second), End: tExport.Add(-time.Second)}
	c := newCollector(Options{})
	c.feed(t, exporterA, ea.Datagram(fg.TemplateSet(ta)))
	c.feed(t, exporterB, eb.Datagram(fg.TemplateSet(tb)))
	c.feed(t, exporterA, ea.Datagram(fg.DataSet(ta, fa)))
	c.feed(t, exporterB, eb.Datagram(fg.DataSet(tb, fb)))
	if len(c.records) != 2 {
		t.Fatalf("%d records", len(c.records))
	}
	checkRecord(t, c.records[0], fa, 1, flow.SamplingDefault)
	checkRecord(t, c.records[1], fb, 1, flow.SamplingDefault)
	if c.records[0].ExporterAddr() != exporterA || c.records[1].ExporterAddr() != exporterB {
		t.Error("records carry the wrong exporter")
	}
}

func TestSamplingFromOptions(t *testing.T) {
	f := v4flow("198.51.100.1", "203.0.113.1", 53, 4000, 10, 1500)
	tests := []struct {
		name    string
		version uint16
		sets    func(flowTpl fg.Template) [][]fg.Set
		sampler uint32 // written in each record when the template has IE 48/302
		extra   []fg.Field
		rate    uint32
		source  flow.SamplingSource
	}{
		{
			name: "v9 options scoped by sampler id", version: fg.VersionNetFlow9,
			extra: []fg.Field{{ID: fg.IESamplerID, Len: 1}}, sampler: 2,
			sets: func(ft fg.Template) [][]fg.Set {
				ot := fg.V9SamplerOptions(257, true)
				return [][]fg.Set{{fg.TemplateSet(ot, ft),
					fg.OptionsDataSet(ot, fg.Options{SamplerID: 1, SamplerMode: fg.SamplingRandom, SamplingRate: 100},
						fg.Options{SamplerID: 2, SamplerMode: fg.SamplingRandom, SamplingRate: 1000}),
					fg.DataSet(ft, withSampler(f, 2))}}
			},
			rate: 1000, source: flow.SamplingOptions,
		},
		{
			name: "ipfix PSAMP selector interval and space", version: fg.VersionIPFIX,
			extra: []fg.Field{{ID: fg.IESelectorID, Len: 8}}, sampler: 9,
			sets: func(ft fg.Template) [][]fg.Set {
				ot := fg.PSAMPOptions(258)
				return [][]fg.Set{{fg.TemplateSet(ot, ft),
					fg.OptionsDataSet(ot, fg.Options{SamplerID: 9, SelectorAlgorithm: fg.SelectorSystematicCount, PacketInterval: 2, PacketSpace: 1022}),
					fg.DataSet(ft, withSampler(f, 9))}}
			},
			rate: 512, source: flow.SamplingOptions,
		},
		{
			name: "ipfix options for the whole domain", version: fg.VersionIPFIX,
			sets: func(ft fg.Template) [][]fg.Set {
				ot := fg.SamplingOptions(fg.VersionIPFIX, 259)
				return [][]fg.Set{{fg.TemplateSet(ot, ft), fg.OptionsDataSet(ot, fg.Options{SamplingRate: 2048}), fg.DataSet(ft, f)}}
			},
			rate: 2048, source: flow.SamplingOptions,
		},
		{
			name: "options after the data in the same datagram", version: fg.VersionNetFlow9,
			sets: func(ft fg.Template) [][]fg.Set {
				ot := fg.SamplingOptions(fg.VersionNetFlow9, 259)
				return [][]fg.Set{{fg.TemplateSet(ot, ft), fg.DataSet(ft, f), fg.OptionsDataSet(ot, fg.Options{SamplingRate: 64})}}
			},
			rate: 64, source: flow.SamplingOptions,
		},
		{
			name: "options template after its data, in a later datagram", version: fg.VersionIPFIX,
			sets: func(ft fg.Template) [][]fg.Set {
				ot := fg.SamplingOptions(fg.VersionIPFIX, 259)
				return [][]fg.Set{
					{fg.TemplateSet(ft), fg.OptionsDataSet(ot, fg.Options{SamplingRate: 300})},
					{fg.TemplateSet(ot), fg.DataSet(ft, f)},
				}
			},
			rate: 300, source: flow.SamplingOptions,
		},
		{
			name: "rate inside the record", version: fg.VersionIPFIX,
			extra: []fg.Field{{ID: fg.IESamplingInterval, Len: 4}},
			sets: func(ft fg.Template) [][]fg.Set {
				g := f
				g.SamplingRate = 4096
				return [][]fg.Set{{fg.TemplateSet(ft), fg.DataSet(ft, g)}}
			},
			rate: 4096, source: flow.SamplingRecord,
		},
		{
			name: "nothing said: the default", version: fg.VersionNetFlow9,
			sets: func(ft fg.Template) [][]fg.Set {
				return [][]fg.Set{{fg.TemplateSet(ft), fg.DataSet(ft, f)}}
			},
			rate: 33, source: flow.SamplingDefault,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ft := fg.Template{ID: 256, Fields: fg.FlowFields(tc.version, fg.IPv4, fg.TimesDefault, tc.extra...)}
			e := &fg.Exporter{Version: tc.version, DomainID: 5, Now: tExport}
			c := newCollector(Options{DefaultSamplingRate: 33})
			for _, sets := range tc.sets(ft) {
				c.feed(t, exporterA, e.Datagram(sets...))
			}
			if len(c.records) != 1 {
				t.Fatalf("%d records", len(c.records))
			}
			checkRecord(t, c.records[0], f, tc.rate, tc.source)
		})
	}
}

func withSampler(f fg.Flow, id uint32) fg.Flow { f.SamplerID = id; return f }

func TestNetFlow5HeaderSampling(t *testing.T) {
	f := v4flow("198.51.100.1", "203.0.113.1", 53, 4000, 10, 1500)
	f.Start, f.End = tExport.Add(-20*time.Second), tExport.Add(-5*time.Second)
	for _, tc := range []struct {
		name     string
		interval uint16
		mode     uint8
		override uint32
		rate     uint32
		source   flow.SamplingSource
	}{
		{"interval 1000", 1000, 2, 0, 1000, flow.SamplingHeader},
		{"interval 0 is unknown, not 1", 0, 0, 0, 7, flow.SamplingDefault},
		{"override wins", 1000, 2, 50, 50, flow.SamplingOverride},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dg, err := fg.AppendNetFlow5(nil, fg.NetFlow5Header{Uptime: time.Hour, Time: tExport, SamplingMode: tc.mode, SamplingInterval: tc.interval}, []fg.Flow{f})
			if err != nil {
				t.Fatal(err)
			}
			opts := Options{DefaultSamplingRate: 7}
			if tc.override != 0 {
				opts.Exporters = map[netip.Addr]ExporterOptions{exporterA: {SamplingRate: tc.override}}
			}
			c := newCollector(opts)
			c.feed(t, exporterA, dg)
			if len(c.records) != 1 {
				t.Fatalf("%d records", len(c.records))
			}
			checkRecord(t, c.records[0], f, tc.rate, tc.source)
		})
	}
}

func TestSFlowHeaderKinds(t *testing.T) {
	v4 := fg.Flow{Src: netip.MustParseAddr("198.51.100.1"), Dst: netip.MustParseAddr("203.0.113.1"), SrcPort: 53, DstPort: 4444,
		Proto: fg.ProtoUDP, FrameLen: 1400}
	v6 := fg.Flow{Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8:1::1"), SrcPort: 5555, DstPort: 443,
		Proto: fg.ProtoTCP, TCPFlags: fg.TCPSyn, FrameLen: 80}
	for _, tc := range []struct {
		name   string
		sample fg.SFlowSample
	}{
		{"ethernet ipv4", fg.SFlowSample{Header: fg.HeaderEthernet, Flow: v4}},
		{"ethernet vlan ipv6", fg.SFlowSample{Header: fg.HeaderEthernet, VLAN: 42, Flow: v6}},
		{"raw ipv4 header", fg.SFlowSample{Header: fg.HeaderIPv4, Flow: v4}},
		{"raw ipv6 header", fg.SFlowSample{Header: fg.HeaderIPv6, Flow: v6}},
		{"expanded sample", fg.SFlowSample{Expanded: true, Flow: v4}},
		{"sampled ipv4 record, no header", fg.SFlowSample{Record: fg.RecordSampledIP, Flow: v4}},
		{"sampled ipv6 record, no header", fg.SFlowSample{Record: fg.RecordSampledIP, Flow: v6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.sample
			s.SamplingRate, s.Sequence = 2000, 1
			dg := fg.AppendSFlow(nil, fg.SFlowHeader{Agent: exporterA}, []fg.SFlowSample{s, {Counters: &fg.IfCounters{}}})
			c := newCollector(Options{})
			c.feed(t, exporterA, dg)
			if len(c.records) != 1 {
				t.Fatalf("%d records (a counter sample must give none)", len(c.records))
			}
			r, f := c.records[0], s.Flow
			if r.SrcAddr() != f.Src || r.DstAddr() != f.Dst || r.SrcPort != f.SrcPort || r.DstPort != f.DstPort ||
				r.Proto != f.Proto || r.TCPFlags != f.TCPFlags || r.Packets != 1 {
				t.Errorf("record %+v from flow %+v", r, f)
			}
			if r.SamplingRate != 2000 || r.Sampling != flow.SamplingSample {
				t.Errorf("sampling %d %s", r.SamplingRate, r.Sampling)
			}
			if r.Bytes == 0 {
				t.Error("no bytes")
			}
			if (r.Flags&flow.FlagIPv6 != 0) != f.Dst.Is6() {
				t.Error("IPv6 flag wrong")
			}
		})
	}
}

func TestSequenceGapsCounted(t *testing.T) {
	tpl := fg.Template{ID: 256, Fields: fg.FlowFields(fg.VersionIPFIX, fg.IPv4, fg.TimesDefault)}
	e := &fg.Exporter{Version: fg.VersionIPFIX, DomainID: 3, Now: tExport}
	f := v4flow("198.51.100.1", "203.0.113.1", 53, 4000, 10, 1500)
	c := newCollector(Options{})
	c.feed(t, exporterA, e.Datagram(fg.TemplateSet(tpl), fg.DataSet(tpl, f, f)))
	e.Sequence += 5 // five records lost
	c.feed(t, exporterA, e.Datagram(fg.DataSet(tpl, f)))
	c.feed(t, exporterA, e.Datagram(fg.DataSet(tpl, f, f, f)))
	if got := testutil.ToFloat64(c.d.metrics.sequenceGaps.WithLabelValues("192.0.2.1", "ipfix")); got != 5 {
		t.Errorf("IPFIX gap = %v records, want 5", got)
	}
	// NetFlow v9 counts export packets.
	e9 := &fg.Exporter{Version: fg.VersionNetFlow9, DomainID: 3, Now: tExport}
	t9 := fg.Template{ID: 256, Fields: fg.FlowFields(fg.VersionNetFlow9, fg.IPv4, fg.TimesDefault)}
	c.feed(t, exporterB, e9.Datagram(fg.TemplateSet(t9), fg.DataSet(t9, f, f)))
	e9.Sequence += 2
	c.feed(t, exporterB, e9.Datagram(fg.DataSet(t9, f)))
	if got := testutil.ToFloat64(c.d.metrics.sequenceGaps.WithLabelValues("192.0.2.2", "netflow9")); got != 2 {
		t.Errorf("NetFlow v9 gap = %v packets, want 2", got)
	}
	// sFlow counts samples per source.
	s := func(seq uint32) fg.SFlowSample {
		return fg.SFlowSample{Sequence: seq, SourceIndex: 4, SamplingRate: 10, Flow: v4flow("198.51.100.1", "203.0.113.1", 1, 2, 1, 1)}
	}
	sf := netip.MustParseAddr("192.0.2.3")
	c.feed(t, sf, fg.AppendSFlow(nil, fg.SFlowHeader{Agent: sf, Sequence: 1}, []fg.SFlowSample{s(10), s(11)}))
	c.feed(t, sf, fg.AppendSFlow(nil, fg.SFlowHeader{Agent: sf, Sequence: 2}, []fg.SFlowSample{s(15)}))
	if got := testutil.ToFloat64(c.d.metrics.sequenceGaps.WithLabelValues("192.0.2.3", "sflow5")); got != 3 {
		t.Errorf("sFlow gap = %v samples, want 3", got)
	}
}

func TestActiveTimeoutLongerThanWindow(t *testing.T) {
	ot := fg.TimeoutOptions(fg.VersionIPFIX, 260)
	e := &fg.Exporter{Version: fg.VersionIPFIX, DomainID: 1, Now: tExport}
	c := newCollector(Options{Window: 5 * time.Second})
	c.feed(t, exporterA, e.Datagram(fg.TemplateSet(ot), fg.OptionsDataSet(ot, fg.Options{ActiveTimeout: 60, IdleTimeout: 15})))
	st := c.d.exporters[exporterA]
	if st.activeTimeout != 60 || !st.warnedTimeout {
		t.Errorf("active timeout %d warned %v, want 60 and a warning", st.activeTimeout, st.warnedTimeout)
	}
	if got := testutil.ToFloat64(c.d.metrics.activeTimeout.WithLabelValues("192.0.2.1")); got != 60 {
		t.Errorf("gauge %v", got)
	}
}

func TestEmptyTemplateDoesNotHang(t *testing.T) {
	// goflow2 v2.2.6 loops forever on data for a template without fields.
	e := &fg.Exporter{Version: fg.VersionIPFIX, DomainID: 1, Now: tExport}
	dg := e.Datagram(fg.TemplateSet(fg.Template{ID: 256}), fg.RawSet(256, 1, []byte{1, 2, 3, 4}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := newCollector(Options{})
		_, _ = c.d.Decode(dg, exporterA, tExport, c.b)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("decoding a data set of an empty template did not return")
	}
}

func TestGarbageIsCountedNotFatal(t *testing.T) {
	c := newCollector(Options{})
	good := fg.AppendSFlow(nil, fg.SFlowHeader{Agent: exporterA}, []fg.SFlowSample{{SamplingRate: 10, Flow: v4flow("198.51.100.1", "203.0.113.1", 1, 2, 1, 1)}})
	inputs := [][]byte{
		nil, {0}, {0, 9}, {0, 0, 0, 5}, {0, 10, 0, 16}, {0, 5, 0, 30},
		good[:len(good)-10],
		append([]byte{0, 10, 0xff, 0xff}, make([]byte, 70000)...),
		make([]byte, 65535),
	}
	errs := 0
	for _, in := range inputs {
		if _, err := c.d.Decode(in, exporterA, tExport, c.b); err != nil {
			errs++
		}
	}
	if errs < len(inputs)-1 {
		t.Errorf("only %d of %d bad datagrams reported errors", errs, len(inputs))
	}
	total := 0.0
	for _, reason := range []string{reasonTruncated, reasonVersion, reasonMalformed} {
		for _, f := range []string{"unknown", "sflow5", "netflow5", "netflow9", "ipfix"} {
			total += testutil.ToFloat64(c.d.metrics.decodeErrors.WithLabelValues("192.0.2.1", f, reason))
		}
	}
	if int(total) != errs {
		t.Errorf("decode error counter %v, want %d", total, errs)
	}
	// The decoder still works afterwards.
	c.feed(t, exporterA, good)
	if len(c.records) == 0 {
		t.Fatal("a good datagram after garbage gave no record")
	}
}

// TestImplausibleCountsCostNothing: counts that promise more than a
// datagram holds are refused before goflow2 sizes anything from them.
func TestImplausibleCountsCostNothing(t *testing.T) {
	good := fg.AppendSFlow(nil, fg.SFlowHeader{Agent: exporterA}, []fg.SFlowSample{
		{Expanded: true, SamplingRate: 10, Flow: v4flow("198.51.100.1", "203.0.113.1", 1, 2, 1, 1)}})
	bomb := bytes.Clone(good)
	// The expanded flow sample's record count: datagram header (28 bytes),
	// sample format and length (8), then 40 bytes before the count.
	binary.BigEndian.PutUint32(bomb[28+8+40:], 1<<22)
	manySamples := bytes.Clone(good)
	binary.BigEndian.PutUint32(manySamples[24:], 1000)
	v5, err := fg.AppendNetFlow5(nil, fg.NetFlow5Header{Time: tExport}, []fg.Flow{v4flow("198.51.100.1", "203.0.113.1", 1, 2, 1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint16(v5[2:], 65535)
	for _, tc := range []struct {
		name string
		dg   []byte
	}{{"expanded sample with 2^22 records", bomb}, {"1000 samples in one", manySamples}, {"netflow v5 count 65535", v5}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCollector(Options{})
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := c.d.Decode(tc.dg, exporterA, tExport, c.b)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatal("no error")
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 256<<10 {
				t.Fatalf("decoding a %d-byte datagram allocated %d bytes", len(tc.dg), alloc)
			}
		})
	}
}

// TestNetFlow9CountTooSmall: an exporter (softflowd) whose header Count
// counts only flow records still teaches its templates and sampling
// options, which follow the first flowset; flow records past Count are not
// counted, as Wireshark does not count them.
func TestNetFlow9CountTooSmall(t *testing.T) {
	ft := fg.Template{ID: 256, Fields: fg.FlowFields(fg.VersionNetFlow9, fg.IPv4, fg.TimesDefault)}
	ot := fg.SamplingOptions(fg.VersionNetFlow9, 257)
	e := &fg.Exporter{Version: fg.VersionNetFlow9, DomainID: 1, Now: tExport}
	f := v4flow("198.51.100.1", "203.0.113.1", 53, 4000, 10, 1500)
	first := e.Datagram(fg.TemplateSet(ft), fg.TemplateSet(ot), fg.OptionsDataSet(ot, fg.Options{SamplingRate: 100}), fg.DataSet(ft, f))
	binary.BigEndian.PutUint16(first[2:], 1) // Count: one record
	c := newCollector(Options{})
	c.feed(t, exporterA, first, e.Datagram(fg.DataSet(ft, f, f)))
	if len(c.records) != 2 {
		t.Fatalf("%d records, want the 2 of the second datagram", len(c.records))
	}
	for _, r := range c.records {
		checkRecord(t, r, f, 100, flow.SamplingOptions)
	}
}
