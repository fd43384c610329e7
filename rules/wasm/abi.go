package wasm

import (
	"encoding/json"
	"net/netip"
	"strconv"

	"github.com/kapkan-io/kapkan/flow"
)

// ABI v1 (wasm-sdk/ABI.md): names and feature bits.
const (
	ABIVersion     = 1
	HostModuleName = "kapkan_v1"
	wasiModuleName = "wasi_snapshot_preview1"

	FeatureClassify uint64 = 1 << 0
	FeatureDecide   uint64 = 1 << 1
	FeatureSample   uint64 = 1 << 2

	// hostFeatures are the bits this host knows.
	hostFeatures = FeatureClassify | FeatureDecide | FeatureSample

	maxResult = 1 << 20 // the largest result document read back
)

// Role is what a module is loaded as.
type Role int

// Roles.
const (
	RoleClassify Role = iota
	RoleDecide
)

// String returns classify or decide.
func (r Role) String() string {
	if r == RoleDecide {
		return "decide"
	}
	return "classify"
}

func (r Role) export() string { return "kapkan_" + r.String() }

func (r Role) feature() uint64 {
	if r == RoleDecide {
		return FeatureDecide
	}
	return FeatureClassify
}

// Payload is what a call passes to the guest, before it is encoded. Build
// one per attack and pass it to every module: the sample is encoded once.
type Payload struct {
	// Attack is the attack's features, already JSON (rules.Features).
	Attack json.RawMessage
	// Sample is the flow sample, sent to guests that ask for it.
	Sample []flow.Record
	// Verdict is the attack's labels and vector, already JSON (decide).
	Verdict json.RawMessage
	// Current is the action in force (decide).
	Current *Current

	sample []byte // encoded Sample
}

// Current is the action in force, for a policy.
type Current struct {
	Action       string  `json:"action"`
	RateMbps     float64 `json:"rate_mbps"`
	SinceSeconds float64 `json:"since_seconds"`
}

// ClassifyResult is a classifier's answer.
type ClassifyResult struct {
	Match  bool            `json:"match"`
	Labels []string        `json:"labels"`
	Vector json.RawMessage `json:"vector"`
	Error  string          `json:"error"`
}

// DecideResult is a policy's answer.
type DecideResult struct {
	Action   string  `json:"action"`
	RateMbps float64 `json:"rate_mbps"`
	Reason   string  `json:"reason"`
	Error    string  `json:"error"`
}

// encode writes the payload document for a module with the granted
// features, its name and config.
func (p *Payload) encode(dst []byte, features uint64, module string, config json.RawMessage) []byte {
	dst = append(dst, `{"abi":1,"features":`...)
	dst = strconv.AppendUint(dst, features, 10)
	dst = append(dst, `,"module":`...)
	name, _ := json.Marshal(module)
	dst = append(dst, name...)
	dst = append(dst, `,"config":`...)
	dst = appendRaw(dst, config, "{}")
	dst = append(dst, `,"attack":`...)
	dst = appendRaw(dst, p.Attack, "{}")
	if p.Verdict != nil {
		dst = append(dst, `,"verdict":`...)
		dst = append(dst, p.Verdict...)
	}
	if p.Current != nil {
		c, _ := json.Marshal(p.Current)
		dst = append(dst, `,"current":`...)
		dst = append(dst, c...)
	}
	// The sample comes last (the ABI promises it), so that a guest can cut
	// it off and parse it without a general JSON decoder.
	if features&FeatureSample != 0 {
		if p.sample == nil {
			p.sample = AppendSample(make([]byte, 0, 96*len(p.Sample)+2), p.Sample)
		}
		dst = append(dst, `,"sample":`...)
		dst = append(dst, p.sample...)
	}
	return append(dst, '}')
}

func appendRaw(dst []byte, raw json.RawMessage, empty string) []byte {
	if len(raw) == 0 {
		return append(dst, empty...)
	}
	return append(dst, raw...)
}

// AppendSample appends the ABI's JSON form of flow records: an array of
// {"src","dst","sp","dp","proto","flags","frag","bytes","pkts","rate"}.
func AppendSample(dst []byte, recs []flow.Record) []byte {
	dst = append(dst, '[')
	for i := range recs {
		r := &recs[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '{')
		if a := r.SrcAddr(); a.IsValid() {
			dst = appendAddr(dst, `"src":`, a)
			dst = append(dst, ',')
		}
		if a := r.DstAddr(); a.IsValid() {
			dst = appendAddr(dst, `"dst":`, a)
			dst = append(dst, ',')
		}
		dst = append(dst, `"sp":`...)
		dst = strconv.AppendUint(dst, uint64(r.SrcPort), 10)
		dst = append(dst, `,"dp":`...)
		dst = strconv.AppendUint(dst, uint64(r.DstPort), 10)
		dst = append(dst, `,"proto":`...)
		dst = strconv.AppendUint(dst, uint64(r.Proto), 10)
		if r.TCPFlags != 0 {
			dst = append(dst, `,"flags":`...)
			dst = strconv.AppendUint(dst, uint64(r.TCPFlags), 10)
		}
		if r.IsFragment() {
			dst = append(dst, `,"frag":true`...)
		}
		dst = append(dst, `,"bytes":`...)
		dst = strconv.AppendUint(dst, r.Bytes, 10)
		dst = append(dst, `,"pkts":`...)
		dst = strconv.AppendUint(dst, r.Packets, 10)
		dst = append(dst, `,"rate":`...)
		dst = strconv.AppendUint(dst, uint64(r.SamplingRate), 10)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

func appendAddr(dst []byte, key string, a netip.Addr) []byte {
	dst = append(dst, key...)
	dst = append(dst, '"')
	dst = a.AppendTo(dst)
	return append(dst, '"')
}
