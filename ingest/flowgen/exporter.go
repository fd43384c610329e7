package flowgen

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// Versions an Exporter speaks.
const (
	VersionNetFlow9 = 9
	VersionIPFIX    = 10
)

const (
	netflow9HeaderLen = 20
	ipfixHeaderLen    = 16
	setHeaderLen      = 4
	minTemplateID     = 256
	ntpEpochOffset    = 2208988800 // seconds from 1900-01-01 to 1970-01-01
	fragmentFlagMF    = 0x20       // fragmentFlags bit 2 (RFC 5102): more fragments
)

// Exporter is the state of one NetFlow v9 or IPFIX exporting process for one
// observation domain: it numbers the datagrams it builds and relates record
// times to its boot time and export time.
//
// A datagram is made of sets the caller lists in any order:
//
//	tpl := flowgen.Template{ID: 256, Fields: flowgen.FlowFields(9, flowgen.IPv4, flowgen.TimesDefault)}
//	e := &flowgen.Exporter{Version: 9, DomainID: 1, Now: t}
//	pkt := e.Datagram(flowgen.TemplateSet(tpl), flowgen.DataSet(tpl, flows...))
//
// Nothing ties a data set to a template set sent before: data before its
// template, a template redefined under the same id, or data for a template
// never sent are all the caller's to produce.
//
// An Exporter is not safe for concurrent use.
type Exporter struct {
	// Version is VersionNetFlow9 or VersionIPFIX.
	Version uint16
	// DomainID is the NetFlow v9 Source ID or the IPFIX Observation Domain
	// ID, also written in observationDomainId (IE 149) fields.
	DomainID uint32
	// Boot is when the exporting device started: sysUpTime (the v9 header,
	// IE 21 and 22) counts from it, and systemInitTimeMilliseconds (IE 160)
	// holds it. Zero means one hour before the first export time, set on
	// the first datagram.
	Boot time.Time
	// Now is the export time of the next datagram; zero means time.Now().
	// It is written in whole seconds (v9 unix_secs, IPFIX Export Time), and
	// every time in the datagram (sysUpTime, delta times) is taken from that
	// whole second, so that a collector rebuilding absolute times from the
	// header gets exactly the Flow's Start and End.
	Now time.Time
	// Sequence is the sequence number of the next datagram. After each
	// datagram it advances by one in NetFlow v9 (a count of export packets)
	// and by the number of data records (options data records included) in
	// IPFIX. Set it to produce gaps or wraps.
	Sequence uint32
	// Unpadded leaves sets without the padding that otherwise aligns each
	// on 4 bytes (RFC 3954 says v9 exporters SHOULD pad; IPFIX allows
	// either). Padding is never added when it could be read as a record.
	Unpadded bool
}

// Options holds the values of an options data record. Each field of the
// options template is written from the value its information element names
// (IPFIX scope fields too, as they are information elements); fields without
// a value here are zeros.
type Options struct {
	// Scope is written in every NetFlow v9 scope field (System, Interface,
	// Line Card, Cache, Template).
	Scope uint64
	// SamplerID is written in samplerId (IE 48) and selectorId (IE 302).
	SamplerID uint64
	// SamplerMode is written in samplingAlgorithm (IE 35) and samplerMode
	// (IE 49): SamplingDeterministic or SamplingRandom.
	SamplerMode uint8
	// SamplingRate is written in samplingInterval (IE 34) and
	// samplerRandomInterval (IE 50).
	SamplingRate uint32
	// SelectorAlgorithm is written in selectorAlgorithm (IE 304).
	SelectorAlgorithm uint16
	// PacketInterval and PacketSpace are written in samplingPacketInterval
	// (IE 305) and samplingPacketSpace (IE 306). When both are zero they are
	// 1 and SamplingRate-1 (one packet sampled out of SamplingRate).
	PacketInterval, PacketSpace uint32
	// ActiveTimeout and IdleTimeout are written in flowActiveTimeout (IE 36)
	// and flowIdleTimeout (IE 37), in seconds.
	ActiveTimeout, IdleTimeout uint16
	// Values, when not nil, holds the value of every field in template order
	// (scope fields first) and replaces all the above.
	Values []uint64
}

type setKind uint8

const (
	setTemplates setKind = iota
	setData
	setOptionsData
	setRaw
)

// Set is one set of a NetFlow v9 or IPFIX datagram, described by TemplateSet,
// DataSet, OptionsDataSet or RawSet and encoded by Exporter.AppendDatagram.
type Set struct {
	kind    setKind
	tpls    []Template
	flows   []Flow
	options []Options
	id      uint16
	records int
	body    []byte
}

// TemplateSet announces templates: a template set (v9 id 0, IPFIX id 2) for
// flow templates and an options template set (v9 id 1, IPFIX id 3) for
// options templates. Given both kinds, it writes the template set first,
// then the options template set. An IPFIX template without fields is a
// template withdrawal.
func TemplateSet(tpls ...Template) Set { return Set{kind: setTemplates, tpls: tpls} }

// DataSet is a data set of records for the flow template tpl, one per flow.
// Like every Set it refers to its arguments until encoded: encode it before
// changing flows.
func DataSet(tpl Template, flows ...Flow) Set {
	return Set{kind: setData, tpls: []Template{tpl}, flows: flows}
}

// OptionsDataSet is a data set of options records for the options template
// tpl.
func OptionsDataSet(tpl Template, records ...Options) Set {
	return Set{kind: setOptionsData, tpls: []Template{tpl}, options: records}
}

// RawSet is a set with id and body written as given (no padding added), for
// what the other sets cannot express: malformed sets, unknown set ids. It
// counts as records records (for the v9 header count and, when id >= 256,
// the IPFIX sequence number).
func RawSet(id uint16, records int, body []byte) Set {
	return Set{kind: setRaw, id: id, records: records, body: body}
}

// Datagram is AppendDatagram(nil, sets...) for tests and fixtures, where the
// sets are constants: it panics where AppendDatagram returns an error.
func (e *Exporter) Datagram(sets ...Set) []byte {
	b, err := e.AppendDatagram(nil, sets...)
	if err != nil {
		panic(err)
	}
	return b
}

// AppendDatagram appends a datagram made of sets, in their order, to dst and
// returns the extended slice. The header is the NetFlow v9 one (count of all
// records, template records included; sysUpTime; unix_secs; sequence; Source
// ID) or the IPFIX one (message length; export time; sequence; Observation
// Domain ID). On error dst and the Exporter are left as they were.
func (e *Exporter) AppendDatagram(dst []byte, sets ...Set) ([]byte, error) {
	name := "ipfix"
	if e.Version == VersionNetFlow9 {
		name = "netflow v9"
	} else if e.Version != VersionIPFIX {
		return dst, fmt.Errorf("netflow: version %d, want 9 or 10", e.Version)
	}
	now := e.Now
	if now.IsZero() {
		now = time.Now()
	}
	enc := encoder{e: e, export: time.Unix(now.Unix(), 0), boot: e.Boot}
	if enc.boot.IsZero() {
		enc.boot = enc.export.Add(-time.Hour)
	}

	start := len(dst)
	if e.Version == VersionNetFlow9 {
		dst = be16(dst, VersionNetFlow9)
		dst = be16(dst, 0) // count, set below
		dst = be32(dst, msSince(enc.export, enc.boot))
		dst = be32(dst, uint32(enc.export.Unix()))
		dst = be32(dst, e.Sequence)
		dst = be32(dst, e.DomainID)
	} else {
		dst = be16(dst, VersionIPFIX)
		dst = be16(dst, 0) // length, set below
		dst = be32(dst, uint32(enc.export.Unix()))
		dst = be32(dst, e.Sequence)
		dst = be32(dst, e.DomainID)
	}
	for i := range sets {
		var err error
		if dst, err = enc.appendSet(dst, &sets[i]); err != nil {
			return dst[:start], fmt.Errorf("%s: set %d: %w", name, i, err)
		}
	}
	if e.Version == VersionNetFlow9 {
		if enc.records > math.MaxUint16 {
			return dst[:start], fmt.Errorf("%s: %d records, the header counts at most 65535", name, enc.records)
		}
		binary.BigEndian.PutUint16(dst[start+2:], uint16(enc.records))
		e.Sequence++
	} else {
		n := len(dst) - start
		if n > math.MaxUint16 {
			return dst[:start], fmt.Errorf("%s: message of %d bytes, at most 65535", name, n)
		}
		binary.BigEndian.PutUint16(dst[start+2:], uint16(n))
		e.Sequence += uint32(enc.dataRecords)
	}
	e.Boot = enc.boot
	return dst, nil
}

// encoder encodes the sets of one datagram.
type encoder struct {
	e            *Exporter
	export, boot time.Time
	records      int // all records, for the v9 count
	dataRecords  int // data and options data records, for the IPFIX sequence
}

func (c *encoder) appendSet(b []byte, s *Set) ([]byte, error) {
	var err error
	switch s.kind {
	case setTemplates:
		var plain, opts int
		for i := range s.tpls {
			if err := c.checkTemplate(&s.tpls[i]); err != nil {
				return b, err
			}
			if s.tpls[i].IsOptions() {
				opts++
			} else {
				plain++
			}
		}
		if plain > 0 || len(s.tpls) == 0 {
			if b, err = c.appendTemplates(b, s.tpls, false); err != nil {
				return b, err
			}
		}
		if opts > 0 {
			if b, err = c.appendTemplates(b, s.tpls, true); err != nil {
				return b, err
			}
		}
		c.records += len(s.tpls)
	case setData, setOptionsData:
		tpl := &s.tpls[0]
		if err := c.checkTemplate(tpl); err != nil {
			return b, err
		}
		rl := tpl.RecordLen()
		if rl == 0 {
			return b, fmt.Errorf("template %d has no fields to encode records with", tpl.ID)
		}
		st := len(b)
		b = be16(b, tpl.ID)
		b = be16(b, 0)
		n := 0
		if s.kind == setData {
			if tpl.IsOptions() {
				return b[:st], fmt.Errorf("template %d is an options template: use OptionsDataSet", tpl.ID)
			}
			for i := range s.flows {
				b = c.appendFlowRecord(b, tpl, &s.flows[i])
			}
			n = len(s.flows)
		} else {
			if !tpl.IsOptions() {
				return b[:st], fmt.Errorf("template %d is not an options template: use DataSet", tpl.ID)
			}
			for i := range s.options {
				if b, err = c.appendOptionsRecord(b, tpl, &s.options[i]); err != nil {
					return b[:st], fmt.Errorf("options record %d: %w", i, err)
				}
			}
			n = len(s.options)
		}
		if b, err = c.endSet(b, st, rl); err != nil {
			return b, err
		}
		c.records += n
		c.dataRecords += n
	case setRaw:
		if len(s.body) > math.MaxUint16-setHeaderLen {
			return b, fmt.Errorf("raw set of %d bytes, at most %d", len(s.body), math.MaxUint16-setHeaderLen)
		}
		b = be16(b, s.id)
		b = be16(b, uint16(setHeaderLen+len(s.body)))
		b = append(b, s.body...)
		c.records += s.records
		if s.id >= minTemplateID {
			c.dataRecords += s.records
		}
	}
	return b, nil
}

// checkTemplate rejects what cannot be encoded for the exporter's version.
func (c *encoder) checkTemplate(t *Template) error {
	if t.ID < minTemplateID {
		return fmt.Errorf("template id %d, want %d or more", t.ID, minTemplateID)
	}
	if t.IsOptions() && len(t.Scopes) == 0 && c.e.Version == VersionIPFIX {
		return fmt.Errorf("IPFIX options template %d without scope", t.ID)
	}
	if n := len(t.Scopes) + len(t.Fields); n > 0x3fff {
		return fmt.Errorf("template %d has %d fields", t.ID, n)
	}
	for _, fs := range [2][]Field{t.Scopes, t.Fields} {
		for _, f := range fs {
			switch {
			case f.Len == 0 || f.Len == 0xffff:
				return fmt.Errorf("template %d: field %d has length %d (variable-length fields are not supported)", t.ID, f.ID, f.Len)
			case f.Enterprise != 0 && c.e.Version == VersionNetFlow9:
				return fmt.Errorf("template %d: NetFlow v9 has no enterprise field %d/%d", t.ID, f.Enterprise, f.ID)
			case f.Enterprise != 0 && f.ID >= 0x8000:
				return fmt.Errorf("template %d: enterprise field id %d has its top bit set", t.ID, f.ID)
			}
		}
	}
	return nil
}

// appendTemplates appends a template set holding the templates of tpls that
// are (options) or are not (!options) options templates.
func (c *encoder) appendTemplates(b []byte, tpls []Template, options bool) ([]byte, error) {
	v9 := c.e.Version == VersionNetFlow9
	id := uint16(2)
	switch {
	case v9 && !options:
		id = 0
	case v9 && options:
		id = 1
	case options:
		id = 3
	}
	st := len(b)
	b = be16(b, id)
	b = be16(b, 0)
	for i := range tpls {
		t := &tpls[i]
		if t.IsOptions() != options {
			continue
		}
		b = be16(b, t.ID)
		switch {
		case !options:
			b = be16(b, uint16(len(t.Fields)))
		case v9: // scope and option lengths in bytes
			b = be16(b, uint16(4*len(t.Scopes)))
			b = be16(b, uint16(4*len(t.Fields)))
		default: // field count, scope field count
			b = be16(b, uint16(len(t.Scopes)+len(t.Fields)))
			b = be16(b, uint16(len(t.Scopes)))
		}
		for _, f := range t.Scopes {
			b = appendFieldSpec(b, f)
		}
		for _, f := range t.Fields {
			b = appendFieldSpec(b, f)
		}
	}
	return c.endSet(b, st, 4)
}

func appendFieldSpec(b []byte, f Field) []byte {
	if f.Enterprise != 0 {
		b = be16(b, f.ID|0x8000)
		b = be16(b, f.Len)
		return be32(b, f.Enterprise)
	}
	b = be16(b, f.ID)
	return be16(b, f.Len)
}

// endSet pads the set begun at st to 4 bytes, unless the padding could be
// read as a record of minRecord bytes, and writes its length.
func (c *encoder) endSet(b []byte, st, minRecord int) ([]byte, error) {
	if pad := (4 - (len(b)-st)%4) % 4; pad > 0 && pad < minRecord && !c.e.Unpadded {
		b = appendZeros(b, pad)
	}
	n := len(b) - st
	if n > math.MaxUint16 {
		return b[:st], fmt.Errorf("set %d of %d bytes, at most 65535", binary.BigEndian.Uint16(b[st:]), n)
	}
	binary.BigEndian.PutUint16(b[st+2:], uint16(n))
	return b, nil
}

func (c *encoder) appendFlowRecord(b []byte, t *Template, f *Flow) []byte {
	fam := f.Family()
	for _, fd := range t.Fields {
		at := len(b)
		b = appendZeros(b, int(fd.Len))
		if fd.Enterprise != 0 {
			continue
		}
		v := b[at:]
		switch fd.ID {
		case IESourceIPv4Address, IEDestinationIPv4Address:
			if fam == IPv4 {
				a := as4(pick(fd.ID == IESourceIPv4Address, f.Src, f.Dst))
				copy(v, a[:])
			}
		case IESourceIPv6Address, IEDestinationIPv6Address:
			if fam == IPv6 {
				a := as16(pick(fd.ID == IESourceIPv6Address, f.Src, f.Dst))
				copy(v, a[:])
			}
		default:
			putUint(v, c.flowValue(fd.ID, f, fam))
		}
	}
	return b
}

func pick[T any](first bool, a, b T) T {
	if first {
		return a
	}
	return b
}

// flowValue is the value of the numeric information element id for f.
func (c *encoder) flowValue(id uint16, f *Flow, fam Family) uint64 {
	start, end := timeOr(f.Start, c.export), timeOr(f.End, c.export)
	icmp := (fam == IPv4 && f.Proto == ProtoICMP) || (fam == IPv6 && f.Proto == ProtoICMPv6)
	switch id {
	case IEOctetDeltaCount, IEOctetTotalCount:
		return f.Bytes
	case IEPacketDeltaCount, IEPacketTotalCount:
		return f.Packets
	case IEProtocolIdentifier:
		return uint64(f.Proto)
	case IETCPControlBits:
		return uint64(f.TCPFlags)
	case IESourceTransportPort:
		return uint64(f.SrcPort)
	case IEDestinationTransportPort:
		return uint64(f.DstPort)
	case IEIngressInterface:
		return uint64(f.InIf)
	case IEEgressInterface:
		return uint64(f.OutIf)
	case IEFlowStartSysUpTime:
		return uint64(msSince(start, c.boot))
	case IEFlowEndSysUpTime:
		return uint64(msSince(end, c.boot))
	case IEICMPTypeCodeIPv4:
		if fam == IPv4 && icmp {
			return uint64(f.DstPort)
		}
	case IEICMPTypeCodeIPv6:
		if fam == IPv6 && icmp {
			return uint64(f.DstPort)
		}
	case IEICMPTypeIPv4:
		if fam == IPv4 && icmp {
			return uint64(f.DstPort >> 8)
		}
	case IEICMPCodeIPv4:
		if fam == IPv4 && icmp {
			return uint64(f.DstPort & 0xff)
		}
	case IEICMPTypeIPv6:
		if fam == IPv6 && icmp {
			return uint64(f.DstPort >> 8)
		}
	case IEICMPCodeIPv6:
		if fam == IPv6 && icmp {
			return uint64(f.DstPort & 0xff)
		}
	case IESamplingInterval, IESamplerRandomInterval:
		return uint64(f.SamplingRate)
	case IESamplingPacketInterval:
		if f.SamplingRate > 0 {
			return 1
		}
	case IESamplingPacketSpace:
		if f.SamplingRate > 0 {
			return uint64(f.SamplingRate - 1)
		}
	case IESamplerID, IESelectorID:
		return uint64(f.SamplerID)
	case IEIPVersion:
		return uint64(fam)
	case IEFragmentOffset:
		return uint64(f.FragmentOffset)
	case IEFragmentFlags:
		if f.Fragment {
			return fragmentFlagMF
		}
	case IEObservationDomainID:
		return uint64(c.e.DomainID)
	case IESystemInitTimeMilliseconds:
		return uint64(c.boot.UnixMilli())
	case IEFlowDurationMilliseconds:
		return uint64(end.Sub(start).Milliseconds())
	case IEFlowStartSeconds:
		return uint64(start.Unix())
	case IEFlowEndSeconds:
		return uint64(end.Unix())
	case IEFlowStartMilliseconds:
		return uint64(start.UnixMilli())
	case IEFlowEndMilliseconds:
		return uint64(end.UnixMilli())
	case IEFlowStartMicroseconds:
		return ntpTime(start, true)
	case IEFlowEndMicroseconds:
		return ntpTime(end, true)
	case IEFlowStartNanoseconds:
		return ntpTime(start, false)
	case IEFlowEndNanoseconds:
		return ntpTime(end, false)
	case IEFlowStartDeltaMicroseconds:
		return uint64(uint32(c.export.Sub(start).Microseconds()))
	case IEFlowEndDeltaMicroseconds:
		return uint64(uint32(c.export.Sub(end).Microseconds()))
	}
	return 0
}

// ntpTime encodes t in the NTP timestamp format of dateTimeMicroseconds
// (micro) or dateTimeNanoseconds (RFC 7011 sections 6.1.9 and 6.1.10). The
// fraction is rounded up, so that a reader truncating it to nanoseconds
// (or, for micro, to microseconds) gets t's back; for micro its 11 low bits
// are zero, as the RFC asks.
func ntpTime(t time.Time, micro bool) uint64 {
	secs := uint64(t.Unix() + ntpEpochOffset)
	var frac uint64
	if micro {
		us := uint64(t.Nanosecond() / 1000)
		frac = (us<<32 + 1e6 - 1) / 1e6
		frac = (frac + 0x7ff) &^ 0x7ff
	} else {
		frac = (uint64(t.Nanosecond())<<32 + 1e9 - 1) / 1e9
	}
	return secs<<32 | frac
}

func (c *encoder) appendOptionsRecord(b []byte, t *Template, o *Options) ([]byte, error) {
	if o.Values != nil {
		if want := len(t.Scopes) + len(t.Fields); len(o.Values) != want {
			return b, fmt.Errorf("%d values for the %d fields of template %d", len(o.Values), want, t.ID)
		}
		i := 0
		for _, fs := range [2][]Field{t.Scopes, t.Fields} {
			for _, fd := range fs {
				at := len(b)
				b = appendZeros(b, int(fd.Len))
				putUint(b[at:], o.Values[i])
				i++
			}
		}
		return b, nil
	}
	v9 := c.e.Version == VersionNetFlow9
	for _, fd := range t.Scopes {
		at := len(b)
		b = appendZeros(b, int(fd.Len))
		if v9 {
			putUint(b[at:], o.Scope)
		} else if fd.Enterprise == 0 {
			putUint(b[at:], c.optionValue(fd.ID, o))
		}
	}
	for _, fd := range t.Fields {
		at := len(b)
		b = appendZeros(b, int(fd.Len))
		if fd.Enterprise == 0 {
			putUint(b[at:], c.optionValue(fd.ID, o))
		}
	}
	return b, nil
}

// optionValue is the value of the information element id in an options
// record.
func (c *encoder) optionValue(id uint16, o *Options) uint64 {
	interval, space := o.PacketInterval, o.PacketSpace
	if interval == 0 && space == 0 && o.SamplingRate > 0 {
		interval, space = 1, o.SamplingRate-1
	}
	switch id {
	case IESamplerID, IESelectorID:
		return o.SamplerID
	case IESamplerMode, IESamplingAlgorithm:
		return uint64(o.SamplerMode)
	case IESamplingInterval, IESamplerRandomInterval:
		return uint64(o.SamplingRate)
	case IESelectorAlgorithm:
		return uint64(o.SelectorAlgorithm)
	case IESamplingPacketInterval:
		return uint64(interval)
	case IESamplingPacketSpace:
		return uint64(space)
	case IEFlowActiveTimeout:
		return uint64(o.ActiveTimeout)
	case IEFlowIdleTimeout:
		return uint64(o.IdleTimeout)
	case IEObservationDomainID:
		return uint64(c.e.DomainID)
	case IESystemInitTimeMilliseconds:
		return uint64(c.boot.UnixMilli())
	}
	return 0
}
