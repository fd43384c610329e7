// Package kapkan is the Go side of Kapkan's WASM ABI v1 (../ABI.md) for
// guests: a classifier or escalation policy is one Go function, registered
// in init, and this package does the memory plumbing (kapkan_alloc,
// kapkan_free, the JSON payload and result) behind it.
//
//	package main
//
//	import kapkan "github.com/kapkan-io/kapkan/wasm-sdk/go"
//
//	func init() {
//		kapkan.Register(kapkan.Guest{Classify: func(in *kapkan.Input) (kapkan.Verdict, error) {
//			if in.Attack.UDPShare > 0.9 && in.Attack.SrcPortShare(3702) > 0.6 {
//				return kapkan.Verdict{Match: true, Labels: []string{"ws-discovery-amplification"}}, nil
//			}
//			return kapkan.Verdict{}, nil
//		}})
//	}
//
//	func main() {}
//
// Build it with stock Go:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o my.wasm .
//
// The types and the dispatch are plain Go and build (and are tested) on any
// platform; only the exports need wasip1.
package kapkan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// ABIVersion is the ABI this package implements.
const ABIVersion = 1

// Feature bits (kapkan_features).
const (
	FeatureClassify uint64 = 1 << 0
	FeatureDecide   uint64 = 1 << 1
	FeatureSample   uint64 = 1 << 2
)

// Actions a policy may decide.
const (
	ActionNone      = ""
	ActionRateLimit = "flowspec-ratelimit"
	ActionDiscard   = "flowspec-discard"
	ActionBlackhole = "blackhole"
)

// Guest is what a module does. Register it once, in init.
type Guest struct {
	// Classify, when set, makes the module a classifier.
	Classify func(in *Input) (Verdict, error)
	// Decide, when set, makes the module an escalation policy.
	Decide func(in *Input) (Decision, error)
	// Sample asks for the attack's flow sample in Input.Sample (it costs a
	// copy of up to 2 000 records per call; leave it off when the features
	// are enough).
	Sample bool
}

var guest Guest

// Register sets what the module does. Call it from init: Kapkan asks for
// the module's features right after it is instantiated.
func Register(g Guest) { guest = g }

// Features returns the feature bits of the registered guest.
func Features() uint64 {
	var f uint64
	if guest.Classify != nil {
		f |= FeatureClassify
	}
	if guest.Decide != nil {
		f |= FeatureDecide
	}
	if guest.Sample {
		f |= FeatureSample
	}
	return f
}

// Input is the payload of a call.
type Input struct {
	ABI      int    `json:"abi"`
	Features uint64 `json:"features"`
	// Module is the name of the rule or ladder the module runs under.
	Module string `json:"module"`
	// Config is the rule's config: mapping; decode it with Input.Decode.
	Config json.RawMessage `json:"config"`
	Attack Attack          `json:"attack"`
	// Sample is the flow sample, when Guest.Sample asked for it.
	Sample []Record `json:"sample"`
	// Verdict and Current are set for Decide.
	Verdict Verdict `json:"verdict"`
	Current Current `json:"current"`
}

// DecodeConfig decodes the rule's config: mapping into v.
func (in *Input) DecodeConfig(v any) error {
	if len(in.Config) == 0 {
		return nil
	}
	return json.Unmarshal(in.Config, v)
}

// PortShare is a port and the share of the packets that use it.
type PortShare struct {
	Port  int     `json:"port"`
	Share float64 `json:"share"`
}

// Attack holds the features of an attack: the same that expr rules see.
type Attack struct {
	Target    string `json:"target"`
	Direction string `json:"direction"`
	Hostgroup string `json:"hostgroup"`
	Scope     string `json:"scope"`
	Trigger   string `json:"trigger"`
	IPv6      bool   `json:"ipv6"`

	PPS  float64 `json:"pps"`
	Mbps float64 `json:"mbps"`
	FPS  float64 `json:"fps"`
	// Threshold is the threshold of the metric that tripped (Mbps for a
	// byte metric); OverThreshold is that metric's rate now divided by it.
	Threshold     float64 `json:"threshold"`
	OverThreshold float64 `json:"over_threshold"`
	Samples       int     `json:"samples"`

	TCPShare      float64 `json:"tcp_share"`
	UDPShare      float64 `json:"udp_share"`
	ICMPShare     float64 `json:"icmp_share"`
	OtherShare    float64 `json:"other_share"`
	TCPByteShare  float64 `json:"tcp_byte_share"`
	UDPByteShare  float64 `json:"udp_byte_share"`
	ICMPByteShare float64 `json:"icmp_byte_share"`
	FragmentShare float64 `json:"fragment_share"`

	SYNOnlyShare float64 `json:"syn_only_share"`
	SYNACKShare  float64 `json:"synack_share"`
	ACKOnlyShare float64 `json:"ack_only_share"`
	RSTShare     float64 `json:"rst_share"`
	FINShare     float64 `json:"fin_share"`
	PSHShare     float64 `json:"psh_share"`

	MeanPacketSize float64 `json:"mean_packet_size"`
	P10PacketSize  float64 `json:"p10_packet_size"`
	P50PacketSize  float64 `json:"p50_packet_size"`
	P90PacketSize  float64 `json:"p90_packet_size"`

	TopSrcPorts []PortShare `json:"top_src_ports"`
	TopDstPorts []PortShare `json:"top_dst_ports"`

	Sources      int `json:"sources"`
	Destinations int `json:"destinations"`
}

// SrcPortShare is the share of the packets from port among the top source
// ports (0 when it is not among them).
func (a *Attack) SrcPortShare(port int) float64 { return shareOf(a.TopSrcPorts, port) }

// DstPortShare is the same for destination ports.
func (a *Attack) DstPortShare(port int) float64 { return shareOf(a.TopDstPorts, port) }

func shareOf(top []PortShare, port int) float64 {
	for _, p := range top {
		if p.Port == port {
			return p.Share
		}
	}
	return 0
}

// Record is one flow record of the sample, as exported (multiply Bytes and
// Packets by SamplingRate for real traffic).
type Record struct {
	Src          string `json:"src,omitempty"`
	Dst          string `json:"dst,omitempty"`
	SrcPort      int    `json:"sp"`
	DstPort      int    `json:"dp"`
	Proto        int    `json:"proto"`
	TCPFlags     int    `json:"flags,omitempty"`
	Fragment     bool   `json:"frag,omitempty"`
	Bytes        uint64 `json:"bytes"`
	Packets      uint64 `json:"pkts"`
	SamplingRate uint64 `json:"rate"`
}

// Vector is the traffic to act on, as in rule files.
type Vector struct {
	Protocol     string   `json:"protocol,omitempty"`
	SrcPorts     []string `json:"src_ports,omitempty"`
	DstPorts     []string `json:"dst_ports,omitempty"`
	PacketLength string   `json:"packet_length,omitempty"`
	TCPFlags     string   `json:"tcp_flags,omitempty"`
	Fragment     string   `json:"fragment,omitempty"`
}

// Verdict is what a classifier says.
type Verdict struct {
	Match  bool     `json:"match"`
	Labels []string `json:"labels,omitempty"`
	Vector *Vector  `json:"vector,omitempty"`
}

// Current is the action in force, for a policy.
type Current struct {
	Action       string  `json:"action"`
	RateMbps     float64 `json:"rate_mbps"`
	SinceSeconds float64 `json:"since_seconds"`
}

// Decision is what a policy says.
type Decision struct {
	Action   string  `json:"action"`
	RateMbps float64 `json:"rate_mbps,omitempty"`
	Reason   string  `json:"reason,omitempty"`
}

// Roles of a call.
const (
	roleClassify = iota
	roleDecide
)

var errNoHandler = errors.New("this module registered no handler for the call")

// dispatch decodes a payload, runs the registered function and encodes its
// result; a failure becomes an error document.
func dispatch(role int, payload []byte) []byte {
	var in Input
	if err := decodeInput(payload, &in); err != nil {
		return errorDoc(fmt.Errorf("decode payload: %w", err))
	}
	var (
		out any
		err error
	)
	switch {
	case role == roleClassify && guest.Classify != nil:
		out, err = guest.Classify(&in)
	case role == roleDecide && guest.Decide != nil:
		out, err = guest.Decide(&in)
	default:
		err = errNoHandler
	}
	if err != nil {
		return errorDoc(err)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return errorDoc(err)
	}
	return b
}

func errorDoc(err error) []byte {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{err.Error()})
	return b
}

// Log levels of Log.
const (
	LevelDebug = 0
	LevelInfo  = 1
	LevelWarn  = 2
	LevelError = 3
)

// Logf writes a line to Kapkan's log under the module's name (at most 16
// lines per call are kept).
func Logf(level int, format string, a ...any) {
	hostLog(int32(level), fmt.Sprintf(format, a...))
}

// sampleKey starts the sample, which the ABI puts last in the payload.
var sampleKey = []byte(`,"sample":`)

// decodeInput decodes a payload. The sample, up to thousands of records,
// is cut off and read by a small parser for its fixed shape: encoding/json
// costs about 0.1 ms per record under WebAssembly, which would make a
// call with a full sample take a fifth of a second.
func decodeInput(payload []byte, in *Input) error {
	head, sample := payload, []byte(nil)
	if i := bytes.LastIndex(payload, sampleKey); i >= 0 {
		tail := bytes.TrimSpace(payload[i+len(sampleKey):])
		if len(tail) > 0 && tail[len(tail)-1] == '}' {
			head = append(payload[:i:i], '}')
			sample = tail[:len(tail)-1]
		}
	}
	if err := json.Unmarshal(head, in); err != nil {
		return err
	}
	if sample == nil {
		return nil
	}
	recs, err := parseSample(sample)
	if err != nil {
		return fmt.Errorf("sample: %w", err)
	}
	in.Sample = recs
	return nil
}

// parser reads the sample's JSON: an array of flat objects whose values are
// strings, unsigned numbers or booleans.
type parser struct {
	b []byte
	i int
}

func (p *parser) ws() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\n' || p.b[p.i] == '\t' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *parser) expect(c byte) error {
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != c {
		return fmt.Errorf("offset %d: want %q", p.i, c)
	}
	p.i++
	return nil
}

// peek returns the next non-space byte (0 at the end).
func (p *parser) peek() byte {
	p.ws()
	if p.i >= len(p.b) {
		return 0
	}
	return p.b[p.i]
}

// str reads a string without escapes (addresses and keys have none); an
// escaped string is decoded by encoding/json.
func (p *parser) str() (string, error) {
	if err := p.expect('"'); err != nil {
		return "", err
	}
	start := p.i
	for p.i < len(p.b) && p.b[p.i] != '"' {
		if p.b[p.i] == '\\' {
			p.i = start - 1
			return p.escaped()
		}
		p.i++
	}
	if p.i >= len(p.b) {
		return "", fmt.Errorf("offset %d: unterminated string", start)
	}
	p.i++
	return string(p.b[start : p.i-1]), nil
}

// key reads an object key in place (keys of the sample have no escapes).
func (p *parser) key() ([]byte, error) {
	if err := p.expect('"'); err != nil {
		return nil, err
	}
	start := p.i
	for p.i < len(p.b) && p.b[p.i] != '"' {
		p.i++
	}
	if p.i >= len(p.b) {
		return nil, fmt.Errorf("offset %d: unterminated key", start)
	}
	p.i++
	return p.b[start : p.i-1], nil
}

func (p *parser) escaped() (string, error) {
	dec := json.NewDecoder(bytes.NewReader(p.b[p.i:]))
	var s string
	if err := dec.Decode(&s); err != nil {
		return "", fmt.Errorf("offset %d: %v", p.i, err)
	}
	p.i += int(dec.InputOffset())
	return s, nil
}

func (p *parser) uint() (uint64, error) {
	p.ws()
	start := p.i
	var v uint64
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		d := uint64(p.b[p.i] - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, fmt.Errorf("offset %d: number out of range", start)
		}
		v = v*10 + d
		p.i++
	}
	if p.i == start || p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return 0, fmt.Errorf("offset %d: want an unsigned integer", start)
	}
	return v, nil
}

func (p *parser) boolean() (bool, error) {
	p.ws()
	switch {
	case bytes.HasPrefix(p.b[p.i:], []byte("true")):
		p.i += 4
		return true, nil
	case bytes.HasPrefix(p.b[p.i:], []byte("false")):
		p.i += 5
		return false, nil
	}
	return false, fmt.Errorf("offset %d: want true or false", p.i)
}

// skip reads past any JSON value (for fields a later minor version adds).
func (p *parser) skip() error {
	p.ws()
	dec := json.NewDecoder(bytes.NewReader(p.b[p.i:]))
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("offset %d: %v", p.i, err)
	}
	p.i += int(dec.InputOffset())
	return nil
}

func parseSample(b []byte) ([]Record, error) {
	p := &parser{b: b}
	if err := p.expect('['); err != nil {
		return nil, err
	}
	recs := make([]Record, 0, bytes.Count(b, []byte{'{'}))
	if p.peek() == ']' {
		p.i++
		return recs, nil
	}
	for {
		var r Record
		if err := p.record(&r); err != nil {
			return nil, err
		}
		recs = append(recs, r)
		switch p.peek() {
		case ',':
			p.i++
		case ']':
			p.i++
			return recs, nil
		default:
			return nil, fmt.Errorf("offset %d: want , or ]", p.i)
		}
	}
}

func (p *parser) record(r *Record) error {
	if err := p.expect('{'); err != nil {
		return err
	}
	if p.peek() == '}' {
		p.i++
		return nil
	}
	for {
		key, err := p.key()
		if err != nil {
			return err
		}
		if err := p.expect(':'); err != nil {
			return err
		}
		var n uint64
		switch string(key) { // no allocation: compared in place
		case "src":
			r.Src, err = p.str()
		case "dst":
			r.Dst, err = p.str()
		case "frag":
			r.Fragment, err = p.boolean()
		case "sp", "dp", "proto", "flags", "bytes", "pkts", "rate":
			n, err = p.uint()
			switch string(key) {
			case "sp":
				r.SrcPort = int(n)
			case "dp":
				r.DstPort = int(n)
			case "proto":
				r.Proto = int(n)
			case "flags":
				r.TCPFlags = int(n)
			case "bytes":
				r.Bytes = n
			case "pkts":
				r.Packets = n
			case "rate":
				r.SamplingRate = n
			}
		default:
			err = p.skip()
		}
		if err != nil {
			return err
		}
		switch p.peek() {
		case ',':
			p.i++
		case '}':
			p.i++
			return nil
		default:
			return fmt.Errorf("offset %d: want , or }", p.i)
		}
	}
}
