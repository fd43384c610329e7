// Package flow owns flow.Record, the one value every pipeline stage shares, and
// the pooled fixed-capacity batches records travel in.
//
// A Record is a fixed-size value without pointers so that batches are flat
// arrays the garbage collector never scans. Addresses are stored as 16 bytes,
// IPv4 in its IPv4-mapped IPv6 form (::ffff:a.b.c.d).
package flow

import (
	"net/netip"
)

// Format is the telemetry format a record was decoded from.
type Format uint8

// Formats, in the order used for metrics and summaries.
const (
	FormatUnknown Format = iota
	FormatSFlow5
	FormatNetFlow5
	FormatNetFlow9
	FormatIPFIX
	numFormats
)

// Formats lists the known formats (FormatUnknown excluded).
var Formats = [...]Format{FormatSFlow5, FormatNetFlow5, FormatNetFlow9, FormatIPFIX}

var formatNames = [numFormats]string{"unknown", "sflow5", "netflow5", "netflow9", "ipfix"}

// String returns the format's name as used in metrics and JSON: sflow5,
// netflow5, netflow9 or ipfix.
func (f Format) String() string {
	if f >= numFormats {
		return "unknown"
	}
	return formatNames[f]
}

// SamplingSource says where a record's sampling rate came from.
type SamplingSource uint8

// Sampling rate provenances.
const (
	// SamplingDefault: the telemetry carried no rate and the configured
	// ingest.default_sampling_rate was applied.
	SamplingDefault SamplingSource = iota
	// SamplingSample: sFlow's per-sample rate.
	SamplingSample
	// SamplingHeader: NetFlow v5's header sampling interval.
	SamplingHeader
	// SamplingOptions: a NetFlow v9 / IPFIX options data record.
	SamplingOptions
	// SamplingRecord: sampling fields inside the flow record itself.
	SamplingRecord
	// SamplingOverride: a per-exporter override from the configuration.
	SamplingOverride
	numSamplingSources
)

var samplingNames = [numSamplingSources]string{"default", "sample", "header", "options", "record", "override"}

// String returns the provenance's name: default, sample, header, options,
// record or override.
func (s SamplingSource) String() string {
	if s >= numSamplingSources {
		return "unknown"
	}
	return samplingNames[s]
}

// Record flags.
const (
	// FlagFragment: the flow is made of IP fragments (non-first fragments or
	// the more-fragments bit set).
	FlagFragment uint8 = 1 << iota
	// FlagIPv6: the addresses are IPv6 (otherwise IPv4-mapped IPv4, or none).
	FlagIPv6
	// FlagHasIP: Src and Dst hold addresses; records of non-IP traffic (an ARP
	// frame in an sFlow sample, an MPLS-only NetFlow record) have none.
	FlagHasIP
)

// Record is one flow record or packet sample as decoded from telemetry.
// Packets and Bytes are as exported, not yet multiplied by SamplingRate:
// sampling correction happens once, where counters are added.
type Record struct {
	// Received is when the datagram arrived (capture time in replay), Unix ns.
	Received int64
	// Start and End bound the flow, Unix ns; both 0 when the format has no
	// flow times (sFlow).
	Start, End int64

	Bytes   uint64
	Packets uint64

	Exporter [16]byte
	Src, Dst [16]byte

	SamplingRate uint32
	SrcPort      uint16
	DstPort      uint16
	Proto        uint8
	TCPFlags     uint8
	Flags        uint8
	Format       Format
	Sampling     SamplingSource
}

// addr unmaps the stored form back into a netip.Addr.
func addr(b [16]byte) netip.Addr { return netip.AddrFrom16(b).Unmap() }

// SrcAddr returns the source address (invalid when the record has none).
func (r *Record) SrcAddr() netip.Addr {
	if r.Flags&FlagHasIP == 0 {
		return netip.Addr{}
	}
	return addr(r.Src)
}

// DstAddr returns the destination address (invalid when the record has none).
func (r *Record) DstAddr() netip.Addr {
	if r.Flags&FlagHasIP == 0 {
		return netip.Addr{}
	}
	return addr(r.Dst)
}

// ExporterAddr returns the address of the router that exported the record.
func (r *Record) ExporterAddr() netip.Addr { return addr(r.Exporter) }

// IsFragment reports whether the record describes IP fragments.
func (r *Record) IsFragment() bool { return r.Flags&FlagFragment != 0 }

// ParseFormat reads a format name as String writes it (sflow5, netflow5,
// netflow9, ipfix); "sflow" is accepted for sflow5.
func ParseFormat(s string) (Format, bool) {
	if s == "sflow" {
		return FormatSFlow5, true
	}
	for _, f := range Formats {
		if f.String() == s {
			return f, true
		}
	}
	return FormatUnknown, false
}
