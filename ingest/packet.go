package ingest

import (
	"encoding/binary"

	"github.com/kapkan-io/kapkan/flow"
)

// sFlow raw-header protocol numbers (sflow.org SFLOW-STRUCTS5, header_protocol).
const (
	headerEthernet = 1
	headerIPv4     = 11
	headerIPv6     = 12
)

const (
	etherTypeIPv4  = 0x0800
	etherTypeIPv6  = 0x86dd
	etherTypeVLAN  = 0x8100
	etherTypeQinQ  = 0x88a8
	etherType9100  = 0x9100
	etherTypeMPLS  = 0x8847
	etherTypeMPLSm = 0x8848
)

// parseHeader fills r from a sampled packet header whose first layer is given
// by proto (an sFlow header_protocol). It never allocates and never reads past
// data; a header cut short leaves the fields it could not reach at zero.
func parseHeader(r *flow.Record, proto uint32, data []byte) {
	switch proto {
	case headerEthernet:
		parseEthernet(r, data)
	case headerIPv4:
		parseIPv4(r, data)
	case headerIPv6:
		parseIPv6(r, data)
	}
}

func parseEthernet(r *flow.Record, data []byte) {
	if len(data) < 14 {
		return
	}
	etype := binary.BigEndian.Uint16(data[12:14])
	data = data[14:]
	// Peel off any number of VLAN tags (802.1Q, 802.1ad QinQ).
	for (etype == etherTypeVLAN || etype == etherTypeQinQ || etype == etherType9100) && len(data) >= 4 {
		etype = binary.BigEndian.Uint16(data[2:4])
		data = data[4:]
	}
	switch etype {
	case etherTypeIPv4:
		parseIPv4(r, data)
	case etherTypeIPv6:
		parseIPv6(r, data)
	case etherTypeMPLS, etherTypeMPLSm:
		// Pop labels down to the bottom of the stack, then guess the payload
		// from its IP version nibble.
		for len(data) >= 4 {
			bottom := data[2]&1 == 1
			data = data[4:]
			if bottom {
				break
			}
		}
		if len(data) > 0 {
			switch data[0] >> 4 {
			case 4:
				parseIPv4(r, data)
			case 6:
				parseIPv6(r, data)
			}
		}
	}
}

func parseIPv4(r *flow.Record, data []byte) {
	if len(data) < 20 || data[0]>>4 != 4 {
		return
	}
	ihl := int(data[0]&0x0f) * 4
	if ihl < 20 {
		return
	}
	r.Src = v4mapped(data[12:16])
	r.Dst = v4mapped(data[16:20])
	r.Flags |= flow.FlagHasIP
	r.Proto = data[9]
	flagsFrag := binary.BigEndian.Uint16(data[6:8])
	more := flagsFrag&0x2000 != 0
	offset := flagsFrag & 0x1fff
	if more || offset != 0 {
		r.Flags |= flow.FlagFragment
	}
	if offset != 0 || len(data) < ihl {
		return // no transport header in a non-first fragment
	}
	parseTransport(r, data[ihl:])
}

// IPv6 extension headers that may precede the transport header.
const (
	ipv6HopByHop = 0
	ipv6Routing  = 43
	ipv6Fragment = 44
	ipv6DestOpts = 60
	ipv6AH       = 51
)

func parseIPv6(r *flow.Record, data []byte) {
	if len(data) < 40 || data[0]>>4 != 6 {
		return
	}
	copy(r.Src[:], data[8:24])
	copy(r.Dst[:], data[24:40])
	r.Flags |= flow.FlagHasIP | flow.FlagIPv6
	next := data[6]
	data = data[40:]
	for range 8 { // bounded walk over extension headers
		switch next {
		case ipv6HopByHop, ipv6Routing, ipv6DestOpts, ipv6AH:
			if len(data) < 8 {
				r.Proto = next
				return
			}
			// Options headers count 8-octet units beyond the first; AH
			// counts 4-octet units beyond the first two.
			l := (int(data[1]) + 1) * 8
			if next == ipv6AH {
				l = (int(data[1]) + 2) * 4
			}
			next = data[0]
			if len(data) < l {
				r.Proto = next
				return
			}
			data = data[l:]
			continue
		case ipv6Fragment:
			if len(data) < 8 {
				r.Proto = next
				r.Flags |= flow.FlagFragment
				return
			}
			next = data[0]
			r.Flags |= flow.FlagFragment
			if binary.BigEndian.Uint16(data[2:4])&0xfff8 != 0 {
				r.Proto = next
				return // non-first fragment: no transport header
			}
			data = data[8:]
			continue
		}
		break
	}
	r.Proto = next
	parseTransport(r, data)
}

// Transport protocols with ports or types that records carry.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
	protoSCTP   = 132
)

func parseTransport(r *flow.Record, data []byte) {
	switch r.Proto {
	case protoTCP:
		if len(data) >= 4 {
			r.SrcPort = binary.BigEndian.Uint16(data[0:2])
			r.DstPort = binary.BigEndian.Uint16(data[2:4])
		}
		if len(data) >= 14 {
			r.TCPFlags = data[13]
		}
	case protoUDP, protoSCTP:
		if len(data) >= 4 {
			r.SrcPort = binary.BigEndian.Uint16(data[0:2])
			r.DstPort = binary.BigEndian.Uint16(data[2:4])
		}
	case protoICMP, protoICMPv6:
		// As NetFlow v5 does: type and code in the destination port.
		if len(data) >= 2 {
			r.DstPort = uint16(data[0])<<8 | uint16(data[1])
		}
	}
}

// v4mapped returns the IPv4-mapped IPv6 form of a 4-byte address.
func v4mapped(b []byte) (a [16]byte) {
	a[10], a[11] = 0xff, 0xff
	copy(a[12:], b)
	return a
}

// addr16 returns the 16-byte form of a 4- or 16-byte address; ok is false for
// any other length.
func addr16(b []byte) (a [16]byte, ok bool) {
	switch len(b) {
	case 4:
		return v4mapped(b), true
	case 16:
		copy(a[:], b)
		return a, true
	}
	return a, false
}
