package ingest

import (
	"encoding/binary"
	"errors"

	"github.com/netsampler/goflow2/v2/decoders/sflow"

	"github.com/kapkan-io/kapkan/flow"
)

// decodeSFlow turns the flow samples (formats 1 and 3) of an sFlow v5
// datagram into one record each. Counter samples carry no flows; drop
// samples (format 5) describe discarded packets and are not traffic that
// reached its target.
func (d *Decoder) decodeSFlow(st *exporterState, data []byte, now int64, out *Batcher, res *Result) error {
	if err := sflowPlausible(data); err != nil {
		d.decodeError(st, flow.FormatSFlow5, reasonMalformed)
		return err
	}
	if !d.noFastPath && sflowFastOK(data) {
		d.decodeSFlowFast(st, data, now, out, res)
		return nil
	}
	var pkt sflow.Packet
	derr := sflow.DecodeMessageVersion(newBuffer(data), &pkt)
	var agent [16]byte
	if a, ok := addr16(pkt.AgentIP); ok {
		agent = a
	}
	for _, s := range pkt.Samples {
		var (
			hdr     sflow.SampleHeader
			rate    uint32
			records []sflow.FlowRecord
		)
		switch s := s.(type) {
		case sflow.FlowSample:
			hdr, rate, records = s.Header, s.SamplingRate, s.Records
		case sflow.ExpandedFlowSample:
			hdr, rate, records = s.Header, s.SamplingRate, s.Records
		default:
			continue
		}
		d.sequence(st, seqKey{format: flow.FormatSFlow5, agent: agent, a: pkt.SubAgentId,
			b: hdr.SourceIdType<<24 | hdr.SourceIdValue&0xffffff}, hdr.SampleSequenceNumber, 1)

		var r flow.Record
		r.Received = now
		r.Exporter = st.addr16
		r.Format = flow.FormatSFlow5
		r.Packets = 1
		fillSFlowRecord(&r, records)
		d.resolveRate(st, &r, rate, flow.SamplingSample)
		out.Add(&r)
		res.Records++
	}
	if derr != nil {
		reason := reasonMalformed
		if errors.Is(derr, errShort) || isShortRead(derr) {
			reason = reasonTruncated
		}
		d.decodeError(st, flow.FormatSFlow5, reason)
		return derr
	}
	return nil
}

// fillSFlowRecord takes addresses, ports and size from the sampled packet
// header, or from a sampled IPv4/IPv6 record when there is no header.
func fillSFlowRecord(r *flow.Record, records []sflow.FlowRecord) {
	haveHeader := false
	for i := range records {
		switch f := records[i].Data.(type) {
		case sflow.SampledHeader:
			if haveHeader {
				continue
			}
			haveHeader = true
			keep := r.Flags & flow.FlagHasIP
			if keep != 0 {
				// A sampled IPv4/IPv6 record came first; the header wins.
				r.Src, r.Dst, r.SrcPort, r.DstPort, r.Proto, r.TCPFlags, r.Flags = [16]byte{}, [16]byte{}, 0, 0, 0, 0, 0
			}
			r.Bytes = uint64(f.FrameLength)
			parseHeader(r, f.Protocol, f.HeaderData)
		case sflow.SampledIPv4:
			if haveHeader || r.Flags&flow.FlagHasIP != 0 {
				continue
			}
			fillSampledIP(r, &f.SampledIPBase, false)
		case sflow.SampledIPv6:
			if haveHeader || r.Flags&flow.FlagHasIP != 0 {
				continue
			}
			fillSampledIP(r, &f.SampledIPBase, true)
		}
	}
}

func fillSampledIP(r *flow.Record, b *sflow.SampledIPBase, v6 bool) {
	src, ok1 := addr16(b.SrcIP)
	dst, ok2 := addr16(b.DstIP)
	if !ok1 || !ok2 {
		return
	}
	r.Src, r.Dst = src, dst
	r.Flags |= flow.FlagHasIP
	if v6 {
		r.Flags |= flow.FlagIPv6
	}
	r.Bytes = uint64(b.Length)
	r.Proto = uint8(b.Protocol)
	r.SrcPort = uint16(b.SrcPort)
	r.DstPort = uint16(b.DstPort)
	r.TCPFlags = uint8(b.TcpFlags)
}

// errImplausible marks a datagram whose counts promise more than it holds.
var errImplausible = errors.New("counts larger than the datagram can hold")

// sflowPlausible checks, before goflow2 sees a datagram, that every count
// in it fits in the bytes that follow. goflow2 sizes its slices from these
// counts (and does not bound the record count of expanded flow samples), so
// a few bytes of garbage could otherwise cost gigabytes.
func sflowPlausible(data []byte) error {
	if len(data) < 8 {
		return nil // goflow2 reports the short read
	}
	off := 8
	switch binary.BigEndian.Uint32(data[4:8]) {
	case 1:
		off += 4
	case 2:
		off += 16
	default:
		return nil // goflow2 rejects the address type
	}
	off += 12 // sub-agent, sequence, uptime
	if len(data) < off+4 {
		return nil
	}
	samples := int(binary.BigEndian.Uint32(data[off:]))
	off += 4
	if samples > (len(data)-off)/8 {
		return errImplausible
	}
	for range samples {
		if len(data)-off < 8 {
			return nil
		}
		format := binary.BigEndian.Uint32(data[off:])
		length := int(binary.BigEndian.Uint32(data[off+4:]))
		off += 8
		if length < 0 || length > len(data)-off {
			return nil // goflow2 stops at a sample longer than the datagram
		}
		body := data[off : off+length]
		off += length
		var countAt int
		switch format & 0xfff { // enterprise 0 formats
		case 1, 5:
			countAt = 28
		case 2:
			countAt = 8
		case 3:
			countAt = 40
		case 4:
			countAt = 12
		default:
			continue
		}
		if len(body) < countAt+4 {
			continue
		}
		if n := int(binary.BigEndian.Uint32(body[countAt:])); n > (len(body)-countAt-4)/8 {
			return errImplausible
		}
	}
	return nil
}
