package flowgen

// Information element numbers (IANA IPFIX registry; NetFlow v9 field types
// share the numbers below 128) that flowgen fills from a Flow or Options.
// Other elements are written as zeros.
const (
	IEOctetDeltaCount            = 1   // v9 IN_BYTES
	IEPacketDeltaCount           = 2   // v9 IN_PKTS
	IEProtocolIdentifier         = 4   // v9 PROTOCOL
	IEIPClassOfService           = 5   // v9 SRC_TOS, written 0
	IETCPControlBits             = 6   // v9 TCP_FLAGS
	IESourceTransportPort        = 7   // v9 L4_SRC_PORT
	IESourceIPv4Address          = 8   // v9 IPV4_SRC_ADDR
	IEIngressInterface           = 10  // v9 INPUT_SNMP
	IEDestinationTransportPort   = 11  // v9 L4_DST_PORT
	IEDestinationIPv4Address     = 12  // v9 IPV4_DST_ADDR
	IEEgressInterface            = 14  // v9 OUTPUT_SNMP
	IEFlowEndSysUpTime           = 21  // v9 LAST_SWITCHED
	IEFlowStartSysUpTime         = 22  // v9 FIRST_SWITCHED
	IESourceIPv6Address          = 27  // v9 IPV6_SRC_ADDR
	IEDestinationIPv6Address     = 28  // v9 IPV6_DST_ADDR
	IEICMPTypeCodeIPv4           = 32  // v9 ICMP_TYPE
	IESamplingInterval           = 34  // v9 SAMPLING_INTERVAL
	IESamplingAlgorithm          = 35  // v9 SAMPLING_ALGORITHM
	IEFlowActiveTimeout          = 36  // v9 FLOW_ACTIVE_TIMEOUT, seconds
	IEFlowIdleTimeout            = 37  // v9 FLOW_INACTIVE_TIMEOUT, seconds
	IESamplerID                  = 48  // v9 FLOW_SAMPLER_ID
	IESamplerMode                = 49  // v9 FLOW_SAMPLER_MODE
	IESamplerRandomInterval      = 50  // v9 FLOW_SAMPLER_RANDOM_INTERVAL
	IEIPVersion                  = 60  // v9 IP_PROTOCOL_VERSION
	IEOctetTotalCount            = 85  // v9 IN_PERMANENT_BYTES
	IEPacketTotalCount           = 86  // v9 IN_PERMANENT_PKTS
	IEFragmentOffset             = 88  // v9 FRAGMENT_OFFSET
	IEICMPTypeCodeIPv6           = 139 // IPFIX only from here
	IEObservationDomainID        = 149
	IEFlowStartSeconds           = 150
	IEFlowEndSeconds             = 151
	IEFlowStartMilliseconds      = 152
	IEFlowEndMilliseconds        = 153
	IEFlowStartMicroseconds      = 154
	IEFlowEndMicroseconds        = 155
	IEFlowStartNanoseconds       = 156
	IEFlowEndNanoseconds         = 157
	IEFlowStartDeltaMicroseconds = 158
	IEFlowEndDeltaMicroseconds   = 159
	IESystemInitTimeMilliseconds = 160
	IEFlowDurationMilliseconds   = 161
	IEICMPTypeIPv4               = 176
	IEICMPCodeIPv4               = 177
	IEICMPTypeIPv6               = 178
	IEICMPCodeIPv6               = 179
	IEFragmentFlags              = 197
	IESelectorID                 = 302
	IESelectorAlgorithm          = 304
	IESamplingPacketInterval     = 305
	IESamplingPacketSpace        = 306
)

// NetFlow v9 options scope field types (RFC 3954 section 6.1), a numbering of
// their own. Every scope field is written with Options.Scope.
const (
	ScopeSystem    = 1
	ScopeInterface = 2
	ScopeLineCard  = 3
	ScopeCache     = 4
	ScopeTemplate  = 5
)

// Sampling algorithms of samplingAlgorithm (IE 35) and samplerMode (IE 49).
const (
	SamplingDeterministic = 1
	SamplingRandom        = 2
)

// Selector algorithms of selectorAlgorithm (IE 304, RFC 5477).
const (
	SelectorSystematicCount = 1
	SelectorSystematicTime  = 2
	SelectorRandomNofN      = 3
)

// Field is one field of a template: an information element and its length.
type Field struct {
	// ID is the information element (IPFIX) or field type (NetFlow v9), or
	// in a v9 options template's Scopes a scope field type.
	ID uint16
	// Len is the field length in bytes. Numbers shorter than their type are
	// written in reduced-size encoding (their low-order bytes).
	Len uint16
	// Enterprise is the IPFIX enterprise number of an enterprise-specific
	// element (0: IANA). Enterprise elements are written as zeros.
	Enterprise uint32
}

// Template is a template (Options false and no Scopes) or an options
// template. The same value is used to announce it (TemplateSet) and to encode
// data records for it (DataSet, OptionsDataSet).
type Template struct {
	// ID is the template id, 256 or more.
	ID uint16
	// Options makes this an options template even without Scopes (NetFlow v9
	// allows options without scope; IPFIX does not).
	Options bool
	// Scopes are the scope fields of an options template, in order.
	Scopes []Field
	// Fields are the fields of a template, or the non-scope fields of an
	// options template, in order.
	Fields []Field
}

// IsOptions reports whether t is an options template.
func (t *Template) IsOptions() bool { return t.Options || len(t.Scopes) > 0 }

// RecordLen returns the length of one data record of t.
func (t *Template) RecordLen() int {
	n := 0
	for _, f := range t.Scopes {
		n += int(f.Len)
	}
	for _, f := range t.Fields {
		n += int(f.Len)
	}
	return n
}

// Times selects the flow time fields of FlowFields.
type Times uint8

// Flow time fields.
const (
	// TimesDefault is TimesSysUpTime for NetFlow v9 and TimesMilliseconds
	// for IPFIX.
	TimesDefault Times = iota
	// TimesSysUpTime: flowStartSysUpTime and flowEndSysUpTime (IE 22 and 21,
	// v9 FIRST_SWITCHED and LAST_SWITCHED), 4 bytes.
	TimesSysUpTime
	// TimesSeconds: flowStartSeconds and flowEndSeconds (IE 150 and 151).
	TimesSeconds
	// TimesMilliseconds: flowStartMilliseconds and flowEndMilliseconds (IE
	// 152 and 153).
	TimesMilliseconds
	// TimesMicroseconds: flowStartMicroseconds and flowEndMicroseconds (IE
	// 154 and 155, NTP format).
	TimesMicroseconds
	// TimesNanoseconds: flowStartNanoseconds and flowEndNanoseconds (IE 156
	// and 157, NTP format).
	TimesNanoseconds
	// TimesDeltaMicroseconds: flowStartDeltaMicroseconds and
	// flowEndDeltaMicroseconds (IE 158 and 159), relative to the export time.
	TimesDeltaMicroseconds
	// TimesNone: no time fields.
	TimesNone
)

// FlowFields returns the fields of a flow template for version 9 or 10 and
// the family fam: source and destination addresses, ports, protocol, TCP
// flags, bytes (IE 1) and packets (IE 2) (4 bytes each in v9, 8 in IPFIX),
// the time fields times selects, then extra (for instance
// Field{ID: IESamplerID, Len: 1} or Field{ID: IEFragmentFlags, Len: 1}).
func FlowFields(version uint16, fam Family, times Times, extra ...Field) []Field {
	counter := uint16(8)
	if version == 9 {
		counter = 4
	}
	fs := make([]Field, 0, 10+len(extra))
	if fam == IPv6 {
		fs = append(fs, Field{ID: IESourceIPv6Address, Len: 16}, Field{ID: IEDestinationIPv6Address, Len: 16})
	} else {
		fs = append(fs, Field{ID: IESourceIPv4Address, Len: 4}, Field{ID: IEDestinationIPv4Address, Len: 4})
	}
	fs = append(fs,
		Field{ID: IESourceTransportPort, Len: 2},
		Field{ID: IEDestinationTransportPort, Len: 2},
		Field{ID: IEProtocolIdentifier, Len: 1},
		Field{ID: IETCPControlBits, Len: 1},
		Field{ID: IEOctetDeltaCount, Len: counter},
		Field{ID: IEPacketDeltaCount, Len: counter},
	)
	if times == TimesDefault {
		times = TimesMilliseconds
		if version == 9 {
			times = TimesSysUpTime
		}
	}
	switch times {
	case TimesSysUpTime:
		fs = append(fs, Field{ID: IEFlowStartSysUpTime, Len: 4}, Field{ID: IEFlowEndSysUpTime, Len: 4})
	case TimesSeconds:
		fs = append(fs, Field{ID: IEFlowStartSeconds, Len: 4}, Field{ID: IEFlowEndSeconds, Len: 4})
	case TimesMilliseconds:
		fs = append(fs, Field{ID: IEFlowStartMilliseconds, Len: 8}, Field{ID: IEFlowEndMilliseconds, Len: 8})
	case TimesMicroseconds:
		fs = append(fs, Field{ID: IEFlowStartMicroseconds, Len: 8}, Field{ID: IEFlowEndMicroseconds, Len: 8})
	case TimesNanoseconds:
		fs = append(fs, Field{ID: IEFlowStartNanoseconds, Len: 8}, Field{ID: IEFlowEndNanoseconds, Len: 8})
	case TimesDeltaMicroseconds:
		fs = append(fs, Field{ID: IEFlowStartDeltaMicroseconds, Len: 4}, Field{ID: IEFlowEndDeltaMicroseconds, Len: 4})
	}
	return append(fs, extra...)
}

// V9SamplerOptions returns a NetFlow v9 options template describing samplers
// (Cisco style): options FLOW_SAMPLER_ID (1 byte), FLOW_SAMPLER_MODE (1 byte)
// and FLOW_SAMPLER_RANDOM_INTERVAL (4 bytes), scoped by the System (4 bytes)
// when systemScope is set, without scope otherwise. Its records come from
// Options SamplerID, SamplerMode and SamplingRate.
func V9SamplerOptions(id uint16, systemScope bool) Template {
	t := Template{ID: id, Options: true, Fields: []Field{
		{ID: IESamplerID, Len: 1},
		{ID: IESamplerMode, Len: 1},
		{ID: IESamplerRandomInterval, Len: 4},
	}}
	if systemScope {
		t.Scopes = []Field{{ID: ScopeSystem, Len: 4}}
	}
	return t
}

// SamplingOptions returns an options template giving the sampling of a whole
// exporter: samplingInterval (IE 34, 4 bytes) and samplingAlgorithm (IE 35,
// 1 byte), scoped by the System (NetFlow v9, 4 bytes) or by
// observationDomainId (IPFIX IE 149, 4 bytes, written with the exporter's
// DomainID). Its records come from Options SamplingRate and SamplerMode.
func SamplingOptions(version, id uint16) Template {
	return Template{ID: id, Options: true, Scopes: []Field{domainScope(version)}, Fields: []Field{
		{ID: IESamplingInterval, Len: 4},
		{ID: IESamplingAlgorithm, Len: 1},
	}}
}

// PSAMPOptions returns an IPFIX options template in the PSAMP style of RFC
// 5477: scope selectorId (IE 302, 8 bytes), options selectorAlgorithm (IE
// 304, 2 bytes), samplingPacketInterval (IE 305, 4 bytes) and
// samplingPacketSpace (IE 306, 4 bytes). Its records come from Options
// SamplerID, SelectorAlgorithm, PacketInterval and PacketSpace (or
// SamplingRate).
func PSAMPOptions(id uint16) Template {
	return Template{ID: id, Scopes: []Field{{ID: IESelectorID, Len: 8}}, Fields: []Field{
		{ID: IESelectorAlgorithm, Len: 2},
		{ID: IESamplingPacketInterval, Len: 4},
		{ID: IESamplingPacketSpace, Len: 4},
	}}
}

// IPFIXSamplerOptions returns an IPFIX options template scoped by samplerId
// (IE 48, 1 byte) with samplerRandomInterval (IE 50, 4 bytes), as exporters
// that carried the v9 sampler options over to IPFIX send. Its records come
// from Options SamplerID and SamplingRate.
func IPFIXSamplerOptions(id uint16) Template {
	return Template{ID: id, Scopes: []Field{{ID: IESamplerID, Len: 1}}, Fields: []Field{
		{ID: IESamplerRandomInterval, Len: 4},
	}}
}

// TimeoutOptions returns an options template giving the flow cache timeouts
// flowActiveTimeout (IE 36) and flowIdleTimeout (IE 37), 2 bytes each in
// seconds, scoped like SamplingOptions. Its records come from Options
// ActiveTimeout and IdleTimeout.
func TimeoutOptions(version, id uint16) Template {
	return Template{ID: id, Options: true, Scopes: []Field{domainScope(version)}, Fields: []Field{
		{ID: IEFlowActiveTimeout, Len: 2},
		{ID: IEFlowIdleTimeout, Len: 2},
	}}
}

// domainScope is the scope field naming the whole exporter: the v9 System
// scope or IPFIX observationDomainId.
func domainScope(version uint16) Field {
	if version == 9 {
		return Field{ID: ScopeSystem, Len: 4}
	}
	return Field{ID: IEObservationDomainID, Len: 4}
}
