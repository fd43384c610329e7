package ingest

import (
	"encoding/binary"

	"github.com/kapkan-io/kapkan/flow"
)

// The sFlow fast path decodes the common datagram layouts — flow samples
// (compact and expanded) with raw-header, Ethernet, sampled IPv4/IPv6,
// extended-switch and extended-router records, and generic and Ethernet
// interface counter samples — straight from the bytes into records, with no
// allocation. Anything else (an unknown sample or record format, a field
// cut short, a drop sample) goes to goflow2, which then reports the error
// exactly as before. TestSFlowFastPathMatchesGoflow2 checks that both paths
// give the same records on every capture of the corpus and on generated
// datagrams of every kind.

// sflowFlowRecord* are the enterprise-0 flow record formats the fast path
// reads or skips; any other known format sends the datagram to goflow2.
const (
	sfRawHeader   = 1
	sfEthernet    = 2
	sfIPv4        = 3
	sfIPv6        = 4
	sfExtSwitch   = 1001
	sfExtRouter   = 1002
	sfExtGateway  = 1003
	sfEgressQueue = 1036
	sfExtACL      = 1037
	sfExtFunction = 1038
)

// goflow2Known are the flow record formats goflow2 decodes field by field
// (and may therefore reject); others it keeps as raw bytes.
func goflow2KnownRecord(f uint32) bool {
	switch f {
	case sfRawHeader, sfEthernet, sfIPv4, sfIPv6, sfExtSwitch, sfExtRouter, sfExtGateway, sfEgressQueue, sfExtACL, sfExtFunction:
		return true
	}
	return false
}

// sflowFastOK reports whether the fast path can decode the datagram exactly
// as goflow2 would. It has no side effect.
func sflowFastOK(data []byte) bool {
	if len(data) < 8 || binary.BigEndian.Uint32(data) != 5 {
		return false
	}
	off := 8
	switch binary.BigEndian.Uint32(data[4:]) {
	case 1:
		off += 4
	case 2:
		off += 16
	default:
		return false
	}
	if len(data) < off+16 {
		return false
	}
	samples := binary.BigEndian.Uint32(data[off+12:])
	off += 16
	if samples > 1000 {
		return false
	}
	for i := uint32(0); i < samples && len(data)-off >= 8; i++ {
		format := binary.BigEndian.Uint32(data[off:])
		length := int(binary.BigEndian.Uint32(data[off+4:]))
		off += 8
		if length > len(data)-off {
			break // goflow2 stops here too, without an error
		}
		body := data[off : off+length]
		off += length
		var hdr, count int
		switch format {
		case 1:
			hdr = 32
		case 3:
			hdr = 44
		case 2:
			hdr = 12
		case 4:
			hdr = 16
		default:
			return false // drop samples and unknown formats: goflow2
		}
		if len(body) < hdr {
			return false
		}
		count = int(binary.BigEndian.Uint32(body[hdr-4:]))
		if count > 1000 {
			return false
		}
		rest := body[hdr:]
		for j := 0; j < count && len(rest) >= 8; j++ {
			rf := binary.BigEndian.Uint32(rest)
			rl := int(binary.BigEndian.Uint32(rest[4:]))
			rest = rest[8:]
			if rl > len(rest) {
				break
			}
			rec := rest[:rl]
			rest = rest[rl:]
			if format == 2 || format == 4 {
				switch rf {
				case 1:
					if rl < 88 {
						return false
					}
				case 2:
					if rl < 52 {
						return false
					}
				}
				continue
			}
			switch rf {
			case sfRawHeader:
				if rl < 16 {
					return false
				}
			case sfEthernet:
				if rl < 20 {
					return false
				}
			case sfIPv4:
				if rl < 32 {
					return false
				}
			case sfIPv6:
				if rl < 56 {
					return false
				}
			case sfExtSwitch:
				if rl < 16 {
					return false
				}
			case sfExtRouter:
				if rl < 4 {
					return false
				}
				switch binary.BigEndian.Uint32(rec) {
				case 1:
					if rl < 4+4+8 {
						return false
					}
				case 2:
					if rl < 4+16+8 {
						return false
					}
				default:
					return false
				}
			default:
				if goflow2KnownRecord(rf) {
					return false
				}
			}
		}
	}
	return true
}

// decodeSFlowFast decodes a datagram sflowFastOK accepted.
func (d *Decoder) decodeSFlowFast(st *exporterState, data []byte, now int64, out *Batcher, res *Result) {
	off := 8
	var agent [16]byte
	if binary.BigEndian.Uint32(data[4:]) == 1 {
		agent = v4mapped(data[8:12])
		off += 4
	} else {
		copy(agent[:], data[8:24])
		off += 16
	}
	subAgent := binary.BigEndian.Uint32(data[off:])
	samples := binary.BigEndian.Uint32(data[off+12:])
	off += 16
	for i := uint32(0); i < samples && len(data)-off >= 8; i++ {
		format := binary.BigEndian.Uint32(data[off:])
		length := int(binary.BigEndian.Uint32(data[off+4:]))
		off += 8
		if length > len(data)-off {
			break
		}
		body := data[off : off+length]
		off += length
		var srcType, srcIdx, rate uint32
		var rest []byte
		var count int
		switch format {
		case 1:
			sid := binary.BigEndian.Uint32(body[4:])
			srcType, srcIdx = sid>>24, sid&0xffffff
			rate = binary.BigEndian.Uint32(body[8:])
			count = int(binary.BigEndian.Uint32(body[28:]))
			rest = body[32:]
		case 3:
			srcType, srcIdx = binary.BigEndian.Uint32(body[4:]), binary.BigEndian.Uint32(body[8:])
			rate = binary.BigEndian.Uint32(body[12:])
			count = int(binary.BigEndian.Uint32(body[40:]))
			rest = body[44:]
		default:
			continue // counter samples: no flows
		}
		seq := binary.BigEndian.Uint32(body)
		d.sequence(st, seqKey{format: flow.FormatSFlow5, agent: agent, a: subAgent, b: srcType<<24 | srcIdx&0xffffff}, seq, 1)

		var r flow.Record
		r.Received = now
		r.Exporter = st.addr16
		r.Format = flow.FormatSFlow5
		r.Packets = 1
		haveHeader := false
		for j := 0; j < count && len(rest) >= 8; j++ {
			rf := binary.BigEndian.Uint32(rest)
			rl := int(binary.BigEndian.Uint32(rest[4:]))
			rest = rest[8:]
			if rl > len(rest) {
				break
			}
			rec := rest[:rl]
			rest = rest[rl:]
			switch rf {
			case sfRawHeader:
				if haveHeader {
					continue
				}
				haveHeader = true
				if r.Flags&flow.FlagHasIP != 0 {
					r.Src, r.Dst, r.SrcPort, r.DstPort, r.Proto, r.TCPFlags, r.Flags = [16]byte{}, [16]byte{}, 0, 0, 0, 0, 0
				}
				r.Bytes = uint64(binary.BigEndian.Uint32(rec[4:]))
				parseHeader(&r, binary.BigEndian.Uint32(rec), rec[16:])
			case sfIPv4, sfIPv6:
				if haveHeader || r.Flags&flow.FlagHasIP != 0 {
					continue
				}
				r.Bytes = uint64(binary.BigEndian.Uint32(rec))
				r.Proto = uint8(binary.BigEndian.Uint32(rec[4:]))
				p := rec[8:]
				if rf == sfIPv4 {
					r.Src, r.Dst = v4mapped(p[0:4]), v4mapped(p[4:8])
					p = p[8:]
				} else {
					copy(r.Src[:], p[0:16])
					copy(r.Dst[:], p[16:32])
					p = p[32:]
					r.Flags |= flow.FlagIPv6
				}
				r.Flags |= flow.FlagHasIP
				r.SrcPort = uint16(binary.BigEndian.Uint32(p))
				r.DstPort = uint16(binary.BigEndian.Uint32(p[4:]))
				r.TCPFlags = uint8(binary.BigEndian.Uint32(p[8:]))
			}
		}
		d.resolveRate(st, &r, rate, flow.SamplingSample)
		out.Add(&r)
		res.Records++
	}
}
