package ingest

import (
	"encoding/binary"

	"github.com/kapkan-io/kapkan/flow"
)

// The NetFlow v9 / IPFIX fast path decodes the common datagram — data sets
// only, each of a known flow template whose fields all have a fixed length —
// straight from the bytes, with no allocation. Datagrams with templates,
// options, variable-length fields, unknown templates or anything unusual go
// to goflow2, as before. TestNetFlowFastPathMatchesGoflow2 checks that both
// paths give the same records on the corpus and on generated datagrams.

// decodeNetFlowFast decodes the datagram and returns true, or returns
// false, having changed nothing, when goflow2 must take it.
func (d *Decoder) decodeNetFlowFast(st *exporterState, data []byte, now int64, out *Batcher, res *Result) bool {
	var (
		ctx       nfContext
		off       int
		seq       uint32
		limitSets = 1 << 30
	)
	ctx.now, ctx.format = now, res.Format
	switch res.Format {
	case flow.FormatNetFlow9:
		if len(data) < 20 {
			return false
		}
		limitSets = int(binary.BigEndian.Uint16(data[2:]))
		ctx.version = 9
		ctx.uptime = binary.BigEndian.Uint32(data[4:])
		ctx.exportSecs = binary.BigEndian.Uint32(data[8:])
		seq = binary.BigEndian.Uint32(data[12:])
		ctx.domain = binary.BigEndian.Uint32(data[16:])
		off = 20
	case flow.FormatIPFIX:
		if len(data) < 16 || int(binary.BigEndian.Uint16(data[2:])) != len(data) {
			return false
		}
		ctx.version = 10
		ctx.exportSecs = binary.BigEndian.Uint32(data[4:])
		seq = binary.BigEndian.Uint32(data[8:])
		ctx.domain = binary.BigEndian.Uint32(data[12:])
		off = 16
	default:
		return false
	}
	ctx.exportMs = int64(ctx.exportSecs) * 1000
	// Check every set first: nothing is emitted unless all of it is ours.
	sets := 0
	for o := off; o < len(data); sets++ {
		if sets == limitSets || len(data)-o < 4 {
			return false // data past the header's Count, or a cut set header
		}
		id := binary.BigEndian.Uint16(data[o:])
		l := int(binary.BigEndian.Uint16(data[o+2:]))
		if id < 256 || l < 4 || l > len(data)-o || st.templates.layouts[templateKey{ctx.version, ctx.domain, id}] == nil {
			return false
		}
		o += l
	}
	if sets == 0 {
		return false
	}
	records := 0
	for o := off; o < len(data); {
		id := binary.BigEndian.Uint16(data[o:])
		l := int(binary.BigEndian.Uint16(data[o+2:]))
		lay := st.templates.layouts[templateKey{ctx.version, ctx.domain, id}]
		body := data[o+4 : o+l]
		o += l
		for len(body) >= lay.size {
			rec := body[:lay.size]
			body = body[lay.size:]
			acc := recordAcc{exportMs: ctx.exportMs}
			for _, f := range lay.fields {
				acc.field(f.ie, rec[f.off:f.off+f.len])
			}
			d.emitAcc(st, &ctx, &acc, out)
			records++
		}
	}
	res.Records += records
	k := seqKey{format: res.Format, a: ctx.domain}
	if res.Format == flow.FormatNetFlow9 {
		d.sequence(st, k, seq, 1)
	} else {
		d.sequence(st, k, seq, uint32(records))
	}
	return true
}
