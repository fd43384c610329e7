package ingest

import (
	"net/netip"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/flow"
	fg "github.com/kapkan-io/kapkan/ingest/flowgen"
	"github.com/kapkan-io/kapkan/internal/testutil"
)

// heapAlloc is the live heap after two collections.
func heapAlloc() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// nthAddr is the n-th address of 10.0.0.0/8 after 10.0.0.1.
func nthAddr(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n) + 1})
}

// wideTemplate is a flow template of n fixed-length fields.
func wideTemplate(id uint16, n int) fg.Template {
	tpl := fg.Template{ID: id}
	for i := range n {
		tpl.Fields = append(tpl.Fields, fg.Field{ID: uint16(i + 1), Len: 4})
	}
	return tpl
}

func discardBatcher() *Batcher {
	return NewBatcher(nil, flow.SinkFunc(func(b *flow.Batch) { flow.DefaultPool.Put(b) }))
}

// TestTemplateFloodStaysUnderCap offers twice ingest.max_templates
// templates of the widest accepted kind, one per datagram, from many
// exporters and observation domains: exactly the cap is kept, every other
// one is refused and counted (as a refusal and as a decode error), the heap
// grows by no more than the documented cost per template, a template with
// too many fields is refused, and an exporter named in the configuration
// still gets its templates once the cap is reached.
func TestTemplateFloodStaysUnderCap(t *testing.T) {
	const maxTemplates = 1000
	for _, tc := range []struct {
		name    string
		version uint16
		format  string
	}{
		{"netflow v9", fg.VersionNetFlow9, "netflow9"},
		{"ipfix", fg.VersionIPFIX, "ipfix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			configured := netip.MustParseAddr("192.0.2.99")
			reg := prometheus.NewRegistry()
			before := heapAlloc()
			d := New(Options{Limits: Limits{MaxTemplates: maxTemplates},
				Exporters: map[netip.Addr]ExporterOptions{configured: {Name: "edge"}}},
				Deps{Registry: reg, Logger: newDiscardLogger()})
			b := discardBatcher()
			const exporters, domains = 50, 8
			offered := 0
			for offered < 2*maxTemplates {
				n := offered
				e := &fg.Exporter{Version: tc.version, DomainID: uint32(n / exporters % domains), Now: tExport}
				dg := e.Datagram(fg.TemplateSet(wideTemplate(uint16(256+n/(exporters*domains)), maxTemplateFields)))
				_, _ = d.Decode(dg, nthAddr(n%exporters), tExport, b)
				offered++
			}
			after := heapAlloc()
			if got := d.budgets.templates.used.Load(); got != maxTemplates {
				t.Errorf("templates kept: got %d, want the cap %d", got, maxTemplates)
			}
			kept := 0
			for _, st := range d.exporters {
				kept += len(st.templates.m)
			}
			if kept != maxTemplates {
				t.Errorf("templates in the stores: got %d, want %d", kept, maxTemplates)
			}
			refused := testutil.MetricValue(t, reg, "kapkan_ingest_state_refused_total", map[string]string{"kind": "template"})
			if refused != float64(offered-maxTemplates) {
				t.Errorf("refused templates: got %v, want %d", refused, offered-maxTemplates)
			}
			errs := 0.0
			for i := range exporters {
				errs += testutil.MetricValue(t, reg, "kapkan_ingest_decode_errors_total",
					map[string]string{"exporter": nthAddr(i).String(), "format": tc.format, "reason": reasonTemplateCap})
			}
			if errs != refused {
				t.Errorf("template_limit decode errors: got %v, want one per refusal (%v)", errs, refused)
			}
			perTemplate := (after - before) / maxTemplates
			t.Logf("heap: %d KB for %d templates of %d fields and %d exporters: %d bytes per template, exporters included",
				(after-before)>>10, maxTemplates, maxTemplateFields, exporters, perTemplate)
			if perTemplate > 6<<10 {
				t.Errorf("heap grew by %d bytes per template, more than the 6 KB documented", perTemplate)
			}

			// Too many fields: refused even with room left.
			fresh := New(Options{}, Deps{Registry: prometheus.NewRegistry(), Logger: newDiscardLogger()})
			e := &fg.Exporter{Version: tc.version, Now: tExport}
			if _, err := fresh.Decode(e.Datagram(fg.TemplateSet(wideTemplate(300, maxTemplateFields+1))), exporterA, tExport, b); err == nil {
				t.Error("a template of too many fields was accepted")
			}
			if got := fresh.budgets.templates.used.Load(); got != 0 {
				t.Errorf("a template of too many fields was kept (%d)", got)
			}

			// The configured exporter is not locked out.
			e = &fg.Exporter{Version: tc.version, DomainID: 1, Now: tExport}
			tpl := fg.Template{ID: 256, Fields: fg.FlowFields(tc.version, fg.IPv4, fg.TimesNone)}
			if _, err := d.Decode(e.Datagram(fg.TemplateSet(tpl)), configured, tExport, b); err != nil {
				t.Errorf("configured exporter: %v", err)
			}
			if _, err := d.exporters[configured].templates.GetTemplate(tc.version, 1, 256); err != nil {
				t.Error("the configured exporter's template was refused once the cap was reached")
			}
		})
	}
}

// TestExporterFloodStaysUnderCap sends one sFlow datagram from each of many
// addresses: ingest.max_exporters get state, every other address is
// refused and counted (as a refusal and as an exporter_limit decode error
// under exporter="other"), the heap grows by no more than the documented
// cost per exporter, and a configured exporter is admitted after the flood.
func TestExporterFloodStaysUnderCap(t *testing.T) {
	const maxExporters, offered = 3000, 4000
	configured := netip.MustParseAddr("192.0.2.99")
	reg := prometheus.NewRegistry()
	before := heapAlloc()
	d := New(Options{Limits: Limits{MaxExporters: maxExporters},
		Exporters: map[netip.Addr]ExporterOptions{configured: {Name: "edge"}}},
		Deps{Registry: reg, Logger: newDiscardLogger()})
	b := discardBatcher()
	f := v4flow("198.51.100.1", "203.0.113.1", 53, 4000, 10, 1500)
	var labelled int64
	for i := range offered {
		if i == maxExporterLabels {
			labelled = heapAlloc()
		}
		dg := fg.AppendSFlow(nil, fg.SFlowHeader{Agent: nthAddr(i), Sequence: 1},
			[]fg.SFlowSample{{Sequence: 1, SourceIndex: 4, SamplingRate: 100, Flow: f}})
		_, _ = d.Decode(dg, nthAddr(i), tExport, b)
	}
	after := heapAlloc()
	if got := testutil.MetricValue(t, reg, "kapkan_ingest_exporters", nil); got != maxExporters {
		t.Errorf("exporters: got %v, want the cap %d", got, maxExporters)
	}
	want := float64(offered - maxExporters)
	if got := testutil.MetricValue(t, reg, "kapkan_ingest_state_refused_total", map[string]string{"kind": "exporter"}); got != want {
		t.Errorf("refused exporters: got %v, want %v", got, want)
	}
	if got := testutil.MetricValue(t, reg, "kapkan_ingest_decode_errors_total",
		map[string]string{"exporter": "other", "reason": "exporter_limit"}); got != want {
		t.Errorf("exporter_limit decode errors: got %v, want %v", got, want)
	}
	perLabelled := (labelled - before) / maxExporterLabels
	perOther := (after - labelled) / (maxExporters - maxExporterLabels)
	t.Logf("heap: %d KB for %d exporters: %d bytes per exporter with a label of its own (the first %d), %d bytes per exporter after",
		(after-before)>>10, maxExporters, perLabelled, maxExporterLabels, perOther)
	if perLabelled > 20<<10 || perOther > 3<<10 {
		t.Errorf("heap grew by %d / %d bytes per exporter, more than the 20 KB / 3 KB documented", perLabelled, perOther)
	}
	dg := fg.AppendSFlow(nil, fg.SFlowHeader{Agent: configured, Sequence: 1},
		[]fg.SFlowSample{{Sequence: 1, SourceIndex: 4, SamplingRate: 100, Flow: f}})
	if res, err := d.Decode(dg, configured, tExport, b); err != nil || res.Records != 1 {
		t.Errorf("configured exporter after the flood: %d records, error %v", res.Records, err)
	}
}

// TestPendingFloodStaysUnderCap sends data sets of unknown templates from
// many exporters: what is kept waiting for a template stays within
// ingest.max_pending_bytes, and each set refused is counted.
func TestPendingFloodStaysUnderCap(t *testing.T) {
	const maxPending, exporters, setBytes = 64 << 10, 200, 1000
	reg := prometheus.NewRegistry()
	d := New(Options{Limits: Limits{MaxPendingBytes: maxPending}}, Deps{Registry: reg, Logger: newDiscardLogger()})
	b := discardBatcher()
	body := make([]byte, setBytes)
	for i := range exporters {
		e := &fg.Exporter{Version: fg.VersionIPFIX, Now: tExport}
		_, _ = d.Decode(e.Datagram(fg.RawSet(300, 1, body)), nthAddr(i), tExport, b)
	}
	fit := maxPending / (setBytes + pendingSetOverhead)
	if got := d.budgets.pending.used.Load(); got != int64(fit*(setBytes+pendingSetOverhead)) {
		t.Errorf("pending bytes accounted: got %d, want %d sets", got, fit)
	}
	if got := testutil.MetricValue(t, reg, "kapkan_ingest_state_refused_total", map[string]string{"kind": "pending_set"}); got != float64(exporters-fit) {
		t.Errorf("refused sets: got %v, want %d", got, exporters-fit)
	}
	// Expiry gives the budget back.
	later := tExport.Add(pendingTTL + time.Second)
	for i := range fit {
		d.exporters[nthAddr(i)].mu.Lock()
		d.expirePending(d.exporters[nthAddr(i)], later.UnixNano())
		d.exporters[nthAddr(i)].mu.Unlock()
	}
	if got := d.budgets.pending.used.Load(); got != 0 {
		t.Errorf("pending bytes after expiry: got %d, want 0", got)
	}
}

// TestWorkerStatsSize: a worker's slot fills two cache lines exactly, so
// that slots of two workers allocated side by side share none.
func TestWorkerStatsSize(t *testing.T) {
	if got := unsafe.Sizeof(workerStats{}); got != 128 {
		t.Errorf("workerStats is %d bytes, want 128", got)
	}
}

// TestExportersSumsWorkers decodes one exporter's datagrams through two
// batchers (two workers) and without one: the self-check adds their
// figures up.
func TestExportersSumsWorkers(t *testing.T) {
	clock := tExport.Add(2 * time.Second)
	d := New(Options{}, Deps{Logger: newDiscardLogger(), Now: func() time.Time { return clock }})
	f := v4flow("198.51.100.1", "203.0.113.1", 53, 4000, 10, 1500)
	dg := func(samples int) []byte {
		s := make([]fg.SFlowSample, samples)
		for i := range s {
			s[i] = fg.SFlowSample{Sequence: uint32(i), SourceIndex: 4, SamplingRate: 100, Flow: f}
		}
		return fg.AppendSFlow(nil, fg.SFlowHeader{Agent: exporterA}, s)
	}
	b1, b2, b3 := discardBatcher(), discardBatcher(), discardBatcher()
	v5, err := fg.AppendNetFlow5(nil, fg.NetFlow5Header{Uptime: time.Hour, Time: tExport}, []fg.Flow{f})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		b  *Batcher
		dg []byte
		at time.Time
	}{
		{b1, dg(2), tExport.Add(time.Second)},
		{b2, dg(3), tExport.Add(1500 * time.Millisecond)},
		{b1, dg(1), tExport},
		{b3, v5, tExport.Add(1200 * time.Millisecond)},
	} {
		if _, err := d.Decode(c.dg, exporterA, c.at, c.b); err != nil {
			t.Fatal(err)
		}
	}
	infos := d.Exporters()
	if len(infos) != 1 {
		t.Fatalf("%d exporters", len(infos))
	}
	got := infos[0]
	if got.DatagramsTotal != 4 || got.RecordsTotal != 7 || got.RecordsPerSecond != 6 ||
		!got.LastSeen.Equal(tExport.Add(1500*time.Millisecond)) ||
		len(got.Formats) != 2 || got.Formats[0] != flow.FormatSFlow5 || got.Formats[1] != flow.FormatNetFlow5 {
		t.Errorf("got %d datagrams, %d records, %d records/s, last seen %v, formats %v; want 4, 7, 6, %v, [sflow5 netflow5]",
			got.DatagramsTotal, got.RecordsTotal, got.RecordsPerSecond, got.LastSeen, got.Formats, tExport.Add(1500*time.Millisecond))
	}
	if n := len(d.exporters[exporterA].workers); n != 3 {
		t.Errorf("%d worker slots, want 3", n)
	}
}
