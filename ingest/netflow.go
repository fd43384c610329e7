package ingest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"

	"github.com/netsampler/goflow2/v2/decoders/netflow"

	"github.com/kapkan-io/kapkan/flow"
)

// IPFIX information elements (and their NetFlow v9 twins) that Kapkan reads.
const (
	ieOctetDelta          = 1
	iePacketDelta         = 2
	ieProtocol            = 4
	ieTCPFlags            = 6
	ieSrcPort             = 7
	ieSrcIPv4             = 8
	ieIngressInterface    = 10
	ieDstPort             = 11
	ieDstIPv4             = 12
	ieEndSysUpTime        = 21
	ieStartSysUpTime      = 22
	iePostOctetDelta      = 23
	iePostPacketDelta     = 24
	ieSrcIPv6             = 27
	ieDstIPv6             = 28
	ieICMPTypeCodeV4      = 32
	ieSamplingInterval    = 34
	ieFlowActiveTimeout   = 36
	ieSamplerID           = 48
	ieSamplerRandom       = 50
	ieOctetTotal          = 85
	iePacketTotal         = 86
	ieFragmentOffset      = 88
	ieICMPTypeCodeV6      = 139
	ieStartSeconds        = 150
	ieEndSeconds          = 151
	ieStartMilliseconds   = 152
	ieEndMilliseconds     = 153
	ieStartMicroseconds   = 154
	ieEndMicroseconds     = 155
	ieStartNanoseconds    = 156
	ieEndNanoseconds      = 157
	ieStartDeltaMicros    = 158
	ieEndDeltaMicros      = 159
	ieSystemInitMillis    = 160
	ieDurationMillis      = 161
	ieICMPTypeV4          = 176
	ieICMPCodeV4          = 177
	ieICMPTypeV6          = 178
	ieICMPCodeV6          = 179
	ieFragmentFlags       = 197
	ieInitiatorOctets     = 231
	ieResponderOctets     = 232
	ieInitiatorPackets    = 298
	ieResponderPackets    = 299
	ieSelectorID          = 302
	ieSamplingPktInterval = 305
	ieSamplingPktSpace    = 306
	ieSamplingSize        = 309
	ieSamplingPopulation  = 310
	ieSamplingProbability = 311
)

// nfContext is what a data set needs from its message header.
type nfContext struct {
	version    uint16
	domain     uint32
	format     flow.Format
	uptime     uint32 // v9: router uptime at export, ms
	exportMs   int64  // export time, Unix ms
	exportSecs uint32
	now        int64 // receive time, Unix ns
}

// decodeNetFlow decodes a NetFlow v9 or IPFIX message. Options data is
// applied before flow data of the same message so that a rate announced in
// it applies to its records. Data sets whose template is unknown are kept
// aside and decoded when the template arrives.
func (d *Decoder) decodeNetFlow(st *exporterState, data []byte, now int64, out *Batcher, res *Result) error {
	if !d.noFastPath && d.decodeNetFlowFast(st, data, now, out, res) {
		return nil
	}
	var (
		v9    netflow.NFv9Packet
		ipfix netflow.IPFIXPacket
	)
	st.templates.added = st.templates.added[:0]
	// Flowsets past the header's Count only teach templates and options:
	// their flow records are not counted, as Wireshark does not count them.
	data, flowLimit := fixV9Count(data)
	derr := netflow.DecodeMessageVersion(newBuffer(data), &st.templates, &v9, &ipfix)
	fatal := derr != nil && !errors.Is(derr, netflow.ErrorTemplateNotFound)

	ctx := nfContext{now: now, format: res.Format}
	var flowSets []any
	var seq uint32
	if res.Format == flow.FormatNetFlow9 {
		ctx.version, ctx.domain = 9, v9.SourceId
		ctx.uptime, ctx.exportSecs = v9.SystemUptime, v9.UnixSeconds
		ctx.exportMs = int64(v9.UnixSeconds) * 1000
		flowSets, seq = v9.FlowSets, v9.SequenceNumber
	} else {
		ctx.version, ctx.domain = 10, ipfix.ObservationDomainId
		ctx.exportSecs = ipfix.ExportTime
		ctx.exportMs = int64(ipfix.ExportTime) * 1000
		flowSets, seq = ipfix.FlowSets, ipfix.SequenceNumber
	}
	if fatal && len(flowSets) == 0 && ctx.exportSecs == 0 && seq == 0 {
		d.decodeError(st, res.Format, reasonTruncated)
		return derr
	}

	// Pass 0: data sets whose template is unknown are kept aside.
	unknownCount := false
	if flowLimit >= 0 && flowLimit < len(flowSets) {
		kept := make([]any, 0, len(flowSets))
		for i, fs := range flowSets {
			switch fs.(type) {
			case netflow.DataFlowSet, netflow.RawFlowSet:
				if i >= flowLimit {
					continue
				}
			}
			kept = append(kept, fs)
		}
		flowSets = kept
	}
	for _, fs := range flowSets {
		if raw, ok := fs.(netflow.RawFlowSet); ok && raw.Id >= 256 {
			unknownCount = true
			d.keepPending(st, &ctx, raw.Id, raw.Records)
		}
	}
	// Templates that arrived in this message may unlock data kept aside
	// (earlier, or earlier in this message): options first, so that every
	// rate is known before flow records.
	unlocked := len(st.templates.added) > 0 && st.pending.len() > 0
	if unlocked {
		_, o := d.drainPending(st, out, ctx.now, true)
		res.Options += o
	}
	// Pass 1: options data (sampling rates, timeouts).
	dataRecords := 0
	for _, fs := range flowSets {
		if o, ok := fs.(netflow.OptionsDataFlowSet); ok {
			for i := range o.Records {
				d.applyOptions(st, &ctx, &o.Records[i])
			}
			res.Options += len(o.Records)
			dataRecords += len(o.Records)
		}
	}
	// Pass 2: flow data, the unlocked (older) sets first.
	if unlocked {
		n, _ := d.drainPending(st, out, ctx.now, false)
		res.Records += n
	}
	for _, fs := range flowSets {
		if s, ok := fs.(netflow.DataFlowSet); ok {
			for i := range s.Records {
				d.emitDataRecord(st, &ctx, s.Records[i].Values, out)
			}
			res.Records += len(s.Records)
			dataRecords += len(s.Records)
		}
	}

	// Sequence numbers: v9 counts export packets, IPFIX counts data records.
	k := seqKey{format: res.Format, a: ctx.domain}
	switch {
	case fatal:
		st.seq.forget(k)
	case res.Format == flow.FormatNetFlow9:
		d.sequence(st, k, seq, 1)
	case unknownCount:
		// Records of sets without a template cannot be counted yet: the next
		// message's expected sequence number is unknown.
		d.sequence(st, k, seq, uint32(dataRecords))
		st.seq.forget(k)
	default:
		d.sequence(st, k, seq, uint32(dataRecords))
	}

	if fatal {
		d.decodeError(st, res.Format, classify(derr))
		return derr
	}
	return nil
}

// fixV9Count works around a NetFlow v9 header Count smaller than the
// number of flowsets. RFC 3954 counts every record in Count, but some
// exporters (softflowd) count only flow records, and goflow2 stops after
// Count flowsets: the templates and options after the first flowset would be
// lost without a word. When the flowsets, walked by their lengths, outnumber
// Count, a copy with Count raised to their number is returned, with the
// original Count as the limit of flowsets whose flow records are counted;
// otherwise data itself and -1.
func fixV9Count(data []byte) ([]byte, int) {
	const v9Header = 20
	if len(data) < v9Header || binary.BigEndian.Uint16(data) != 9 {
		return data, -1
	}
	count := int(binary.BigEndian.Uint16(data[2:]))
	sets := 0
	for off := v9Header; len(data)-off >= 4; sets++ {
		id := binary.BigEndian.Uint16(data[off:])
		l := int(binary.BigEndian.Uint16(data[off+2:]))
		if l < 4 || l > len(data)-off || (id > 1 && id < 256) {
			break // padding, or not a flowset: leave it to Count
		}
		off += l
	}
	if sets <= count {
		return data, -1
	}
	fixed := bytes.Clone(data)
	binary.BigEndian.PutUint16(fixed[2:], uint16(sets))
	return fixed, count
}

func classify(err error) string {
	switch {
	case errors.Is(err, errTemplateLimit):
		return reasonTemplateCap
	case isShortRead(err):
		return reasonTruncated
	}
	return reasonMalformed
}

// emitDataRecord turns one data record, as goflow2 decoded it, into a
// flow.Record.
func (d *Decoder) emitDataRecord(st *exporterState, ctx *nfContext, values []netflow.DataField, out *Batcher) {
	acc := recordAcc{exportMs: ctx.exportMs}
	for i := range values {
		f := &values[i]
		if f.PenProvided {
			continue // enterprise-specific: nothing Kapkan reads
		}
		if v, ok := f.Value.([]byte); ok {
			acc.field(f.Type, v)
		}
	}
	d.emitAcc(st, ctx, &acc, out)
}

// emitAcc finishes a record from what its fields said and hands it on.
func (d *Decoder) emitAcc(st *exporterState, ctx *nfContext, acc *recordAcc, out *Batcher) {
	var r flow.Record
	r.Received = ctx.now
	r.Exporter = st.addr16
	r.Format = ctx.format
	acc.finish(&r, ctx)
	sf := &acc.sf
	rate, src := sf.rate(), flow.SamplingRecord
	if rate == 0 {
		kind, id := sf.samplerRef()
		if rr, ok := st.rates.lookup(ctx.version, ctx.domain, kind, id); ok {
			rate, src = rr, flow.SamplingOptions
		}
	}
	d.resolveRate(st, &r, rate, src)
	out.Add(&r)
}

// recordAcc collects the fields Kapkan reads from one data record, in
// whatever order the template has them.
type recordAcc struct {
	sf                                     samplingFields
	haveSrc4, haveDst4, haveSrc6, haveDst6 bool
	src4, dst4, src6, dst6                 [16]byte
	bytes, packets                         [4]uint64 // by priority: delta, total, initiator, post
	haveBytes, havePackets                 [4]bool
	start, end                             int64 // Unix ns
	uptimeStart, uptimeEnd                 uint32
	haveUpStart, haveUpEnd                 bool
	sysInitMs                              int64
	durationMs                             uint64
	haveDuration                           bool
	icmpType, icmpCode                     uint8
	haveICMPParts                          bool
	srcPort, dstPort                       uint16
	proto, tcpFlags                        uint8
	fragment                               bool
	exportMs                               int64 // for delta times
}

// field reads one (IANA) information element.
func (a *recordAcc) field(ie uint16, v []byte) {
	switch ie {
	case ieSrcIPv4:
		if len(v) == 4 {
			a.src4, a.haveSrc4 = v4mapped(v), true
		}
	case ieDstIPv4:
		if len(v) == 4 {
			a.dst4, a.haveDst4 = v4mapped(v), true
		}
	case ieSrcIPv6:
		if len(v) == 16 {
			copy(a.src6[:], v)
			a.haveSrc6 = true
		}
	case ieDstIPv6:
		if len(v) == 16 {
			copy(a.dst6[:], v)
			a.haveDst6 = true
		}
	case ieSrcPort:
		a.srcPort = uint16(beUint(v))
	case ieDstPort:
		a.dstPort = uint16(beUint(v))
	case ieProtocol:
		a.proto = uint8(beUint(v))
	case ieTCPFlags:
		a.tcpFlags = uint8(beUint(v)) // the low byte holds FIN..CWR
	case ieICMPTypeCodeV4, ieICMPTypeCodeV6:
		if tc := uint16(beUint(v)); tc != 0 || a.dstPort == 0 {
			a.dstPort = tc
		}
	case ieICMPTypeV4, ieICMPTypeV6:
		a.icmpType, a.haveICMPParts = uint8(beUint(v)), true
	case ieICMPCodeV4, ieICMPCodeV6:
		a.icmpCode, a.haveICMPParts = uint8(beUint(v)), true
	case ieOctetDelta:
		a.bytes[0], a.haveBytes[0] = beUint(v), true
	case iePacketDelta:
		a.packets[0], a.havePackets[0] = beUint(v), true
	case ieOctetTotal:
		a.bytes[1], a.haveBytes[1] = beUint(v), true
	case iePacketTotal:
		a.packets[1], a.havePackets[1] = beUint(v), true
	case ieInitiatorOctets, ieResponderOctets:
		a.bytes[2] += beUint(v)
		a.haveBytes[2] = true
	case ieInitiatorPackets, ieResponderPackets:
		a.packets[2] += beUint(v)
		a.havePackets[2] = true
	case iePostOctetDelta:
		a.bytes[3], a.haveBytes[3] = beUint(v), true
	case iePostPacketDelta:
		a.packets[3], a.havePackets[3] = beUint(v), true
	case ieFragmentFlags:
		if beUint(v)&0x20 != 0 { // MF
			a.fragment = true
		}
	case ieFragmentOffset:
		if beUint(v) != 0 {
			a.fragment = true
		}
	case ieStartSysUpTime:
		a.uptimeStart, a.haveUpStart = uint32(beUint(v)), true
	case ieEndSysUpTime:
		a.uptimeEnd, a.haveUpEnd = uint32(beUint(v)), true
	case ieSystemInitMillis:
		a.sysInitMs = int64(beUint(v))
	case ieStartSeconds:
		a.start = int64(beUint(v)) * 1e9
	case ieEndSeconds:
		a.end = int64(beUint(v)) * 1e9
	case ieStartMilliseconds:
		a.start = int64(beUint(v)) * 1e6
	case ieEndMilliseconds:
		a.end = int64(beUint(v)) * 1e6
	case ieStartMicroseconds:
		a.start = ntpToUnixNano(v, true)
	case ieEndMicroseconds:
		a.end = ntpToUnixNano(v, true)
	case ieStartNanoseconds:
		a.start = ntpToUnixNano(v, false)
	case ieEndNanoseconds:
		a.end = ntpToUnixNano(v, false)
	case ieStartDeltaMicros:
		a.start = a.exportMs*1e6 - int64(beUint(v))*1e3
	case ieEndDeltaMicros:
		a.end = a.exportMs*1e6 - int64(beUint(v))*1e3
	case ieDurationMillis:
		a.durationMs, a.haveDuration = beUint(v), true
	default:
		readSamplingField(ie, v, &a.sf)
	}
}

// finish writes what the fields said into r.
func (a *recordAcc) finish(r *flow.Record, ctx *nfContext) {
	r.SrcPort, r.DstPort, r.Proto, r.TCPFlags = a.srcPort, a.dstPort, a.proto, a.tcpFlags
	if a.fragment {
		r.Flags |= flow.FlagFragment
	}
	switch {
	case a.haveSrc4 || a.haveDst4:
		r.Src, r.Dst = a.src4, a.dst4
		if !a.haveSrc4 {
			r.Src = v4mapped([]byte{0, 0, 0, 0})
		}
		if !a.haveDst4 {
			r.Dst = v4mapped([]byte{0, 0, 0, 0})
		}
		r.Flags |= flow.FlagHasIP
	case a.haveSrc6 || a.haveDst6:
		r.Src, r.Dst = a.src6, a.dst6
		r.Flags |= flow.FlagHasIP | flow.FlagIPv6
	}
	for i := range a.bytes {
		if a.haveBytes[i] {
			r.Bytes = a.bytes[i]
			break
		}
	}
	for i := range a.packets {
		if a.havePackets[i] {
			r.Packets = a.packets[i]
			break
		}
	}
	if a.haveICMPParts && r.DstPort == 0 {
		r.DstPort = uint16(a.icmpType)<<8 | uint16(a.icmpCode)
	}
	start, end := a.start, a.end
	// Times relative to router uptime: v9 anchors them to the header,
	// IPFIX to systemInitTimeMilliseconds.
	if ctx.version == 9 && ctx.exportSecs != 0 {
		if a.haveUpStart {
			start = uptimeToUnixNano(ctx.exportMs, ctx.uptime, a.uptimeStart)
		}
		if a.haveUpEnd {
			end = uptimeToUnixNano(ctx.exportMs, ctx.uptime, a.uptimeEnd)
		}
	} else if a.sysInitMs != 0 {
		if a.haveUpStart {
			start = (a.sysInitMs + int64(a.uptimeStart)) * 1e6
		}
		if a.haveUpEnd {
			end = (a.sysInitMs + int64(a.uptimeEnd)) * 1e6
		}
	}
	if a.haveDuration {
		switch {
		case start == 0 && end != 0:
			start = end - int64(a.durationMs)*1e6
		case end == 0 && start != 0:
			end = start + int64(a.durationMs)*1e6
		}
	}
	if start > 0 && end >= start {
		r.Start, r.End = start, end
	} else if end > 0 && start == 0 {
		r.Start, r.End = end, end
	}
}

// readSamplingField records a sampling-related IE into sf.
func readSamplingField(ie uint16, v []byte, sf *samplingFields) {
	switch ie {
	case ieSamplingInterval:
		sf.interval = beUint(v)
	case ieSamplerRandom:
		sf.randomInterval = beUint(v)
	case ieSamplingPktInterval:
		sf.pktInterval = beUint(v)
	case ieSamplingPktSpace:
		sf.pktSpace, sf.hasPktSpace = beUint(v), true
	case ieSamplingSize:
		sf.size = beUint(v)
	case ieSamplingPopulation:
		sf.population = beUint(v)
	case ieSamplingProbability:
		switch len(v) {
		case 4:
			sf.probability = float64(math.Float32frombits(binary.BigEndian.Uint32(v)))
		case 8:
			sf.probability = math.Float64frombits(binary.BigEndian.Uint64(v))
		}
	case ieSamplerID:
		sf.samplerID, sf.hasSamplerID = beUint(v), true
	case ieSelectorID:
		sf.selectorID, sf.hasSelectorID = beUint(v), true
	}
}

// applyOptions learns sampling rates and timeouts from an options data record.
func (d *Decoder) applyOptions(st *exporterState, ctx *nfContext, rec *netflow.OptionsDataRecord) {
	var sf samplingFields
	if ctx.version == 10 {
		// IPFIX scopes are information elements; NetFlow v9 scopes are
		// scope types (system, interface, line card, cache, template) that
		// all mean "this exporter" here.
		for i := range rec.ScopesValues {
			f := &rec.ScopesValues[i]
			if v, ok := f.Value.([]byte); ok && !f.PenProvided {
				readSamplingField(f.Type, v, &sf)
			}
		}
	}
	for i := range rec.OptionsValues {
		f := &rec.OptionsValues[i]
		v, ok := f.Value.([]byte)
		if !ok || f.PenProvided {
			continue
		}
		if f.Type == ieFlowActiveTimeout {
			d.noteActiveTimeout(st, beUint(v))
			continue
		}
		readSamplingField(f.Type, v, &sf)
	}
	if rate := sf.rate(); rate > 0 {
		kind, id := sf.samplerRef()
		st.rates.set(samplerKey{ctx.version, ctx.domain, kind, id}, rate)
	}
}

// beUint reads a big-endian unsigned integer of up to 8 bytes (longer values
// keep their last 8 bytes).
func beUint(v []byte) uint64 {
	if len(v) > 8 {
		v = v[len(v)-8:]
	}
	var x uint64
	for _, b := range v {
		x = x<<8 | uint64(b)
	}
	return x
}

// ntpToUnixNano converts an IPFIX dateTimeMicroseconds / Nanoseconds value
// (NTP format: seconds since 1900, then a 32-bit binary fraction) to Unix ns.
// Microsecond values are truncated to the microsecond: RFC 7011 leaves their
// 11 low fraction bits free, and exporters round them up.
func ntpToUnixNano(v []byte, micro bool) int64 {
	if len(v) != 8 {
		return 0
	}
	const ntpToUnix = 2208988800
	secs := int64(binary.BigEndian.Uint32(v[:4])) - ntpToUnix
	frac := uint64(binary.BigEndian.Uint32(v[4:]))
	if micro {
		return secs*1e9 + int64(frac*1e6>>32)*1e3
	}
	return secs*1e9 + int64(frac*1e9>>32)
}
