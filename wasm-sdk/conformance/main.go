//go:build wasip1

// Command conformance is the guest that tests Kapkan's host against ABI v1
// (../ABI.md): it serves both roles, asks for the flow sample, logs through
// kapkan_v1.log, and checks what the payload promises, failing the call
// when something is off. Its config picks a behaviour, so that the host's
// tests reach every path with one module:
//
//	mode: ""           match, with the label and vector of the config
//	mode: nomatch      no match
//	mode: error        a guest error
//	mode: bad_label    a label that is not kebab-case (bad output)
//	mode: bad_vector   a vector no rule file may hold (bad output)
//	mode: panic        a Go panic (a trap)
//	mode: spin         counts to config.spin before answering (a long loop)
//	mode: sandbox      tries the file system, the network and the environment,
//	                   and labels what it was denied: no-fs, no-net, no-env
//	                   (or escaped-fs, escaped-net, escaped-env); file, dial
//	                   and env name a file to read (and create beside),
//	                   an address to connect to and a variable to read
//	                   (default /etc/passwd, 127.0.0.1:22, none)
//	action, rate_mbps  the decision of decide (default: flowspec-discard)
package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	kapkan "github.com/kapkan-io/kapkan/wasm-sdk/go"
)

type config struct {
	Mode     string         `json:"mode"`
	Label    string         `json:"label"`
	Vector   *kapkan.Vector `json:"vector"`
	Action   *string        `json:"action"`
	RateMbps float64        `json:"rate_mbps"`
	Spin     int            `json:"spin"`
	File     string         `json:"file"`
	Dial     string         `json:"dial"`
	Env      string         `json:"env"`
}

func init() {
	kapkan.Register(kapkan.Guest{Classify: classify, Decide: decide, Sample: true})
}

// check verifies what every payload promises.
func check(in *kapkan.Input, role uint64) error {
	var errs []string
	if in.ABI != kapkan.ABIVersion {
		errs = append(errs, fmt.Sprintf("abi %d", in.ABI))
	}
	if want := kapkan.FeatureClassify | kapkan.FeatureDecide | kapkan.FeatureSample; in.Features != want {
		errs = append(errs, fmt.Sprintf("features %#x, want %#x", in.Features, want))
	}
	if in.Features&role == 0 {
		errs = append(errs, "role bit not granted")
	}
	if in.Module == "" {
		errs = append(errs, "no module name")
	}
	if in.Attack.Target == "" {
		errs = append(errs, "no attack target")
	}
	if len(in.Sample) != in.Attack.Samples {
		errs = append(errs, fmt.Sprintf("sample has %d records, attack.samples says %d", len(in.Sample), in.Attack.Samples))
	}
	for i, r := range in.Sample {
		if r.Packets == 0 || r.SamplingRate == 0 || r.Proto == 0 {
			errs = append(errs, fmt.Sprintf("sample record %d incomplete: %+v", i, r))
			break
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("payload: %s", strings.Join(errs, "; "))
	}
	return nil
}

var spun int

func behave(cfg *config) error {
	switch cfg.Mode {
	case "panic":
		panic("conformance: panic on purpose")
	case "spin":
		for i := 0; i < cfg.Spin; i++ {
			spun += i
		}
	case "error":
		return fmt.Errorf("conformance: error on purpose")
	}
	return nil
}

func classify(in *kapkan.Input) (kapkan.Verdict, error) {
	var cfg config
	if err := in.DecodeConfig(&cfg); err != nil {
		return kapkan.Verdict{}, err
	}
	if err := check(in, kapkan.FeatureClassify); err != nil {
		return kapkan.Verdict{}, err
	}
	if err := behave(&cfg); err != nil {
		return kapkan.Verdict{}, err
	}
	kapkan.Logf(kapkan.LevelInfo, "classify %s for %s: %d records", in.Module, in.Attack.Target, len(in.Sample))
	v := kapkan.Verdict{Match: true, Labels: []string{"conformance"}, Vector: cfg.Vector}
	if cfg.Label != "" {
		v.Labels = append(v.Labels, cfg.Label)
	}
	switch cfg.Mode {
	case "nomatch":
		return kapkan.Verdict{}, nil
	case "sandbox":
		v.Labels = append(v.Labels, sandbox(&cfg)...)
	case "bad_label":
		v.Labels = append(v.Labels, "Not Kebab")
	case "bad_vector":
		v.Vector = &kapkan.Vector{Protocol: "sctp-ish", SrcPorts: []string{"99999"}}
	}
	return v, nil
}

// sandbox reports what the guest could reach outside its memory.
func sandbox(cfg *config) []string {
	file, addr := cfg.File, cfg.Dial
	if file == "" {
		file = "/etc/passwd"
	}
	if addr == "" {
		addr = "127.0.0.1:22"
	}
	var out []string
	_, errFile := os.ReadFile(file)
	_, errDir := os.ReadDir("/")
	_, errCwd := os.ReadDir(".")
	errCreate := os.WriteFile(file+".escaped", []byte("escaped\n"), 0o600)
	if errFile != nil && errDir != nil && errCwd != nil && errCreate != nil {
		out = append(out, "no-fs")
	} else {
		out = append(out, "escaped-fs")
	}
	// Go's wasip1 port keeps a fake in-process network: a UDP "dial" and a
	// listener may succeed without any socket of the host. The UDP datagram
	// is still sent, for a test's listener to count; the label says whether
	// a TCP connection, which needs a peer, was made.
	_ = dial("udp", addr)
	if dial("tcp", addr) != nil {
		out = append(out, "no-net")
	} else {
		out = append(out, "escaped-net")
	}
	if len(os.Environ()) == 0 && (cfg.Env == "" || os.Getenv(cfg.Env) == "") {
		out = append(out, "no-env")
	} else {
		out = append(out, "escaped-env")
	}
	return out
}

// dial connects and sends a byte.
func dial(network, addr string) error {
	c, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte{'x'})
	return err
}

func decide(in *kapkan.Input) (kapkan.Decision, error) {
	var cfg config
	if err := in.DecodeConfig(&cfg); err != nil {
		return kapkan.Decision{}, err
	}
	if err := check(in, kapkan.FeatureDecide); err != nil {
		return kapkan.Decision{}, err
	}
	if err := behave(&cfg); err != nil {
		return kapkan.Decision{}, err
	}
	d := kapkan.Decision{Action: kapkan.ActionDiscard, RateMbps: cfg.RateMbps,
		Reason: fmt.Sprintf("labels %v, current %q for %.0fs", in.Verdict.Labels, in.Current.Action, in.Current.SinceSeconds)}
	if cfg.Action != nil {
		d.Action = *cfg.Action
	}
	return d, nil
}

func main() {}
