package ingest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"

	"github.com/netsampler/goflow2/v2/decoders/netflowlegacy"

	"github.com/kapkan-io/kapkan/flow"
)

var errShort = errors.New("datagram shorter than its header says")

func isShortRead(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

const (
	nf5HeaderLen = 24
	nf5RecordLen = 48
)

// decodeNetFlow5 decodes a NetFlow v5 datagram. The header's sampling
// interval is the low 14 bits of its last field; 0 means the exporter did not
// say, not "unsampled".
func (d *Decoder) decodeNetFlow5(st *exporterState, data []byte, now int64, out *Batcher, res *Result) (err error) {
	// goflow2 allocates the header's count of records (up to 65535, 3.6 MB)
	// whatever the datagram holds: decode a copy whose count says what fits.
	if len(data) >= nf5HeaderLen {
		count := int(binary.BigEndian.Uint16(data[2:4]))
		if avail := (len(data) - nf5HeaderLen) / nf5RecordLen; count > avail {
			data = bytes.Clone(data)
			binary.BigEndian.PutUint16(data[2:4], uint16(avail))
			defer func() {
				d.decodeError(st, flow.FormatNetFlow5, reasonTruncated)
				if err == nil {
					err = errShort
				}
			}()
		}
	}
	var pkt netflowlegacy.PacketNetFlowV5
	if err := netflowlegacy.DecodeMessageVersion(newBuffer(data), &pkt); err != nil {
		d.decodeError(st, flow.FormatNetFlow5, reasonTruncated)
		return err
	}
	n := int(pkt.Count)
	if avail := (len(data) - nf5HeaderLen) / nf5RecordLen; avail < n {
		n = avail
	}
	d.sequence(st, seqKey{format: flow.FormatNetFlow5, a: uint32(pkt.EngineType)<<8 | uint32(pkt.EngineId)},
		pkt.FlowSequence, uint32(n))
	rate := uint32(pkt.SamplingInterval & 0x3fff)
	// Export time in ms; record times are router uptime in ms.
	exportMs := int64(pkt.UnixSecs)*1000 + int64(pkt.UnixNSecs)/1e6
	for i := range n {
		rec := &pkt.Records[i]
		var r flow.Record
		r.Received = now
		r.Exporter = st.addr16
		r.Format = flow.FormatNetFlow5
		r.Src = v4u32(uint32(rec.SrcAddr))
		r.Dst = v4u32(uint32(rec.DstAddr))
		r.Flags = flow.FlagHasIP
		r.SrcPort, r.DstPort = rec.SrcPort, rec.DstPort
		r.Proto, r.TCPFlags = rec.Proto, rec.TCPFlags
		r.Packets, r.Bytes = uint64(rec.DPkts), uint64(rec.DOctets)
		if pkt.UnixSecs != 0 {
			r.Start = uptimeToUnixNano(exportMs, pkt.SysUptime, rec.First)
			r.End = uptimeToUnixNano(exportMs, pkt.SysUptime, rec.Last)
		}
		d.resolveRate(st, &r, rate, flow.SamplingHeader)
		out.Add(&r)
		res.Records++
	}
	return nil
}

// uptimeToUnixNano converts a router-uptime timestamp (ms) into Unix ns,
// given the export time (Unix ms) and the uptime at export.
func uptimeToUnixNano(exportMs int64, uptimeAtExport, t uint32) int64 {
	ago := int64(uptimeAtExport - t) // wraps correctly across the 49.7-day rollover
	if ago > 1<<31 {
		ago -= 1 << 32 // t is after the export (clock skew): keep it small
	}
	return (exportMs - ago) * 1e6
}

func v4u32(v uint32) (a [16]byte) {
	a[10], a[11] = 0xff, 0xff
	binary.BigEndian.PutUint32(a[12:], v)
	return a
}
