package ingest

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/flow"
	fg "github.com/kapkan-io/kapkan/ingest/flowgen"
)

// TestExportersSelfCheck sends real datagrams of three exporters through
// Decode and checks the telemetry self-check each gets: formats, totals,
// records of the last second, sampling with its source, sequence gaps,
// decode errors, the active-timeout warning and the last datagram's time.
func TestExportersSelfCheck(t *testing.T) {
	exporterC := netip.MustParseAddr("192.0.2.3")
	clock := tExport.Add(2 * time.Second)
	d := New(Options{Window: 5 * time.Second, DefaultSamplingRate: 7,
		Exporters: map[netip.Addr]ExporterOptions{exporterC: {Name: "edge-c", SamplingRate: 50}}},
		Deps{Logger: newDiscardLogger(), Now: func() time.Time { return clock }})
	b := NewBatcher(nil, flow.SinkFunc(func(b *flow.Batch) { flow.DefaultPool.Put(b) }))
	decode := func(dg []byte, from netip.Addr, at time.Time, wantErr bool) {
		t.Helper()
		if _, err := d.Decode(dg, from, at, b); (err != nil) != wantErr {
			t.Fatalf("decode from %s: error %v, want one: %v", from, err, wantErr)
		}
	}
	f := v4flow("198.51.100.1", "203.0.113.1", 53, 4000, 10, 1500)
	sample := func(seq uint32) fg.SFlowSample {
		return fg.SFlowSample{Sequence: seq, SourceIndex: 4, SamplingRate: 2000, Flow: f}
	}
	// A: sFlow, 2 samples in second 0, then 3 in second 1 after 4 lost ones.
	decode(fg.AppendSFlow(nil, fg.SFlowHeader{Agent: exporterA, Sequence: 1}, []fg.SFlowSample{sample(1), sample(2)}), exporterA, tExport, false)
	decode(fg.AppendSFlow(nil, fg.SFlowHeader{Agent: exporterA, Sequence: 2}, []fg.SFlowSample{sample(7), sample(8), sample(9)}), exporterA, tExport.Add(1500*time.Millisecond), false)
	// B: NetFlow v5 with its header's interval, IPFIX without any rate and
	// a 60 s active timeout (the window is 5 s), and a truncated IPFIX one.
	v5, err := fg.AppendNetFlow5(nil, fg.NetFlow5Header{Uptime: time.Hour, Time: tExport, SamplingMode: 2, SamplingInterval: 1000}, []fg.Flow{f, f})
	if err != nil {
		t.Fatal(err)
	}
	decode(v5, exporterB, tExport, false)
	ot := fg.TimeoutOptions(fg.VersionIPFIX, 260)
	tpl := fg.Template{ID: 256, Fields: fg.FlowFields(fg.VersionIPFIX, fg.IPv4, fg.TimesDefault)}
	e := &fg.Exporter{Version: fg.VersionIPFIX, DomainID: 1, Now: tExport}
	decode(e.Datagram(fg.TemplateSet(ot, tpl), fg.OptionsDataSet(ot, fg.Options{ActiveTimeout: 60, IdleTimeout: 15}), fg.DataSet(tpl, f)), exporterB, tExport.Add(time.Second), false)
	decode([]byte{0, 10, 0, 16}, exporterB, tExport.Add(1200*time.Millisecond), true)
	// C: NetFlow v5, its configured rate overriding the header's.
	decode(v5, exporterC, tExport.Add(300*time.Millisecond), false)

	want := []ExporterInfo{
		{Address: exporterA, Name: "192.0.2.1", Formats: []flow.Format{flow.FormatSFlow5},
			Sampling:       []SamplingSeen{{flow.FormatSFlow5, 2000, flow.SamplingSample}},
			DatagramsTotal: 2, RecordsTotal: 5, RecordsPerSecond: 3, SequenceGaps: 4,
			LastSeen: tExport.Add(1500 * time.Millisecond)},
		{Address: exporterB, Name: "192.0.2.2", ActiveTimeout: time.Minute, ActiveTimeoutWarning: true,
			Formats: []flow.Format{flow.FormatNetFlow5, flow.FormatIPFIX},
			Sampling: []SamplingSeen{{flow.FormatNetFlow5, 1000, flow.SamplingHeader},
				{flow.FormatIPFIX, 7, flow.SamplingDefault}},
			DatagramsTotal: 3, RecordsTotal: 3, RecordsPerSecond: 1, DecodeErrors: 1,
			LastSeen: tExport.Add(1200 * time.Millisecond)},
		{Address: exporterC, Name: "edge-c", Override: 50, Formats: []flow.Format{flow.FormatNetFlow5},
			Sampling:       []SamplingSeen{{flow.FormatNetFlow5, 50, flow.SamplingOverride}},
			DatagramsTotal: 1, RecordsTotal: 2, RecordsPerSecond: 0, // its records are of second 0
			LastSeen: tExport.Add(300 * time.Millisecond)},
	}
	got := d.Exporters()
	if len(got) != len(want) {
		t.Fatalf("%d exporters, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("exporter %s:\n got %+v\nwant %+v", want[i].Address, got[i], want[i])
		}
	}

	// A second later nothing came: no record in the last second.
	clock = clock.Add(time.Second)
	for _, info := range d.Exporters() {
		if info.RecordsPerSecond != 0 {
			t.Errorf("%s: %d records/s with nothing received in the last second", info.Address, info.RecordsPerSecond)
		}
	}
}
