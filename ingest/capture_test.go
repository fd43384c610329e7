package ingest

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/internal/testutil"
)

// replayRecords decodes the given corpus captures, in order, with one
// decoder, and returns every record.
func replayRecords(t *testing.T, opts Options, names ...string) []flow.Record {
	t.Helper()
	dir := testutil.FlowsDir(t)
	var out []flow.Record
	d := New(opts, Deps{Logger: newDiscardLogger()})
	b := NewBatcher(nil, flow.SinkFunc(func(b *flow.Batch) {
		out = append(out, b.Valid()...)
		flow.DefaultPool.Put(b)
	}))
	for _, n := range names {
		_, err := ReadCapture(filepath.Join(dir, n), func(dg Datagram) error {
			_, _ = d.Decode(dg.Payload, dg.Src.Addr(), dg.Time, b)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	b.Flush()
	return out
}

// rateHistogram counts records per (rate, provenance).
func rateHistogram(recs []flow.Record) map[string]int {
	h := map[string]int{}
	for _, r := range recs {
		h[r.Sampling.String()+":"+itoa(r.SamplingRate)]++
	}
	return h
}

func itoa(v uint32) string {
	if v == 0 {
		return "0"
	}
	var b [10]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}

// TestRealCaptureSamplingRates pins the rate and provenance Kapkan resolves
// on real exporters' captures.
func TestRealCaptureSamplingRates(t *testing.T) {
	tests := []struct {
		name     string
		captures []string
		opts     Options
		want     map[string]int
	}{
		{
			name:     "netflow v9 options scoped by sampler id, two samplers",
			captures: []string{"pcap/akvorado_netflow_combined_multiplesamplingrates.pcap"},
			want:     map[string]int{"options:2000": 11, "options:4000": 1},
		},
		{
			name:     "netflow v9 rate in the record",
			captures: []string{"pcap/akvorado_netflow_combined_samplingrate.pcap"},
			want:     map[string]int{"record:2048": 6},
		},
		{
			name:     "ipfix ipv6 sampling options (pmacct cisco)",
			captures: []string{"pcap/pmacct_104-IPFIXv10-IPv6-CISCO-sampling_option_traffic-00.pcap"},
			want:     map[string]int{"options:256": 3},
		},
		{
			name:     "netflow v5 header interval",
			captures: []string{"pcap/graylog_netflow5.pcap"},
			want:     map[string]int{"header:100": 4},
		},
		{
			name:     "netflow v5 header interval zero falls back to the default",
			captures: []string{"raw/wrapped/telegraf_netflow_v5_example.pcap"},
			opts:     Options{DefaultSamplingRate: 7},
			want:     map[string]int{"default:7": 8},
		},
		{
			name:     "override wins over the header",
			captures: []string{"pcap/graylog_netflow5.pcap"},
			opts:     Options{Exporters: overrideAll(t, "pcap/graylog_netflow5.pcap", 5000)},
			want:     map[string]int{"override:5000": 4},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := rateHistogram(replayRecords(t, tc.opts, tc.captures...))
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// overrideAll returns an override for every exporter seen in a capture.
func overrideAll(t *testing.T, capture string, rate uint32) map[netip.Addr]ExporterOptions {
	t.Helper()
	m := map[netip.Addr]ExporterOptions{}
	_, err := ReadCapture(filepath.Join(testutil.FlowsDir(t), capture), func(dg Datagram) error {
		m[dg.Src.Addr()] = ExporterOptions{SamplingRate: rate}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRealCaptureFields pins decoded fields of records from real exporters.
func TestRealCaptureFields(t *testing.T) {
	t.Run("sflow icmpv6 from an ethernet header", func(t *testing.T) {
		recs := replayRecords(t, Options{}, "pcap/akvorado_sflow_data-icmpv6.pcap")
		if len(recs) != 1 {
			t.Fatalf("%d records", len(recs))
		}
		r := recs[0]
		if r.Flags&flow.FlagIPv6 == 0 || r.Proto != 58 || r.SrcAddr().String() != "fe80::d05b:45ff:feee:5ecf" ||
			r.DstAddr().String() != "2001:db8::" {
			t.Errorf("record %+v", r)
		}
		if r.DstPort != 135<<8 { // ICMPv6 neighbour solicitation, code 0
			t.Errorf("icmp type/code %#x, want 0x8700", r.DstPort)
		}
		if r.Bytes != 90 || r.Packets != 1 || r.Sampling != flow.SamplingSample {
			t.Errorf("bytes %d packets %d sampling %s", r.Bytes, r.Packets, r.Sampling)
		}
	})
	t.Run("netflow v9 times come from uptime", func(t *testing.T) {
		recs := replayRecords(t, Options{}, "pcap/akvorado_netflow_combined_samplingrate.pcap")
		for _, r := range recs {
			if r.Start == 0 || r.End < r.Start || r.Received-r.End > int64(3600e9) || r.End-r.Received > int64(60e9) {
				t.Fatalf("start %d end %d received %d", r.Start, r.End, r.Received)
			}
		}
	})
	t.Run("data before template is decoded once the template arrives", func(t *testing.T) {
		// data.pcap holds only data; template.pcap its template. Fed in that
		// order, tshark decodes nothing from the data; Kapkan keeps it aside.
		recs := replayRecords(t, Options{}, "pcap/akvorado_netflow_data.pcap", "pcap/akvorado_netflow_template.pcap")
		alone := replayRecords(t, Options{}, "pcap/akvorado_netflow_template.pcap", "pcap/akvorado_netflow_data.pcap")
		if len(recs) == 0 || len(recs) != len(alone) {
			t.Fatalf("data then template gave %d records, template then data %d", len(recs), len(alone))
		}
		for i := range recs {
			a, b := recs[i], alone[i]
			a.Received, b.Received = 0, 0
			if a != b {
				t.Fatalf("record %d differs:\n%+v\n%+v", i, a, b)
			}
		}
	})
}
