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
	var (
		v9    netflow.NFv9Packet
		ipfix netflow.IPFIXPacket
	)
	st.templates.added = st.templates.added[:0]
	// Flowsets past the header's Count only teach templates and options:
	// their flow records are not counted, as Wireshark does not count them.
	flowLimit := -1
	if fixed := fixV9Count(data); len(fixed) > 0 && &fixed[0] != &data[0] {
		flowLimit = int(binary.BigEndian.Uint16(data[2:]))
		data = fixed
	}
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
		d.metrics.decodeError(st.label, res.Format, reasonTruncated)
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
		d.metrics.decodeError(st.label, res.Format, classify(derr))
		return derr
	}
	return nil
}

// fixV9Count works around a NetFlow v9 header Count smaller than the
// number of flowsets. RFC 3954 counts every record in Count, but some
// exporters (softflowd) count only flow records, and goflow2 stops after
// Count flowsets: the templates and options after the first flowset would be
// lost without a word. When the flowsets, walked by their lengths, outnumber
// Count, a copy with Count raised to their number is decoded instead.
func fixV9Count(data []byte) []byte {
	const v9Header = 20
	if len(data) < v9Header || binary.BigEndian.Uint16(data) != 9 {
		return data
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
		return data
	}
	fixed := bytes.Clone(data)
	binary.BigEndian.PutUint16(fixed[2:], uint16(sets))
	return fixed
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

// emitDataRecord turns one data record into a flow.Record.
func (d *Decoder) emitDataRecord(st *exporterState, ctx *nfContext, values []netflow.DataField, out *Batcher) {
	var (
		r  flow.Record
		sf samplingFields
	)
	r.Received = ctx.now
	r.Exporter = st.addr16
	r.Format = ctx.format
	fillDataRecord(&r, ctx, values, &sf)
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

// fillDataRecord reads the fields Kapkan uses from a data record.
func fillDataRecord(r *flow.Record, ctx *nfContext, values []netflow.DataField, sf *samplingFields) {
	var (
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
	)
	for i := range values {
		f := &values[i]
		if f.PenProvided {
			continue // enterprise-specific: nothing Kapkan reads
		}
		v, ok := f.Value.([]byte)
		if !ok {
			continue
		}
		switch f.Type {
		case ieSrcIPv4:
			if len(v) == 4 {
				src4, haveSrc4 = v4mapped(v), true
			}
		case ieDstIPv4:
			if len(v) == 4 {
				dst4, haveDst4 = v4mapped(v), true
			}
		case ieSrcIPv6:
			if len(v) == 16 {
				copy(src6[:], v)
				haveSrc6 = true
			}
		case ieDstIPv6:
			if len(v) == 16 {
				copy(dst6[:], v)
				haveDst6 = true
			}
		case ieSrcPort:
			r.SrcPort = uint16(beUint(v))
		case ieDstPort:
			r.DstPort = uint16(beUint(v))
		case ieProtocol:
			r.Proto = uint8(beUint(v))
		case ieTCPFlags:
			r.TCPFlags = uint8(beUint(v)) // the low byte holds FIN..CWR
		case ieICMPTypeCodeV4, ieICMPTypeCodeV6:
			if tc := uint16(beUint(v)); tc != 0 || r.DstPort == 0 {
				r.DstPort = tc
			}
		case ieICMPTypeV4, ieICMPTypeV6:
			icmpType, haveICMPParts = uint8(beUint(v)), true
		case ieICMPCodeV4, ieICMPCodeV6:
			icmpCode, haveICMPParts = uint8(beUint(v)), true
		case ieOctetDelta:
			bytes[0], haveBytes[0] = beUint(v), true
		case iePacketDelta:
			packets[0], havePackets[0] = beUint(v), true
		case ieOctetTotal:
			bytes[1], haveBytes[1] = beUint(v), true
		case iePacketTotal:
			packets[1], havePackets[1] = beUint(v), true
		case ieInitiatorOctets:
			bytes[2] += beUint(v)
			haveBytes[2] = true
		case ieResponderOctets:
			bytes[2] += beUint(v)
			haveBytes[2] = true
		case ieInitiatorPackets:
			packets[2] += beUint(v)
			havePackets[2] = true
		case ieResponderPackets:
			packets[2] += beUint(v)
			havePackets[2] = true
		case iePostOctetDelta:
			bytes[3], haveBytes[3] = beUint(v), true
		case iePostPacketDelta:
			packets[3], havePackets[3] = beUint(v), true
		case ieFragmentFlags:
			if beUint(v)&0x20 != 0 { // MF
				r.Flags |= flow.FlagFragment
			}
		case ieFragmentOffset:
			if beUint(v) != 0 {
				r.Flags |= flow.FlagFragment
			}
		case ieStartSysUpTime:
			uptimeStart, haveUpStart = uint32(beUint(v)), true
		case ieEndSysUpTime:
			uptimeEnd, haveUpEnd = uint32(beUint(v)), true
		case ieSystemInitMillis:
			sysInitMs = int64(beUint(v))
		case ieStartSeconds:
			start = int64(beUint(v)) * 1e9
		case ieEndSeconds:
			end = int64(beUint(v)) * 1e9
		case ieStartMilliseconds:
			start = int64(beUint(v)) * 1e6
		case ieEndMilliseconds:
			end = int64(beUint(v)) * 1e6
		case ieStartMicroseconds:
			start = ntpToUnixNano(v, true)
		case ieEndMicroseconds:
			end = ntpToUnixNano(v, true)
		case ieStartNanoseconds:
			start = ntpToUnixNano(v, false)
		case ieEndNanoseconds:
			end = ntpToUnixNano(v, false)
		case ieStartDeltaMicros:
			start = ctx.exportMs*1e6 - int64(beUint(v))*1e3
		case ieEndDeltaMicros:
			end = ctx.exportMs*1e6 - int64(beUint(v))*1e3
		case ieDurationMillis:
			durationMs, haveDuration = beUint(v), true
		default:
			readSamplingField(f.Type, v, sf)
		}
	}
	switch {
	case haveSrc4 || haveDst4:
		r.Src, r.Dst = src4, dst4
		if !haveSrc4 {
			r.Src = v4mapped([]byte{0, 0, 0, 0})
		}
		if !haveDst4 {
			r.Dst = v4mapped([]byte{0, 0, 0, 0})
		}
		r.Flags |= flow.FlagHasIP
	case haveSrc6 || haveDst6:
		r.Src, r.Dst = src6, dst6
		r.Flags |= flow.FlagHasIP | flow.FlagIPv6
	}
	for i := range bytes {
		if haveBytes[i] {
			r.Bytes = bytes[i]
			break
		}
	}
	for i := range packets {
		if havePackets[i] {
			r.Packets = packets[i]
			break
		}
	}
	if haveICMPParts && r.DstPort == 0 {
		r.DstPort = uint16(icmpType)<<8 | uint16(icmpCode)
	}
	// Times relative to router uptime: v9 anchors them to the header,
	// IPFIX to systemInitTimeMilliseconds.
	if ctx.version == 9 && ctx.exportSecs != 0 {
		if haveUpStart {
			start = uptimeToUnixNano(ctx.exportMs, ctx.uptime, uptimeStart)
		}
		if haveUpEnd {
			end = uptimeToUnixNano(ctx.exportMs, ctx.uptime, uptimeEnd)
		}
	} else if sysInitMs != 0 {
		if haveUpStart {
			start = (sysInitMs + int64(uptimeStart)) * 1e6
		}
		if haveUpEnd {
			end = (sysInitMs + int64(uptimeEnd)) * 1e6
		}
	}
	if haveDuration {
		switch {
		case start == 0 && end != 0:
			start = end - int64(durationMs)*1e6
		case end == 0 && start != 0:
			end = start + int64(durationMs)*1e6
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
