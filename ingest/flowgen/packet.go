package flowgen

import (
	"encoding/binary"
)

// EtherTypes of the frames flowgen builds.
const (
	etherTypeIPv4 = 0x0800
	etherTypeARP  = 0x0806
	etherTypeVLAN = 0x8100
	etherTypeIPv6 = 0x86dd
)

const (
	ethHeaderLen  = 14
	vlanTagLen    = 4
	fcsLen        = 4
	minFrameLen   = 64 // Ethernet minimum, FCS included
	ipv4HeaderLen = 20
	ipv6HeaderLen = 40
	ipv6FragLen   = 8
	arpLen        = 28
	ipv6FragNext  = 44 // IPv6 Fragment extension header
	defaultTTL    = 64
)

// Locally administered MAC addresses (the 0x02 bit of the first octet) so
// that built frames can never be confused with real hardware.
var (
	macRouter = [6]byte{0x02, 0x6b, 0x61, 0x70, 0x00, 0x01}
	macHost   = [6]byte{0x02, 0x6b, 0x61, 0x70, 0x00, 0x02}
	macBcast  = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

// l2Len is the length of the Ethernet header, with a VLAN tag when vlan is
// not zero.
func l2Len(vlan uint16) int {
	if vlan != 0 {
		return ethHeaderLen + vlanTagLen
	}
	return ethHeaderLen
}

// appendEthernet appends an Ethernet header (and an 802.1Q tag when vlan is
// not zero) from macRouter to dstMAC.
func appendEthernet(b []byte, dstMAC [6]byte, vlan uint16, etherType uint16) []byte {
	b = append(b, dstMAC[:]...)
	b = append(b, macRouter[:]...)
	if vlan != 0 {
		b = be16(b, etherTypeVLAN)
		b = be16(b, vlan&0x0fff) // PCP 0, DEI 0
	}
	return be16(b, etherType)
}

// appendARP appends an ARP request (an ARP probe: no sender address) from
// macRouter.
func appendARP(b []byte) []byte {
	b = be16(b, 1)             // hardware type: Ethernet
	b = be16(b, etherTypeIPv4) // protocol type
	b = append(b, 6, 4)        // address lengths
	b = be16(b, 1)             // request
	b = append(b, macRouter[:]...)
	b = appendZeros(b, 4+6+4) // sender IP, target MAC, target IP
	return b
}

// transportLen is the length of the transport header built for f: none for
// non-first fragments and protocols without one.
func transportLen(f *Flow) int {
	if f.FragmentOffset != 0 {
		return 0
	}
	switch f.Proto {
	case ProtoTCP:
		return 20
	case ProtoUDP, ProtoICMP, ProtoICMPv6:
		return 8
	}
	return 0
}

// ipHeadersLen is the length of the IP header(s) built for f: IPv4, or IPv6
// plus a fragment header when f is a fragment.
func ipHeadersLen(f *Flow, fam Family) int {
	if fam == IPv4 {
		return ipv4HeaderLen
	}
	if f.Fragment || f.FragmentOffset != 0 {
		return ipv6HeaderLen + ipv6FragLen
	}
	return ipv6HeaderLen
}

// packetHeadersLen is the length of all headers of the IP packet built for f.
func packetHeadersLen(f *Flow, fam Family) int {
	return ipHeadersLen(f, fam) + transportLen(f)
}

// ipID derives an IPv4 identification / IPv6 fragment identification from
// the flow so that fragments of one flow share it.
func ipID(f *Flow) uint16 { return f.SrcPort*31 + f.DstPort*7 + uint16(f.Proto) + 1 }

// appendIP appends the IP packet of f, ipLen bytes long in all: its IP
// header(s), its transport header, then payload's bytes followed by zeros.
// Headers are always written whole; the payload stops once the packet has
// limit bytes (limit < 0: no limit). ipLen must be at least
// packetHeadersLen(f, fam). Checksums (IPv4 header, TCP, UDP, ICMP, ICMPv6)
// cover the whole packet, including the part cut by limit.
func appendIP(b []byte, f *Flow, fam Family, ipLen int, payload []byte, limit int) []byte {
	start := len(b)
	var pseudo uint32 // pseudo-header sum, without the transport length
	if fam == IPv4 {
		src, dst := as4(f.Src), as4(f.Dst)
		frag := f.FragmentOffset & 0x1fff
		if f.Fragment {
			frag |= 0x2000
		}
		b = append(b, 0x45, 0) // version 4, IHL 5; DSCP/ECN 0
		b = be16(b, uint16(ipLen))
		b = be16(b, ipID(f))
		b = be16(b, frag)
		b = append(b, defaultTTL, f.Proto, 0, 0)
		b = append(b, src[:]...)
		b = append(b, dst[:]...)
		binary.BigEndian.PutUint16(b[start+10:], checksum(sum16(0, b[start:])))
		pseudo = sum16(sum16(uint32(f.Proto), src[:]), dst[:])
	} else {
		src, dst := as16(f.Src), as16(f.Dst)
		frag := f.Fragment || f.FragmentOffset != 0
		next := f.Proto
		if frag {
			next = ipv6FragNext
		}
		b = be32(b, 6<<28) // version 6, traffic class 0, flow label 0
		b = be16(b, uint16(ipLen-ipv6HeaderLen))
		b = append(b, next, defaultTTL)
		b = append(b, src[:]...)
		b = append(b, dst[:]...)
		if frag {
			off := f.FragmentOffset << 3
			if f.Fragment {
				off |= 1
			}
			b = append(b, f.Proto, 0)
			b = be16(b, off)
			b = be32(b, 0x6b000000|uint32(ipID(f)))
		}
		pseudo = sum16(sum16(uint32(f.Proto), src[:]), dst[:])
	}

	th := len(b)
	l4Len := ipLen - (th - start) // transport header + payload
	tl := transportLen(f)
	csumAt := -1
	switch tl {
	case 0:
	case 20: // TCP
		seq := uint32(0x6b61706b)
		var ack uint32
		if f.TCPFlags&TCPAck != 0 {
			ack = 0x0badcafe
		}
		b = be16(b, f.SrcPort)
		b = be16(b, f.DstPort)
		b = be32(b, seq)
		b = be32(b, ack)
		b = append(b, 5<<4, f.TCPFlags)
		b = be16(b, 65535) // window
		b = be16(b, 0)     // checksum
		b = be16(b, 0)     // urgent pointer
		csumAt = th + 16
	default:
		switch f.Proto {
		case ProtoUDP:
			b = be16(b, f.SrcPort)
			b = be16(b, f.DstPort)
			b = be16(b, uint16(l4Len))
			b = be16(b, 0)
			csumAt = th + 6
		default: // ICMP, ICMPv6: type, code, checksum, identifier, sequence
			b = append(b, byte(f.DstPort>>8), byte(f.DstPort), 0, 0)
			b = be16(b, 0x4b50)
			b = be16(b, 1)
			csumAt = th + 2
		}
	}

	rest := l4Len - tl
	keep := rest
	if limit >= 0 {
		keep = min(rest, max(0, limit-(len(b)-start)))
	}
	if tl != 0 {
		var s uint32
		if f.Proto != ProtoICMP { // ICMPv4 has no pseudo-header
			s = pseudo + uint32(l4Len)
		}
		s = sum16(s, b[th:])
		s = sum16(s, payload[:min(len(payload), rest)])
		c := checksum(s)
		if c == 0 && f.Proto == ProtoUDP {
			c = 0xffff // RFC 768: zero means "no checksum"
		}
		binary.BigEndian.PutUint16(b[csumAt:], c)
	}
	n := min(len(payload), keep)
	b = append(b, payload[:n]...)
	return appendZeros(b, keep-n)
}

// sum16 adds data to the running one's complement sum s as big-endian 16-bit
// words. An odd trailing byte is padded with a zero, so only the last chunk
// summed may have an odd length.
func sum16(s uint32, data []byte) uint32 {
	for len(data) >= 2 {
		s += uint32(data[0])<<8 | uint32(data[1])
		data = data[2:]
		if s > 0xffff_0000 {
			s = s&0xffff + s>>16
		}
	}
	if len(data) == 1 {
		s += uint32(data[0]) << 8
	}
	return s
}

// checksum folds a one's complement sum into the Internet checksum.
func checksum(s uint32) uint16 {
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
