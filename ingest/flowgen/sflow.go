package flowgen

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// HeaderProtocol is the header_protocol of an sFlow raw packet header record
// (SFLOW-STRUCTS5): the first layer of the sampled header bytes.
type HeaderProtocol uint32

// Header protocols flowgen builds. The zero value means HeaderEthernet.
const (
	HeaderEthernet HeaderProtocol = 1
	HeaderIPv4     HeaderProtocol = 11
	HeaderIPv6     HeaderProtocol = 12
)

// SFlowRecord selects the flow record that describes a sampled packet.
type SFlowRecord uint8

// Flow record kinds.
const (
	// RecordRawHeader is a raw packet header record (flow format 1): the
	// first 128 bytes of a packet built from the Flow.
	RecordRawHeader SFlowRecord = iota
	// RecordSampledIP is a sampled_ipv4 (flow format 3) or sampled_ipv6
	// (flow format 4) record, after the Flow's family.
	RecordSampledIP
)

// IfFormat is the format of an sFlow interface value (the top two bits of a
// compact input/output field, or the format word of an expanded one).
type IfFormat uint8

// Interface formats (SFLOW-DATAGRAM5, interface).
const (
	// IfIndex: the value is an ifIndex (0 if unknown).
	IfIndex IfFormat = 0
	// IfDiscarded: output only, the packet was dropped; the value is the
	// reason.
	IfDiscarded IfFormat = 1
	// IfMultiple: output only, the packet went out of several interfaces;
	// the value is their number (0 if unknown).
	IfMultiple IfFormat = 2
)

// sFlow datagram and structure numbers (enterprise 0).
const (
	sflowVersion         = 5
	sflowFlowSample      = 1
	sflowCounterSample   = 2
	sflowFlowSampleExp   = 3
	sflowCounterSampleEx = 4
	sflowRawHeader       = 1
	sflowSampledIPv4     = 3
	sflowSampledIPv6     = 4
	sflowGenericIf       = 1
	sflowGenericIfLen    = 88
	sflowMaxHeader       = 128 // bytes of a packet real agents copy
	sflowStripped        = 4   // the FCS
)

// SFlowHeader is the header of an sFlow v5 datagram.
type SFlowHeader struct {
	// Agent is the agent address, IPv4 or IPv6 (invalid: 0.0.0.0).
	Agent netip.Addr
	// SubAgentID tells apart the sub-agents of one agent.
	SubAgentID uint32
	// Sequence is the datagram sequence number of this sub-agent.
	Sequence uint32
	// Uptime is the agent's uptime, written in milliseconds modulo 2^32.
	Uptime time.Duration
}

// SFlowSample is one sample of a datagram: a flow sample describing one
// sampled packet, or, when Counters is set, a counter sample.
type SFlowSample struct {
	// Sequence is the sample sequence number of this data source.
	Sequence uint32
	// SourceType is the data source type: 0 ifIndex, 1 smonVlanDataSource,
	// 2 entPhysicalEntry.
	SourceType uint8
	// SourceIndex is the data source index (24 bits unless Expanded).
	SourceIndex uint32
	// SamplingRate is the sampling_rate: one packet out of SamplingRate.
	SamplingRate uint32
	// SamplePool is the number of packets that could have been sampled.
	SamplePool uint32
	// Drops is the number of samples dropped for lack of resources.
	Drops uint32
	// Input and Output are the interface values (30 bits unless Expanded),
	// interpreted after InputFormat and OutputFormat.
	Input, Output uint32
	// InputFormat and OutputFormat are the interface formats.
	InputFormat, OutputFormat IfFormat
	// Expanded selects the expanded sample formats (flow sample 3, counter
	// sample 4) instead of the compact ones (1 and 2).
	Expanded bool
	// Header is the header protocol of a raw header record. HeaderEthernet
	// (or zero) builds an Ethernet frame; any other value builds a bare
	// IPv4 or IPv6 packet after the Flow's family, while the value is
	// written as given (so a mismatched one can be produced on purpose).
	Header HeaderProtocol
	// VLAN, when not zero, adds an 802.1Q tag with this VLAN id to an
	// Ethernet header.
	VLAN uint16
	// Record selects the flow record describing the packet.
	Record SFlowRecord
	// Flow is the sampled packet.
	Flow Flow
	// Counters, when not nil, makes this a counter sample carrying one
	// generic interface counters record; the flow fields above are unused.
	Counters *IfCounters
}

// IfCounters is a generic interface counters record (counter format 1,
// SFLOW-STRUCTS5 if_counters). Its fields are those of the structure, in
// order, without their "if" prefix.
type IfCounters struct {
	Index            uint32
	Type             uint32
	Speed            uint64
	Direction        uint32 // 0 unknown, 1 full-duplex, 2 half-duplex, 3 in, 4 out
	Status           uint32 // bit 0 admin up, bit 1 operational up
	InOctets         uint64
	InUcastPkts      uint32
	InMulticastPkts  uint32
	InBroadcastPkts  uint32
	InDiscards       uint32
	InErrors         uint32
	InUnknownProtos  uint32
	OutOctets        uint64
	OutUcastPkts     uint32
	OutMulticastPkts uint32
	OutBroadcastPkts uint32
	OutDiscards      uint32
	OutErrors        uint32
	PromiscuousMode  uint32
}

// AppendSFlow appends an sFlow v5 datagram holding samples to dst and
// returns the extended slice. It does not allocate when dst has room for the
// datagram: 28 bytes (40 for an IPv6 agent) plus at most 204 per sample.
//
// A raw header record (the default) holds the first 128 bytes of a real
// packet built from the sample's Flow: Ethernet (with its VLAN tag, if any)
// or bare IP, then IPv4 (with its header checksum) or IPv6 (with a fragment
// header for fragments), then TCP, UDP, ICMP or ICMPv6 with a checksum over
// the whole packet, whose payload is zeros. frame_length is the Flow's
// FrameLen and stripped is 4 (the FCS). A Flow without addresses sampled as
// Ethernet is an ARP frame.
func AppendSFlow(dst []byte, h SFlowHeader, samples []SFlowSample) []byte {
	dst = be32(dst, sflowVersion)
	dst = appendSFlowAddr(dst, h.Agent)
	dst = be32(dst, h.SubAgentID)
	dst = be32(dst, h.Sequence)
	dst = be32(dst, uint32(h.Uptime.Milliseconds()))
	dst = be32(dst, uint32(len(samples)))
	for i := range samples {
		dst = appendSFlowSample(dst, &samples[i])
	}
	return dst
}

// appendSFlowAddr appends an sFlow address: type 1 and 4 bytes, or type 2
// and 16 bytes.
func appendSFlowAddr(b []byte, a netip.Addr) []byte {
	if is6(a) {
		a16 := a.As16()
		return append(be32(b, 2), a16[:]...)
	}
	a4 := as4(a)
	return append(be32(b, 1), a4[:]...)
}

// beginOpaque appends a structure's format word and a length placeholder, and
// returns where the length goes.
func beginOpaque(b []byte, format uint32) ([]byte, int) {
	b = be32(b, format)
	at := len(b)
	return be32(b, 0), at
}

// endOpaque writes the length of the structure begun at at.
func endOpaque(b []byte, at int) {
	binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at-4))
}

func appendSFlowSample(b []byte, s *SFlowSample) []byte {
	var format uint32
	switch {
	case s.Counters != nil && s.Expanded:
		format = sflowCounterSampleEx
	case s.Counters != nil:
		format = sflowCounterSample
	case s.Expanded:
		format = sflowFlowSampleExp
	default:
		format = sflowFlowSample
	}
	b, at := beginOpaque(b, format)
	b = be32(b, s.Sequence)
	if s.Expanded {
		b = be32(b, uint32(s.SourceType))
		b = be32(b, s.SourceIndex)
	} else {
		b = be32(b, uint32(s.SourceType)<<24|s.SourceIndex&0x00ffffff)
	}
	if s.Counters != nil {
		b = be32(b, 1) // one counter record
		b = appendIfCounters(b, s.Counters)
		endOpaque(b, at)
		return b
	}
	b = be32(b, s.SamplingRate)
	b = be32(b, s.SamplePool)
	b = be32(b, s.Drops)
	b = appendSFlowIf(b, s.Expanded, s.InputFormat, s.Input)
	b = appendSFlowIf(b, s.Expanded, s.OutputFormat, s.Output)
	b = be32(b, 1) // one flow record
	if s.Record == RecordSampledIP {
		b = appendSampledIP(b, s)
	} else {
		b = appendRawHeader(b, s)
	}
	endOpaque(b, at)
	return b
}

func appendSFlowIf(b []byte, expanded bool, format IfFormat, v uint32) []byte {
	if expanded {
		return be32(be32(b, uint32(format)), v)
	}
	return be32(b, uint32(format)<<30|v&0x3fffffff)
}

// sampleLengths returns the frame_length of a sample and the length of the IP
// packet inside it.
func sampleLengths(s *SFlowSample, fam Family, ethernet, arp bool) (frame, ipLen int) {
	want := int(s.Flow.FrameLen)
	if !ethernet {
		hdrs := packetHeadersLen(&s.Flow, fam)
		frame = max(want, hdrs)
		return frame, frame
	}
	l2 := l2Len(s.VLAN)
	if arp {
		return max(want, minFrameLen, l2+arpLen+fcsLen), 0
	}
	hdrs := packetHeadersLen(&s.Flow, fam)
	if want == 0 {
		return max(minFrameLen, l2+hdrs+fcsLen), hdrs
	}
	frame = max(want, l2+hdrs+fcsLen)
	return frame, frame - l2 - fcsLen
}

func appendRawHeader(b []byte, s *SFlowSample) []byte {
	f := &s.Flow
	fam := f.Family()
	proto := s.Header
	if proto == 0 {
		proto = HeaderEthernet
	}
	ethernet := proto == HeaderEthernet
	arp := ethernet && !f.hasIP()
	frame, ipLen := sampleLengths(s, fam, ethernet, arp)

	b, at := beginOpaque(b, sflowRawHeader)
	b = be32(b, uint32(proto))
	b = be32(b, uint32(frame))
	b = be32(b, sflowStripped)
	b = be32(b, 0) // header length, set below
	hs := len(b)
	if !ethernet {
		b = appendIP(b, f, fam, ipLen, nil, min(sflowMaxHeader, frame))
	} else {
		captured := min(sflowMaxHeader, frame-fcsLen)
		switch {
		case arp:
			b = appendEthernet(b, macBcast, s.VLAN, etherTypeARP)
			b = appendARP(b)
		case fam == IPv4:
			b = appendEthernet(b, macHost, s.VLAN, etherTypeIPv4)
			b = appendIP(b, f, fam, ipLen, nil, captured-l2Len(s.VLAN))
		default:
			b = appendEthernet(b, macHost, s.VLAN, etherTypeIPv6)
			b = appendIP(b, f, fam, ipLen, nil, captured-l2Len(s.VLAN))
		}
		b = appendZeros(b, captured-(len(b)-hs)) // Ethernet padding
	}
	n := len(b) - hs
	binary.BigEndian.PutUint32(b[hs-4:], uint32(n))
	b = appendZeros(b, (4-n%4)%4) // XDR opaque padding
	endOpaque(b, at)
	return b
}

func appendSampledIP(b []byte, s *SFlowSample) []byte {
	f := &s.Flow
	fam := f.Family()
	proto := s.Header
	if proto == 0 {
		proto = HeaderEthernet
	}
	_, ipLen := sampleLengths(s, fam, proto == HeaderEthernet, false)
	var at int
	if fam == IPv4 {
		b, at = beginOpaque(b, sflowSampledIPv4)
		src, dst := as4(f.Src), as4(f.Dst)
		b = be32(b, uint32(ipLen))
		b = be32(b, uint32(f.Proto))
		b = append(b, src[:]...)
		b = append(b, dst[:]...)
	} else {
		b, at = beginOpaque(b, sflowSampledIPv6)
		src, dst := as16(f.Src), as16(f.Dst)
		b = be32(b, uint32(ipLen))
		b = be32(b, uint32(f.Proto))
		b = append(b, src[:]...)
		b = append(b, dst[:]...)
	}
	b = be32(b, uint32(f.SrcPort))
	b = be32(b, uint32(f.DstPort))
	b = be32(b, uint32(f.TCPFlags))
	b = be32(b, 0) // tos / priority
	endOpaque(b, at)
	return b
}

func appendIfCounters(b []byte, c *IfCounters) []byte {
	b = be32(b, sflowGenericIf)
	b = be32(b, sflowGenericIfLen)
	b = be32(b, c.Index)
	b = be32(b, c.Type)
	b = be64(b, c.Speed)
	b = be32(b, c.Direction)
	b = be32(b, c.Status)
	b = be64(b, c.InOctets)
	b = be32(b, c.InUcastPkts)
	b = be32(b, c.InMulticastPkts)
	b = be32(b, c.InBroadcastPkts)
	b = be32(b, c.InDiscards)
	b = be32(b, c.InErrors)
	b = be32(b, c.InUnknownProtos)
	b = be64(b, c.OutOctets)
	b = be32(b, c.OutUcastPkts)
	b = be32(b, c.OutMulticastPkts)
	b = be32(b, c.OutBroadcastPkts)
	b = be32(b, c.OutDiscards)
	b = be32(b, c.OutErrors)
	return be32(b, c.PromiscuousMode)
}
