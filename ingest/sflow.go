package ingest

import (
	"errors"

	"github.com/netsampler/goflow2/v2/decoders/sflow"

	"github.com/kapkan-io/kapkan/flow"
)

// decodeSFlow turns the flow samples (formats 1 and 3) of an sFlow v5
// datagram into one record each. Counter samples carry no flows; drop
// samples (format 5) describe discarded packets and are not traffic that
// reached its target.
func (d *Decoder) decodeSFlow(st *exporterState, data []byte, now int64, out *Batcher, res *Result) error {
	var pkt sflow.Packet
	derr := sflow.DecodeMessageVersion(newBuffer(data), &pkt)
	var agent [16]byte
	if a, ok := addr16(pkt.AgentIP); ok {
		agent = a
	}
	seqGapChecked := false
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
		seqGapChecked = true

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
	_ = seqGapChecked
	if derr != nil {
		reason := reasonMalformed
		if errors.Is(derr, errShort) || isShortRead(derr) {
			reason = reasonTruncated
		}
		d.metrics.decodeError(st.label, flow.FormatSFlow5, reason)
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
