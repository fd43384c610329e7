// Package flowgen builds real export datagrams of every format Kapkan ingests
// (sFlow v5, NetFlow v5, NetFlow v9 and IPFIX) from flow descriptions, and
// writes them into classic pcap files. It is the test fixture builder today,
// and the engine of `kapkan simulate` and of the demo traffic source later.
//
// The datagrams follow their standards byte for byte:
//
//   - sFlow v5 (sflow.org SFLOW-DATAGRAM5 and SFLOW-STRUCTS5): AppendSFlow.
//     Sampled packet headers are real Ethernet, IPv4 and IPv6 packets with
//     correct checksums.
//   - NetFlow v5 (Cisco's fixed format): AppendNetFlow5.
//   - NetFlow v9 (RFC 3954) and IPFIX (RFC 7011, with the PSAMP information
//     elements of RFC 5477): an Exporter holds the per-domain state (sequence
//     numbers, boot time) and assembles datagrams from sets in the order the
//     caller gives.
//   - pcap: WritePCAP and PCAPWriter wrap datagrams in Ethernet, IP and UDP
//     headers.
//
// flowgen does not import ingest: ingest's tests import flowgen.
//
// The encoders are append-style where throughput matters (sFlow, NetFlow v5):
// given a destination slice with enough capacity they do not allocate.
package flowgen

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"time"
)

// IP protocol numbers flowgen builds transport headers for.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// TCP flag bits, as in Flow.TCPFlags.
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPPsh = 0x08
	TCPAck = 0x10
	TCPUrg = 0x20
	TCPEce = 0x40
	TCPCwr = 0x80
)

// Family is an IP address family.
type Family uint8

// Address families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// Flow describes one flow record (NetFlow, IPFIX) or one sampled packet
// (sFlow).
//
// For ICMP and ICMPv6, DstPort carries type<<8 | code, the convention NetFlow
// exporters use; SrcPort is ignored when a packet is built.
type Flow struct {
	// Src and Dst are the addresses. The flow is IPv6 when either is an IPv6
	// address (IPv4-mapped IPv6 addresses count as IPv4), IPv4 otherwise.
	// Both invalid makes an sFlow raw Ethernet header an ARP frame (a
	// non-IP sample).
	Src, Dst netip.Addr
	// SrcPort and DstPort are the transport ports.
	SrcPort, DstPort uint16
	// Proto is the IP protocol: ProtoTCP, ProtoUDP, ProtoICMP, ProtoICMPv6 or
	// any other number (then no transport header is built).
	Proto uint8
	// TCPFlags is the cumulative OR of TCP flags (NetFlow, IPFIX) or the flags
	// of the sampled segment (sFlow).
	TCPFlags uint8
	// Fragment sets the more-fragments flag: in an sFlow sampled header the
	// IPv4 MF bit or the IPv6 fragment header's M flag; in NetFlow v9 and
	// IPFIX records the MF bit (0x20) of fragmentFlags (IE 197) when the
	// template has it.
	Fragment bool
	// FragmentOffset, when not zero, makes the packet a non-first fragment
	// at this offset (in 8-octet units): no transport header follows the IP
	// header, and MF is set only if Fragment is also set. It is written as
	// fragmentOffset (IE 88) when the template has it.
	FragmentOffset uint16
	// Packets and Bytes are the NetFlow and IPFIX counters. sFlow ignores
	// them and uses FrameLen.
	Packets, Bytes uint64
	// FrameLen is the sFlow frame_length of the sampled packet: for an
	// Ethernet header, the frame with its FCS; for a raw IPv4 or IPv6 header,
	// the IP packet. Zero means the shortest packet that holds the headers
	// (at least 64 bytes for Ethernet); a length shorter than the headers is
	// raised to theirs.
	FrameLen uint32
	// Start and End bound the flow. Zero means the export time.
	Start, End time.Time
	// SamplerID is written as samplerId (IE 48) or selectorId (IE 302) when
	// the template has them.
	SamplerID uint32
	// SamplingRate is written in the record when the template has
	// samplingInterval (IE 34) or samplerRandomInterval (IE 50), and as
	// samplingPacketInterval 1 (IE 305) and samplingPacketSpace rate-1
	// (IE 306).
	SamplingRate uint32
	// InIf and OutIf are the input and output interface indexes (NetFlow v5
	// input/output, IE 10 and IE 14).
	InIf, OutIf uint32
}

// Family returns the flow's address family.
func (f *Flow) Family() Family {
	if is6(f.Src) || is6(f.Dst) {
		return IPv6
	}
	return IPv4
}

// hasIP reports whether the flow has at least one address.
func (f *Flow) hasIP() bool { return f.Src.IsValid() || f.Dst.IsValid() }

// is6 reports whether a is a true IPv6 address (not IPv4-mapped).
func is6(a netip.Addr) bool { return a.Is6() && !a.Is4In6() }

// as4 returns a's four bytes, or zeros when a is not an IPv4 address.
func as4(a netip.Addr) [4]byte {
	if a.Is4() || a.Is4In6() {
		return a.Unmap().As4()
	}
	return [4]byte{}
}

// as16 returns a's sixteen bytes (IPv4 addresses mapped), or zeros when a is
// invalid.
func as16(a netip.Addr) [16]byte {
	if a.IsValid() {
		return a.As16()
	}
	return [16]byte{}
}

func be16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func be32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func be64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// appendZeros appends n zero bytes.
func appendZeros(b []byte, n int) []byte {
	if n <= 0 {
		return b
	}
	b = slices.Grow(b, n)
	l := len(b)
	b = b[:l+n]
	clear(b[l:])
	return b
}

// putUint writes v big-endian into all of b, keeping its low-order bytes when
// b is shorter than 8 (the reduced-size encoding of RFC 7011 section 6.2) and
// leaving leading zeros when b is longer.
func putUint(b []byte, v uint64) {
	for i := len(b) - 1; i >= 0 && v != 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}

// timeOr returns t, or def when t is zero.
func timeOr(t, def time.Time) time.Time {
	if t.IsZero() {
		return def
	}
	return t
}

// msSince returns t-origin in milliseconds, modulo 2^32 like uptime counters.
func msSince(t, origin time.Time) uint32 {
	return uint32(t.Sub(origin).Milliseconds())
}
