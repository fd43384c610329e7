package flowgen_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netsampler/goflow2/v2/decoders/netflow"

	"github.com/kapkan-io/kapkan/ingest/flowgen"
)

// collector decodes datagrams with goflow2, keeping templates between them
// as a collector does.
type collector struct{ ts netflow.NetFlowTemplateSystem }

func newCollector() *collector { return &collector{ts: netflow.CreateTemplateSystem()} }

// decode decodes one datagram and returns its flow sets; err is what goflow2
// reports (template not found, for data before its template).
func (c *collector) decode(t *testing.T, b []byte) (sets []any, v9 netflow.NFv9Packet, ipfix netflow.IPFIXPacket, err error) {
	t.Helper()
	err = netflow.DecodeMessageVersion(bytes.NewBuffer(b), c.ts, &v9, &ipfix)
	sets = v9.FlowSets
	if ipfix.Version == 10 {
		sets = ipfix.FlowSets
	}
	return sets, v9, ipfix, err
}

// mustDecode is decode failing the test on any error.
func (c *collector) mustDecode(t *testing.T, b []byte) ([]any, netflow.NFv9Packet, netflow.IPFIXPacket) {
	t.Helper()
	sets, v9, ipfix, err := c.decode(t, b)
	if err != nil {
		t.Fatalf("goflow2 decode: %v", err)
	}
	return sets, v9, ipfix
}

// record is a decoded data record by field type.
type record map[uint16][]byte

func (r record) num(id uint16) uint64 {
	var v uint64
	for _, b := range r[id] {
		v = v<<8 | uint64(b)
	}
	return v
}

func (r record) addr(id uint16) netip.Addr {
	a, _ := netip.AddrFromSlice(r[id])
	return a
}

func toRecord(values []netflow.DataField) record {
	r := record{}
	for _, v := range values {
		r[v.Type] = v.Value.([]byte)
	}
	return r
}

// dataRecords returns the data records of every data set of sets.
func dataRecords(sets []any) []record {
	var out []record
	for _, s := range sets {
		if ds, ok := s.(netflow.DataFlowSet); ok {
			for _, r := range ds.Records {
				out = append(out, toRecord(r.Values))
			}
		}
	}
	return out
}

func toFields(fs []netflow.Field) []flowgen.Field {
	out := make([]flowgen.Field, len(fs))
	for i, f := range fs {
		out[i] = flowgen.Field{ID: f.Type, Len: f.Length, Enterprise: f.Pen}
	}
	return out
}

// templatesOf returns the flow templates of sets by id.
func templatesOf(sets []any) map[uint16][]flowgen.Field {
	out := map[uint16][]flowgen.Field{}
	for _, s := range sets {
		if ts, ok := s.(netflow.TemplateFlowSet); ok {
			for _, r := range ts.Records {
				out[r.TemplateId] = toFields(r.Fields)
			}
		}
	}
	return out
}

func setIDs(sets []any) []uint16 {
	var ids []uint16
	for _, s := range sets {
		switch s := s.(type) {
		case netflow.TemplateFlowSet:
			ids = append(ids, s.Id)
		case netflow.NFv9OptionsTemplateFlowSet:
			ids = append(ids, s.Id)
		case netflow.IPFIXOptionsTemplateFlowSet:
			ids = append(ids, s.Id)
		case netflow.DataFlowSet:
			ids = append(ids, s.Id)
		case netflow.OptionsDataFlowSet:
			ids = append(ids, s.Id)
		case netflow.RawFlowSet:
			ids = append(ids, s.Id)
		}
	}
	return ids
}

var v9Extras = []flowgen.Field{
	{ID: flowgen.IESamplerID, Len: 1},
	{ID: flowgen.IESamplingInterval, Len: 4},
	{ID: flowgen.IEFragmentFlags, Len: 1},
	{ID: flowgen.IEFragmentOffset, Len: 2},
	{ID: flowgen.IEIngressInterface, Len: 2},
	{ID: flowgen.IEEgressInterface, Len: 4},
	{ID: flowgen.IEIPVersion, Len: 1},
}

func testFlows(fam flowgen.Family) []flowgen.Flow {
	src, dst := v4a, v4b
	icmp := uint8(flowgen.ProtoICMP)
	if fam == flowgen.IPv6 {
		src, dst, icmp = v6a, v6b, flowgen.ProtoICMPv6
	}
	start := exportTime.Add(-30*time.Second + 250*time.Millisecond)
	return []flowgen.Flow{
		{Src: src, Dst: dst, SrcPort: 40000, DstPort: 443, Proto: flowgen.ProtoTCP, TCPFlags: flowgen.TCPSyn | flowgen.TCPAck,
			Packets: 10, Bytes: 14600, Start: start, End: start.Add(2 * time.Second), SamplerID: 3, SamplingRate: 1000, InIf: 7, OutIf: 70000},
		{Src: dst, Dst: src, SrcPort: 123, DstPort: 123, Proto: flowgen.ProtoUDP, Fragment: true,
			Packets: 1, Bytes: 1500, Start: start.Add(time.Second), End: start.Add(time.Second), SamplerID: 4, SamplingRate: 4096},
		{Src: dst, Dst: src, Proto: flowgen.ProtoUDP, FragmentOffset: 185, Packets: 2, Bytes: 1100},
		{Src: src, Dst: dst, DstPort: 3<<8 | 1, Proto: icmp, Packets: math.MaxUint32, Bytes: math.MaxUint32,
			Start: start.Add(-time.Hour), End: exportTime},
	}
}

// checkFlowRecord checks the fields every test template has.
func checkFlowRecord(t *testing.T, r record, f flowgen.Flow) {
	t.Helper()
	src, dst := r.addr(flowgen.IESourceIPv4Address), r.addr(flowgen.IEDestinationIPv4Address)
	if f.Family() == flowgen.IPv6 {
		src, dst = r.addr(flowgen.IESourceIPv6Address), r.addr(flowgen.IEDestinationIPv6Address)
	}
	if src != f.Src || dst != f.Dst {
		t.Errorf("addresses %v > %v, want %v > %v", src, dst, f.Src, f.Dst)
	}
	if r.num(flowgen.IESourceTransportPort) != uint64(f.SrcPort) || r.num(flowgen.IEDestinationTransportPort) != uint64(f.DstPort) {
		t.Errorf("ports %d > %d, want %d > %d", r.num(7), r.num(11), f.SrcPort, f.DstPort)
	}
	if r.num(flowgen.IEProtocolIdentifier) != uint64(f.Proto) || r.num(flowgen.IETCPControlBits) != uint64(f.TCPFlags) {
		t.Errorf("protocol %d flags %#x, want %d %#x", r.num(4), r.num(6), f.Proto, f.TCPFlags)
	}
	if r.num(flowgen.IEOctetDeltaCount) != f.Bytes || r.num(flowgen.IEPacketDeltaCount) != f.Packets {
		t.Errorf("bytes %d packets %d, want %d %d", r.num(1), r.num(2), f.Bytes, f.Packets)
	}
}

func TestNetFlow9(t *testing.T) {
	boot := exportTime.Add(-50 * 24 * time.Hour) // sysUpTime has wrapped
	e := &flowgen.Exporter{Version: 9, DomainID: 0xdeadbeef, Boot: boot, Now: exportTime.Add(700 * time.Millisecond), Sequence: 41}
	tpl4 := flowgen.Template{ID: 256, Fields: flowgen.FlowFields(9, flowgen.IPv4, flowgen.TimesDefault,
		append(slices.Clone(v9Extras), flowgen.Field{ID: flowgen.IEICMPTypeCodeIPv4, Len: 2})...)}
	tpl6 := flowgen.Template{ID: 257, Fields: flowgen.FlowFields(9, flowgen.IPv6, flowgen.TimesDefault,
		append(slices.Clone(v9Extras), flowgen.Field{ID: flowgen.IEICMPTypeCodeIPv6, Len: 2})...)}
	flows4, flows6 := testFlows(flowgen.IPv4), testFlows(flowgen.IPv6)
	b := e.Datagram(flowgen.TemplateSet(tpl4, tpl6), flowgen.DataSet(tpl4, flows4...), flowgen.DataSet(tpl6, flows6...))

	sets, p, _ := newCollector().mustDecode(t, b)
	uptime := uint32(exportTime.Sub(boot).Milliseconds())
	if p.Version != 9 || int(p.Count) != 2+len(flows4)+len(flows6) || p.SystemUptime != uptime ||
		p.UnixSeconds != uint32(exportTime.Unix()) || p.SequenceNumber != 41 || p.SourceId != 0xdeadbeef {
		t.Errorf("header %+v, want count %d uptime %d unix %d sequence 41 source 0xdeadbeef", p, 2+len(flows4)+len(flows6), uptime, exportTime.Unix())
	}
	if e.Sequence != 42 {
		t.Errorf("next sequence %d, want 42", e.Sequence)
	}
	if got := setIDs(sets); !slices.Equal(got, []uint16{0, 256, 257}) {
		t.Errorf("set ids %v, want [0 256 257]", got)
	}
	tpls := templatesOf(sets)
	if !reflect.DeepEqual(tpls[256], tpl4.Fields) || !reflect.DeepEqual(tpls[257], tpl6.Fields) {
		t.Errorf("templates\n got %v\nwant %v and %v", tpls, tpl4.Fields, tpl6.Fields)
	}
	recs := dataRecords(sets)
	if len(recs) != len(flows4)+len(flows6) {
		t.Fatalf("%d data records, want %d", len(recs), len(flows4)+len(flows6))
	}
	for i, f := range append(flows4, flows6...) {
		t.Run(fmt.Sprint("record ", i), func(t *testing.T) {
			r := recs[i]
			checkFlowRecord(t, r, f)
			if len(r[flowgen.IEOctetDeltaCount]) != 4 {
				t.Errorf("IN_BYTES of %d bytes, want 4", len(r[1]))
			}
			// A collector dates the record from the header: export time
			// minus (sysUpTime - FIRST_SWITCHED), modulo 2^32.
			for _, c := range []struct {
				id   uint16
				want time.Time
			}{{flowgen.IEFlowStartSysUpTime, f.Start}, {flowgen.IEFlowEndSysUpTime, f.End}} {
				ago := time.Duration(p.SystemUptime-uint32(r.num(c.id))) * time.Millisecond
				if got, want := exportTime.Add(-ago), timeOrExport(c.want); !got.Equal(want) {
					t.Errorf("field %d dates the flow %v, want %v", c.id, got, want)
				}
			}
			if r.num(flowgen.IESamplerID) != uint64(f.SamplerID) || r.num(flowgen.IESamplingInterval) != uint64(f.SamplingRate) {
				t.Errorf("sampler %d interval %d, want %d %d", r.num(48), r.num(34), f.SamplerID, f.SamplingRate)
			}
			if mf := r.num(flowgen.IEFragmentFlags) == 0x20; mf != f.Fragment || r.num(flowgen.IEFragmentOffset) != uint64(f.FragmentOffset) {
				t.Errorf("fragment flags %#x offset %d, want MF %v offset %d", r.num(197), r.num(88), f.Fragment, f.FragmentOffset)
			}
			if r.num(flowgen.IEIngressInterface) != uint64(f.InIf) || r.num(flowgen.IEEgressInterface) != uint64(f.OutIf) {
				t.Errorf("interfaces %d > %d, want %d > %d", r.num(10), r.num(14), f.InIf, f.OutIf)
			}
			if r.num(flowgen.IEIPVersion) != uint64(f.Family()) {
				t.Errorf("ip version %d, want %d", r.num(60), f.Family())
			}
			icmp := r.num(flowgen.IEICMPTypeCodeIPv4) | r.num(flowgen.IEICMPTypeCodeIPv6)
			if isICMP := f.Proto == flowgen.ProtoICMP || f.Proto == flowgen.ProtoICMPv6; isICMP && icmp != uint64(f.DstPort) || !isICMP && icmp != 0 {
				t.Errorf("icmp type/code %#x for protocol %d port %#x", icmp, f.Proto, f.DstPort)
			}
		})
	}
}

func timeOrExport(t time.Time) time.Time {
	if t.IsZero() {
		return exportTime
	}
	return t
}

func TestIPFIXTimes(t *testing.T) {
	ntp := func(v uint64) time.Time {
		return time.Unix(int64(v>>32)-2208988800, int64((v&0xffffffff)*1e9>>32))
	}
	// Times with digits below the millisecond, before and after the export.
	start := exportTime.Add(-29*time.Second - 876543211*time.Nanosecond)
	end := exportTime.Add(-123456789 * time.Nanosecond)
	boot := exportTime.Add(-time.Hour)
	for _, tc := range []struct {
		name       string
		times      flowgen.Times
		startID    uint16
		endID      uint16
		extra      []flowgen.Field
		read       func(r record, id uint16) time.Time
		start, end time.Time
	}{
		{
			name: "default milliseconds", times: flowgen.TimesDefault, startID: 152, endID: 153,
			read:  func(r record, id uint16) time.Time { return time.UnixMilli(int64(r.num(id))) },
			start: start.Truncate(time.Millisecond), end: end.Truncate(time.Millisecond),
		},
		{
			name: "seconds", times: flowgen.TimesSeconds, startID: 150, endID: 151,
			read:  func(r record, id uint16) time.Time { return time.Unix(int64(r.num(id)), 0) },
			start: start.Truncate(time.Second), end: end.Truncate(time.Second),
		},
		{
			name: "microseconds", times: flowgen.TimesMicroseconds, startID: 154, endID: 155,
			read:  func(r record, id uint16) time.Time { return ntp(r.num(id)).Truncate(time.Microsecond) },
			start: start.Truncate(time.Microsecond), end: end.Truncate(time.Microsecond),
		},
		{
			name: "nanoseconds", times: flowgen.TimesNanoseconds, startID: 156, endID: 157,
			read:  func(r record, id uint16) time.Time { return ntp(r.num(id)) },
			start: start, end: end,
		},
		{
			name: "delta microseconds", times: flowgen.TimesDeltaMicroseconds, startID: 158, endID: 159,
			read: func(r record, id uint16) time.Time {
				return exportTime.Add(-time.Duration(r.num(id)) * time.Microsecond)
			},
			start: exportTime.Add(-exportTime.Sub(start).Truncate(time.Microsecond)),
			end:   exportTime.Add(-exportTime.Sub(end).Truncate(time.Microsecond)),
		},
		{
			name: "sysuptime with systemInitTimeMilliseconds", times: flowgen.TimesSysUpTime, startID: 22, endID: 21,
			extra: []flowgen.Field{{ID: flowgen.IESystemInitTimeMilliseconds, Len: 8}},
			read: func(r record, id uint16) time.Time {
				return time.UnixMilli(int64(r.num(flowgen.IESystemInitTimeMilliseconds) + r.num(id)))
			},
			start: start.Truncate(time.Millisecond), end: end.Truncate(time.Millisecond),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &flowgen.Exporter{Version: 10, Boot: boot, Now: exportTime}
			tpl := flowgen.Template{ID: 400, Fields: flowgen.FlowFields(10, flowgen.IPv4, tc.times, tc.extra...)}
			f := flowgen.Flow{Src: v4a, Dst: v4b, Start: start, End: end, Packets: 1 << 33, Bytes: 1 << 43}
			sets, _, _ := newCollector().mustDecode(t, e.Datagram(flowgen.TemplateSet(tpl), flowgen.DataSet(tpl, f)))
			recs := dataRecords(sets)
			if len(recs) != 1 {
				t.Fatalf("%d records, want 1", len(recs))
			}
			checkFlowRecord(t, recs[0], f)
			if _, ok := recs[0][tc.startID]; !ok {
				t.Fatalf("no field %d in %v", tc.startID, templatesOf(sets))
			}
			if tc.times == flowgen.TimesMicroseconds && (recs[0].num(tc.startID)|recs[0].num(tc.endID))&0x7ff != 0 {
				t.Errorf("microsecond times %#x %#x have their 11 low bits set", recs[0].num(tc.startID), recs[0].num(tc.endID))
			}
			if got := tc.read(recs[0], tc.startID); !got.Equal(tc.start) {
				t.Errorf("start %v, want %v", got.UTC(), tc.start.UTC())
			}
			if got := tc.read(recs[0], tc.endID); !got.Equal(tc.end) {
				t.Errorf("end %v, want %v", got.UTC(), tc.end.UTC())
			}
		})
	}
}

func TestIPFIXRecordSamplingFields(t *testing.T) {
	e := &flowgen.Exporter{Version: 10, DomainID: 9, Now: exportTime}
	tpl := flowgen.Template{ID: 256, Fields: flowgen.FlowFields(10, flowgen.IPv6, flowgen.TimesMilliseconds,
		flowgen.Field{ID: flowgen.IESelectorID, Len: 4},
		flowgen.Field{ID: flowgen.IESamplerID, Len: 1},
		flowgen.Field{ID: flowgen.IESamplingPacketInterval, Len: 4},
		flowgen.Field{ID: flowgen.IESamplingPacketSpace, Len: 4},
		flowgen.Field{ID: flowgen.IESamplingInterval, Len: 4},
		flowgen.Field{ID: flowgen.IEFragmentFlags, Len: 1},
		flowgen.Field{ID: flowgen.IEICMPTypeIPv6, Len: 1},
		flowgen.Field{ID: flowgen.IEICMPCodeIPv6, Len: 1},
		flowgen.Field{ID: flowgen.IEObservationDomainID, Len: 4},
	)}
	flows := testFlows(flowgen.IPv6)
	flows[0].Packets, flows[0].Bytes = 1<<40+1, 1<<50+3 // 8-byte counters
	sets, _, _ := newCollector().mustDecode(t, e.Datagram(flowgen.TemplateSet(tpl), flowgen.DataSet(tpl, flows...)))
	recs := dataRecords(sets)
	if len(recs) != len(flows) {
		t.Fatalf("%d records, want %d", len(recs), len(flows))
	}
	for i, f := range flows {
		r := recs[i]
		checkFlowRecord(t, r, f)
		if r.num(flowgen.IESelectorID) != uint64(f.SamplerID) || r.num(flowgen.IESamplerID) != uint64(f.SamplerID) {
			t.Errorf("record %d: selector %d sampler %d, want %d", i, r.num(302), r.num(48), f.SamplerID)
		}
		wantInterval, wantSpace := uint64(0), uint64(0)
		if f.SamplingRate > 0 {
			wantInterval, wantSpace = 1, uint64(f.SamplingRate-1)
		}
		if r.num(flowgen.IESamplingPacketInterval) != wantInterval || r.num(flowgen.IESamplingPacketSpace) != wantSpace ||
			r.num(flowgen.IESamplingInterval) != uint64(f.SamplingRate) {
			t.Errorf("record %d: packet interval %d space %d interval %d, want %d %d %d", i,
				r.num(305), r.num(306), r.num(34), wantInterval, wantSpace, f.SamplingRate)
		}
		if mf := r.num(flowgen.IEFragmentFlags) == 0x20; mf != f.Fragment {
			t.Errorf("record %d: fragment flags %#x, want MF %v", i, r.num(197), f.Fragment)
		}
		if f.Proto == flowgen.ProtoICMPv6 && (r.num(flowgen.IEICMPTypeIPv6) != 3 || r.num(flowgen.IEICMPCodeIPv6) != 1) {
			t.Errorf("record %d: icmpv6 type %d code %d, want 3 1", i, r.num(178), r.num(179))
		}
		if r.num(flowgen.IEObservationDomainID) != 9 {
			t.Errorf("record %d: observation domain %d, want 9", i, r.num(149))
		}
	}
}

func TestIPFIXHeaderAndSequence(t *testing.T) {
	e := &flowgen.Exporter{Version: 10, DomainID: 77, Now: exportTime.Add(999 * time.Millisecond), Sequence: 1000}
	tpl := flowgen.Template{ID: 256, Fields: flowgen.FlowFields(10, flowgen.IPv4, flowgen.TimesDefault)}
	opt := flowgen.SamplingOptions(10, 257)
	c := newCollector()
	wantSeq := uint32(1000)
	for i, sets := range [][]flowgen.Set{
		{flowgen.TemplateSet(tpl, opt), flowgen.DataSet(tpl, testFlows(flowgen.IPv4)[:3]...), flowgen.OptionsDataSet(opt, flowgen.Options{SamplingRate: 10}, flowgen.Options{SamplingRate: 20})},
		{flowgen.TemplateSet(tpl)}, // templates only: no data records
		{flowgen.DataSet(tpl, testFlows(flowgen.IPv4)...)},
		{flowgen.RawSet(tpl.ID, 0, nil), flowgen.DataSet(tpl)},
	} {
		b := e.Datagram(sets...)
		_, _, p := c.mustDecode(t, b)
		if p.Version != 10 || int(p.Length) != len(b) || p.ExportTime != uint32(exportTime.Unix()) || p.ObservationDomainId != 77 {
			t.Errorf("datagram %d: header %+v, want length %d export time %d domain 77", i, p, len(b), exportTime.Unix())
		}
		if p.SequenceNumber != wantSeq {
			t.Errorf("datagram %d: sequence %d, want %d", i, p.SequenceNumber, wantSeq)
		}
		for _, s := range dataAndOptionsCounts(p.FlowSets) {
			wantSeq += uint32(s)
		}
		if e.Sequence != wantSeq {
			t.Errorf("datagram %d: next sequence %d, want %d", i, e.Sequence, wantSeq)
		}
	}
	if wantSeq != 1000+5+4 {
		t.Errorf("%d data records counted, want 9", wantSeq-1000)
	}

	// The sequence number wraps.
	e.Sequence = math.MaxUint32 - 1
	e.Datagram(flowgen.DataSet(tpl, testFlows(flowgen.IPv4)[:3]...))
	if e.Sequence != 1 {
		t.Errorf("sequence %d after wrapping, want 1", e.Sequence)
	}
}

func dataAndOptionsCounts(sets []any) []int {
	var n []int
	for _, s := range sets {
		switch s := s.(type) {
		case netflow.DataFlowSet:
			n = append(n, len(s.Records))
		case netflow.OptionsDataFlowSet:
			n = append(n, len(s.Records))
		}
	}
	return n
}

func TestNetFlow9CountAndSequence(t *testing.T) {
	e := &flowgen.Exporter{Version: 9, DomainID: 1, Now: exportTime}
	tpl := flowgen.Template{ID: 256, Fields: flowgen.FlowFields(9, flowgen.IPv4, flowgen.TimesDefault)}
	opt := flowgen.V9SamplerOptions(257, true)
	c := newCollector()
	for i, tc := range []struct {
		sets  []flowgen.Set
		count uint16
	}{
		{[]flowgen.Set{flowgen.TemplateSet(tpl, opt)}, 2},
		{[]flowgen.Set{flowgen.DataSet(tpl, testFlows(flowgen.IPv4)...), flowgen.OptionsDataSet(opt, flowgen.Options{SamplerID: 1}, flowgen.Options{SamplerID: 2})}, 6},
		{[]flowgen.Set{flowgen.DataSet(tpl, testFlows(flowgen.IPv4)[0])}, 1},
		{[]flowgen.Set{flowgen.RawSet(tpl.ID, 2, make([]byte, 2*30))}, 2},
	} {
		_, p, _ := c.mustDecode(t, e.Datagram(tc.sets...))
		if p.Count != tc.count || p.SequenceNumber != uint32(i) {
			t.Errorf("datagram %d: count %d sequence %d, want %d %d", i, p.Count, p.SequenceNumber, tc.count, i)
		}
		if want := uint32(time.Hour.Milliseconds()); p.SystemUptime != want {
			t.Errorf("datagram %d: uptime %d, want %d (boot defaults to an hour before)", i, p.SystemUptime, want)
		}
	}
	if want := exportTime.Add(-time.Hour); !e.Boot.Equal(want) {
		t.Errorf("boot %v, want %v", e.Boot, want)
	}
}

// TestSetOrder checks that datagrams hold sets in the caller's order: data
// before its template, templates redefined under one id, several ids.
func TestSetOrder(t *testing.T) {
	for _, version := range []uint16{9, 10} {
		t.Run(fmt.Sprint("version ", version), func(t *testing.T) {
			e := &flowgen.Exporter{Version: version, DomainID: 5, Now: exportTime}
			flows := testFlows(flowgen.IPv4)
			c := newCollector()

			// Data before its template: the collector cannot decode the
			// first set, learns the template from the second, and decodes
			// the data of the next datagram.
			tplA := flowgen.Template{ID: 300, Fields: flowgen.FlowFields(version, flowgen.IPv4, flowgen.TimesDefault)}
			sets, _, _, err := c.decode(t, e.Datagram(flowgen.DataSet(tplA, flows[0]), flowgen.TemplateSet(tplA)))
			if !errors.Is(err, netflow.ErrorTemplateNotFound) {
				t.Errorf("decode error %v, want template not found", err)
			}
			if ids := setIDs(sets); len(ids) != 2 || ids[0] != 300 || ids[1] != map[uint16]uint16{9: 0, 10: 2}[version] {
				t.Errorf("set ids %v, want data 300 then a template set", ids)
			}
			sets, _, _ = c.mustDecode(t, e.Datagram(flowgen.DataSet(tplA, flows[1])))
			if recs := dataRecords(sets); len(recs) != 1 {
				t.Fatalf("%d records after the template arrived, want 1", len(recs))
			} else {
				checkFlowRecord(t, recs[0], flows[1])
			}

			// The same id redefined with another field list.
			tplB := flowgen.Template{ID: 300, Fields: []flowgen.Field{
				{ID: flowgen.IEDestinationIPv4Address, Len: 4},
				{ID: flowgen.IEPacketDeltaCount, Len: 8},
			}}
			sets, _, _ = c.mustDecode(t, e.Datagram(flowgen.TemplateSet(tplB), flowgen.DataSet(tplB, flows[2])))
			recs := dataRecords(sets)
			if len(recs) != 1 || len(recs[0]) != 2 || recs[0].addr(flowgen.IEDestinationIPv4Address) != flows[2].Dst ||
				recs[0].num(flowgen.IEPacketDeltaCount) != flows[2].Packets {
				t.Errorf("records %v, want one of the redefined template", recs)
			}

			// Several ids, interleaved.
			t1 := flowgen.Template{ID: 301, Fields: flowgen.FlowFields(version, flowgen.IPv4, flowgen.TimesDefault)}
			t2 := flowgen.Template{ID: 302, Fields: flowgen.FlowFields(version, flowgen.IPv6, flowgen.TimesDefault)}
			t3 := flowgen.Template{ID: 65535, Fields: flowgen.FlowFields(version, flowgen.IPv4, flowgen.TimesNone)}
			f6 := testFlows(flowgen.IPv6)
			sets, _, _ = c.mustDecode(t, e.Datagram(
				flowgen.TemplateSet(t1, t2),
				flowgen.DataSet(t2, f6[0], f6[1]),
				flowgen.DataSet(t1, flows[3]),
				flowgen.TemplateSet(t3),
				flowgen.DataSet(t3, flows[0]),
				flowgen.DataSet(t2, f6[2]),
			))
			tmplSet := map[uint16]uint16{9: 0, 10: 2}[version]
			if got, want := setIDs(sets), []uint16{tmplSet, 302, 301, tmplSet, 65535, 302}; !slices.Equal(got, want) {
				t.Errorf("set ids %v, want %v", got, want)
			}
			recs = dataRecords(sets)
			want := []flowgen.Flow{f6[0], f6[1], flows[3], flows[0], f6[2]}
			if len(recs) != len(want) {
				t.Fatalf("%d records, want %d", len(recs), len(want))
			}
			for i := range want {
				checkFlowRecord(t, recs[i], want[i])
			}
		})
	}
}

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version uint16
		tpl     flowgen.Template
		opts    flowgen.Options
		scopes  []uint64 // decoded scope values
		options map[uint16]uint64
	}{
		{
			name: "v9 sampler options scoped by system", version: 9, tpl: flowgen.V9SamplerOptions(256, true),
			opts:   flowgen.Options{Scope: 0xc0000201, SamplerID: 5, SamplerMode: flowgen.SamplingRandom, SamplingRate: 1000},
			scopes: []uint64{0xc0000201}, options: map[uint16]uint64{48: 5, 49: 2, 50: 1000},
		},
		{
			name: "v9 sampler options without scope", version: 9, tpl: flowgen.V9SamplerOptions(257, false),
			opts:    flowgen.Options{SamplerID: 255, SamplerMode: flowgen.SamplingDeterministic, SamplingRate: 100},
			options: map[uint16]uint64{48: 255, 49: 1, 50: 100},
		},
		{
			name: "v9 sampling interval scoped by system", version: 9, tpl: flowgen.SamplingOptions(9, 258),
			opts:   flowgen.Options{SamplingRate: 2048, SamplerMode: flowgen.SamplingDeterministic},
			scopes: []uint64{0}, options: map[uint16]uint64{34: 2048, 35: 1},
		},
		{
			name: "ipfix sampling interval scoped by observation domain", version: 10, tpl: flowgen.SamplingOptions(10, 258),
			opts:   flowgen.Options{SamplingRate: 512, SamplerMode: flowgen.SamplingRandom},
			scopes: []uint64{0xabcdef01}, options: map[uint16]uint64{34: 512, 35: 2},
		},
		{
			name: "ipfix psamp selector from a rate", version: 10, tpl: flowgen.PSAMPOptions(259),
			opts:   flowgen.Options{SamplerID: 1<<40 + 1, SelectorAlgorithm: flowgen.SelectorSystematicCount, SamplingRate: 100},
			scopes: []uint64{1<<40 + 1}, options: map[uint16]uint64{304: 1, 305: 1, 306: 99},
		},
		{
			name: "ipfix psamp selector with explicit interval and space", version: 10, tpl: flowgen.PSAMPOptions(259),
			opts:   flowgen.Options{SamplerID: 2, SelectorAlgorithm: flowgen.SelectorSystematicCount, PacketInterval: 2, PacketSpace: 98},
			scopes: []uint64{2}, options: map[uint16]uint64{304: 1, 305: 2, 306: 98},
		},
		{
			name: "ipfix sampler options scoped by sampler id", version: 10, tpl: flowgen.IPFIXSamplerOptions(260),
			opts:   flowgen.Options{SamplerID: 7, SamplingRate: 4000},
			scopes: []uint64{7}, options: map[uint16]uint64{50: 4000},
		},
		{
			name: "v9 flow timeouts", version: 9, tpl: flowgen.TimeoutOptions(9, 261),
			opts:   flowgen.Options{Scope: 1, ActiveTimeout: 60, IdleTimeout: 15},
			scopes: []uint64{1}, options: map[uint16]uint64{36: 60, 37: 15},
		},
		{
			name: "ipfix flow timeouts", version: 10, tpl: flowgen.TimeoutOptions(10, 261),
			opts:   flowgen.Options{ActiveTimeout: 1800, IdleTimeout: 30},
			scopes: []uint64{0xabcdef01}, options: map[uint16]uint64{36: 1800, 37: 30},
		},
		{
			name: "ipfix explicit values", version: 10, tpl: flowgen.Template{ID: 262,
				Scopes: []flowgen.Field{{ID: flowgen.IEIngressInterface, Len: 4}},
				Fields: []flowgen.Field{{ID: flowgen.IESamplingInterval, Len: 4}, {ID: 84, Len: 2}}},
			opts:   flowgen.Options{Values: []uint64{12, 100, 0x4142}},
			scopes: []uint64{12}, options: map[uint16]uint64{34: 100, 84: 0x4142},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &flowgen.Exporter{Version: tc.version, DomainID: 0xabcdef01, Now: exportTime}
			b := e.Datagram(flowgen.TemplateSet(tc.tpl), flowgen.OptionsDataSet(tc.tpl, tc.opts))
			sets, _, _ := newCollector().mustDecode(t, b)
			if len(sets) != 2 {
				t.Fatalf("%d sets, want 2", len(sets))
			}
			var scopes, options []flowgen.Field
			switch s := sets[0].(type) {
			case netflow.NFv9OptionsTemplateFlowSet:
				if s.Id != 1 || len(s.Records) != 1 || s.Records[0].TemplateId != tc.tpl.ID {
					t.Fatalf("options template set %+v", s)
				}
				scopes, options = toFields(s.Records[0].Scopes), toFields(s.Records[0].Options)
			case netflow.IPFIXOptionsTemplateFlowSet:
				if s.Id != 3 || len(s.Records) != 1 || s.Records[0].TemplateId != tc.tpl.ID {
					t.Fatalf("options template set %+v", s)
				}
				scopes, options = toFields(s.Records[0].Scopes), toFields(s.Records[0].Options)
			default:
				t.Fatalf("first set is %T, want an options template set", sets[0])
			}
			if len(scopes) != len(tc.tpl.Scopes) || len(scopes) > 0 && !reflect.DeepEqual(scopes, tc.tpl.Scopes) {
				t.Errorf("scopes %v, want %v", scopes, tc.tpl.Scopes)
			}
			if !reflect.DeepEqual(options, tc.tpl.Fields) {
				t.Errorf("options %v, want %v", options, tc.tpl.Fields)
			}
			ods, ok := sets[1].(netflow.OptionsDataFlowSet)
			if !ok || len(ods.Records) != 1 {
				t.Fatalf("second set %+v, want one options data record", sets[1])
			}
			var gotScopes []uint64
			for _, v := range ods.Records[0].ScopesValues {
				gotScopes = append(gotScopes, toRecord([]netflow.DataField{v}).num(v.Type))
			}
			if !slices.Equal(gotScopes, tc.scopes) {
				t.Errorf("scope values %v, want %v", gotScopes, tc.scopes)
			}
			r := toRecord(ods.Records[0].OptionsValues)
			for id, want := range tc.options {
				if got := r.num(id); got != want {
					t.Errorf("option %d = %d, want %d", id, got, want)
				}
			}
			if len(r) != len(tc.options) {
				t.Errorf("%d option values, want %d", len(r), len(tc.options))
			}
		})
	}
}

func TestPadding(t *testing.T) {
	oneByte := flowgen.Template{ID: 256, Fields: []flowgen.Field{{ID: flowgen.IEProtocolIdentifier, Len: 1}}}
	nine := flowgen.Template{ID: 257, Fields: []flowgen.Field{
		{ID: flowgen.IESourceIPv4Address, Len: 4}, {ID: flowgen.IEDestinationIPv4Address, Len: 4}, {ID: flowgen.IEProtocolIdentifier, Len: 1},
	}}
	v9opts := flowgen.V9SamplerOptions(258, false) // 6 + 4*3 bytes of template, records of 6
	flow := flowgen.Flow{Src: v4a, Dst: v4b, Proto: 17}
	for _, tc := range []struct {
		name     string
		version  uint16
		unpadded bool
		set      flowgen.Set
		length   int // set length
		records  int
	}{
		{name: "v9 9-byte record padded", version: 9, set: flowgen.DataSet(nine, flow), length: 16, records: 1},
		{name: "v9 two 9-byte records padded", version: 9, set: flowgen.DataSet(nine, flow, flow), length: 24, records: 2},
		{name: "ipfix 9-byte record padded", version: 10, set: flowgen.DataSet(nine, flow), length: 16, records: 1},
		{name: "ipfix unpadded", version: 10, unpadded: true, set: flowgen.DataSet(nine, flow), length: 13, records: 1},
		{name: "1-byte records never padded", version: 9, set: flowgen.DataSet(oneByte, flow, flow, flow), length: 7, records: 3},
		{name: "v9 options template padded", version: 9, set: flowgen.TemplateSet(v9opts), length: 24},
		{name: "v9 options data padded", version: 9, set: flowgen.OptionsDataSet(v9opts, flowgen.Options{SamplerID: 1}), length: 12, records: 1},
		{name: "ipfix options template padded", version: 10, set: flowgen.TemplateSet(flowgen.IPFIXSamplerOptions(259)), length: 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &flowgen.Exporter{Version: tc.version, Now: exportTime, Unpadded: tc.unpadded}
			c := newCollector()
			if tc.version == 9 {
				c.mustDecode(t, e.Datagram(flowgen.TemplateSet(oneByte, nine, v9opts)))
			} else {
				c.mustDecode(t, e.Datagram(flowgen.TemplateSet(oneByte, nine, flowgen.IPFIXSamplerOptions(259))))
			}
			b := e.Datagram(tc.set)
			hdr := map[uint16]int{9: 20, 10: 16}[tc.version]
			if got := int(binary.BigEndian.Uint16(b[hdr+2:])); got != tc.length || len(b) != hdr+tc.length {
				t.Errorf("set length %d in a datagram of %d bytes, want %d", got, len(b), hdr+tc.length)
			}
			sets, _, _ := c.mustDecode(t, b)
			if n := sum(dataAndOptionsCounts(sets)); n != tc.records {
				t.Errorf("collector decoded %d records, want %d", n, tc.records)
			}
		})
	}
}

func sum(ns []int) int {
	s := 0
	for _, n := range ns {
		s += n
	}
	return s
}

func TestIPFIXEnterpriseField(t *testing.T) {
	tpl := flowgen.Template{ID: 256, Fields: []flowgen.Field{
		{ID: flowgen.IESourceIPv4Address, Len: 4},
		{ID: 100, Len: 2, Enterprise: 29305}, // the RFC 5103 reverse-element PEN
		{ID: flowgen.IEOctetDeltaCount, Len: 8},
	}}
	e := &flowgen.Exporter{Version: 10, Now: exportTime}
	f := flowgen.Flow{Src: v4a, Dst: v4b, Bytes: 5}
	sets, _, _ := newCollector().mustDecode(t, e.Datagram(flowgen.TemplateSet(tpl), flowgen.DataSet(tpl, f)))
	ts := sets[0].(netflow.TemplateFlowSet).Records[0].Fields
	if !ts[1].PenProvided || ts[1].Pen != 29305 || ts[1].Type != 100 || ts[1].Length != 2 {
		t.Errorf("enterprise field %+v, want 100/2 of enterprise 29305", ts[1])
	}
	recs := sets[1].(netflow.DataFlowSet).Records
	if v := recs[0].Values[1]; !v.PenProvided || !bytes.Equal(v.Value.([]byte), []byte{0, 0}) {
		t.Errorf("enterprise value %+v, want zeros", v)
	}
	if r := toRecord(recs[0].Values); r.addr(flowgen.IESourceIPv4Address) != v4a || r.num(flowgen.IEOctetDeltaCount) != 5 {
		t.Errorf("record %v", r)
	}
}

func TestTemplateWithdrawal(t *testing.T) {
	e := &flowgen.Exporter{Version: 10, Now: exportTime}
	b := e.Datagram(flowgen.TemplateSet(flowgen.Template{ID: 256}))
	want := []byte{0, 2, 0, 8, 1, 0, 0, 0} // template set: id 256, no fields
	if !bytes.Equal(b[16:], want) {
		t.Errorf("sets % x, want % x", b[16:], want)
	}
}

func TestExporterErrors(t *testing.T) {
	ok := flowgen.Template{ID: 256, Fields: flowgen.FlowFields(10, flowgen.IPv4, flowgen.TimesDefault)}
	for _, tc := range []struct {
		name    string
		version uint16
		sets    []flowgen.Set
		want    string
	}{
		{"version 8", 8, nil, "version 8"},
		{"template id under 256", 10, []flowgen.Set{flowgen.TemplateSet(flowgen.Template{ID: 255, Fields: ok.Fields})}, "template id 255"},
		{"variable-length field", 10, []flowgen.Set{flowgen.TemplateSet(flowgen.Template{ID: 256, Fields: []flowgen.Field{{ID: 82, Len: 0xffff}}})}, "variable-length"},
		{"zero-length field", 9, []flowgen.Set{flowgen.DataSet(flowgen.Template{ID: 256, Fields: []flowgen.Field{{ID: 1}}})}, "length 0"},
		{"v9 enterprise field", 9, []flowgen.Set{flowgen.TemplateSet(flowgen.Template{ID: 256, Fields: []flowgen.Field{{ID: 1, Len: 4, Enterprise: 9}}})}, "enterprise"},
		{"ipfix options without scope", 10, []flowgen.Set{flowgen.TemplateSet(flowgen.V9SamplerOptions(300, false))}, "without scope"},
		{"data for no fields", 10, []flowgen.Set{flowgen.DataSet(flowgen.Template{ID: 256}, flowgen.Flow{})}, "no fields"},
		{"flows for an options template", 10, []flowgen.Set{flowgen.DataSet(flowgen.PSAMPOptions(300), flowgen.Flow{})}, "OptionsDataSet"},
		{"options for a flow template", 10, []flowgen.Set{flowgen.OptionsDataSet(ok, flowgen.Options{})}, "DataSet"},
		{"wrong number of values", 10, []flowgen.Set{flowgen.OptionsDataSet(flowgen.PSAMPOptions(300), flowgen.Options{Values: []uint64{1}})}, "1 values"},
		{"message too long", 10, []flowgen.Set{flowgen.DataSet(ok, make([]flowgen.Flow, 2000)...)}, "at most 65535"},
		{"raw set too long", 9, []flowgen.Set{flowgen.RawSet(256, 1, make([]byte, 70000))}, "raw set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &flowgen.Exporter{Version: tc.version, Now: exportTime, Sequence: 9}
			dst := []byte("kept")
			got, err := e.AppendDatagram(dst, append([]flowgen.Set{flowgen.TemplateSet(ok)}, tc.sets...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one about %q", err, tc.want)
			}
			if string(got) != "kept" || e.Sequence != 9 {
				t.Errorf("dst %q sequence %d after an error, want them unchanged", got, e.Sequence)
			}
			defer func() {
				if recover() == nil {
					t.Error("Datagram did not panic")
				}
			}()
			e.Datagram(tc.sets...)
		})
	}
}

// TestNetFlow9Bytes pins a datagram byte for byte, written out by hand from
// RFC 3954.
func TestNetFlow9Bytes(t *testing.T) {
	now := time.Unix(0x5f5e1000, 0)
	e := &flowgen.Exporter{Version: 9, DomainID: 7, Boot: now.Add(-1000 * time.Millisecond), Now: now, Sequence: 3}
	tpl := flowgen.Template{ID: 256, Fields: []flowgen.Field{
		{ID: flowgen.IESourceIPv4Address, Len: 4},
		{ID: flowgen.IEDestinationIPv4Address, Len: 4},
		{ID: flowgen.IEProtocolIdentifier, Len: 1},
	}}
	opt := flowgen.V9SamplerOptions(257, true)
	got := e.Datagram(
		flowgen.TemplateSet(tpl),
		flowgen.DataSet(tpl, flowgen.Flow{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), Proto: 17}),
		flowgen.TemplateSet(opt),
		flowgen.OptionsDataSet(opt, flowgen.Options{Scope: 0x01020304, SamplerID: 1, SamplerMode: 2, SamplingRate: 100}),
	)
	want := []byte{
		0x00, 0x09, 0x00, 0x04, // version, count: 2 templates + 2 records
		0x00, 0x00, 0x03, 0xe8, // sysUpTime: 1000 ms
		0x5f, 0x5e, 0x10, 0x00, // unix_secs
		0x00, 0x00, 0x00, 0x03, // sequence
		0x00, 0x00, 0x00, 0x07, // source id
		0x00, 0x00, 0x00, 0x14, // template flowset, 20 bytes
		0x01, 0x00, 0x00, 0x03, // template 256, 3 fields
		0x00, 0x08, 0x00, 0x04, 0x00, 0x0c, 0x00, 0x04, 0x00, 0x04, 0x00, 0x01,
		0x01, 0x00, 0x00, 0x10, // data flowset 256, 16 bytes
		10, 0, 0, 1, 10, 0, 0, 2, 17, // record
		0, 0, 0, // padding
		0x00, 0x01, 0x00, 0x1c, // options template flowset, 28 bytes
		0x01, 0x01, 0x00, 0x04, 0x00, 0x0c, // template 257, scope length 4, option length 12
		0x00, 0x01, 0x00, 0x04, // scope System, 4 bytes
		0x00, 0x30, 0x00, 0x01, 0x00, 0x31, 0x00, 0x01, 0x00, 0x32, 0x00, 0x04,
		0x00, 0x00, // padding
		0x01, 0x01, 0x00, 0x10, // data flowset 257, 16 bytes
		0x01, 0x02, 0x03, 0x04, 0x01, 0x02, 0x00, 0x00, 0x00, 0x64, // system, id, mode, interval
		0x00, 0x00, // padding
	}
	if !bytes.Equal(got, want) {
		t.Errorf("datagram\n got % x\nwant % x", got, want)
	}
}

// TestIPFIXBytes pins a message byte for byte, written out by hand from RFC
// 7011 and RFC 5477.
func TestIPFIXBytes(t *testing.T) {
	now := time.Unix(0x5f5e1000, 0)
	e := &flowgen.Exporter{Version: 10, DomainID: 7, Now: now, Sequence: 3}
	tpl := flowgen.Template{ID: 256, Fields: []flowgen.Field{
		{ID: flowgen.IEOctetDeltaCount, Len: 8},
		{ID: 100, Len: 2, Enterprise: 29305},
	}}
	opt := flowgen.Template{ID: 300, Scopes: []flowgen.Field{{ID: flowgen.IESelectorID, Len: 4}}, Fields: []flowgen.Field{
		{ID: flowgen.IESamplingPacketInterval, Len: 4},
		{ID: flowgen.IESamplingPacketSpace, Len: 4},
	}}
	got := e.Datagram(
		flowgen.TemplateSet(tpl, opt),
		flowgen.DataSet(tpl, flowgen.Flow{Bytes: 0x0102030405060708}),
		flowgen.OptionsDataSet(opt, flowgen.Options{SamplerID: 9, SamplingRate: 100}),
	)
	want := []byte{
		0x00, 0x0a, 0x00, 0x5c, // version, length 92
		0x5f, 0x5e, 0x10, 0x00, // export time
		0x00, 0x00, 0x00, 0x03, // sequence
		0x00, 0x00, 0x00, 0x07, // observation domain
		0x00, 0x02, 0x00, 0x14, // template set, 20 bytes
		0x01, 0x00, 0x00, 0x02, // template 256, 2 fields
		0x00, 0x01, 0x00, 0x08, // octetDeltaCount, 8
		0x80, 0x64, 0x00, 0x02, 0x00, 0x00, 0x72, 0x79, // enterprise 29305 element 100, 2
		0x00, 0x03, 0x00, 0x18, // options template set, 24 bytes
		0x01, 0x2c, 0x00, 0x03, 0x00, 0x01, // template 300, 3 fields, 1 scope
		0x01, 0x2e, 0x00, 0x04, 0x01, 0x31, 0x00, 0x04, 0x01, 0x32, 0x00, 0x04,
		0x00, 0x00, // padding
		0x01, 0x00, 0x00, 0x10, // data set 256, 16 bytes
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x00, 0x00,
		0x00, 0x00, // padding
		0x01, 0x2c, 0x00, 0x10, // data set 300, 16 bytes
		0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x63, // selector 9, interval 1, space 99
	}
	if !bytes.Equal(got, want) {
		t.Errorf("message\n got % x\nwant % x", got, want)
	}
	if e.Sequence != 5 {
		t.Errorf("next sequence %d, want 5", e.Sequence)
	}
}
