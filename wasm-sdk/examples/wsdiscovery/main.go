//go:build wasip1

// Command wsdiscovery is a classifier for WS-Discovery reflection: large
// SOAP ProbeMatches answers (UDP source port 3702) sent by many exposed
// cameras, printers and Windows hosts to a spoofed victim. The built-in
// rules do not know this vector; this module reads the flow sample, so it
// counts real (sampling-corrected) packets and the reflectors itself.
//
// Config (all optional):
//
//	config: {min_share: 0.6, min_sources: 5, min_size: 200}
package main

import (
	kapkan "github.com/kapkan-io/kapkan/wasm-sdk/go"
)

const wsDiscoveryPort = 3702

type config struct {
	MinShare   float64 `json:"min_share"`
	MinSources int     `json:"min_sources"`
	MinSize    float64 `json:"min_size"`
}

func init() {
	kapkan.Register(kapkan.Guest{Classify: classify, Sample: true})
}

func classify(in *kapkan.Input) (kapkan.Verdict, error) {
	cfg := config{MinShare: 0.6, MinSources: 5, MinSize: 200}
	if err := in.DecodeConfig(&cfg); err != nil {
		return kapkan.Verdict{}, err
	}
	var all, wsd, wsdBytes float64
	reflectors := map[string]bool{}
	for _, r := range in.Sample {
		pkts := float64(r.Packets * max(r.SamplingRate, 1))
		all += pkts
		// Non-first fragments of large answers carry no ports.
		if r.Proto == 17 && (r.SrcPort == wsDiscoveryPort || r.Fragment && r.SrcPort == 0) {
			wsd += pkts
			wsdBytes += float64(r.Bytes * max(r.SamplingRate, 1))
			if r.SrcPort == wsDiscoveryPort {
				reflectors[r.Src] = true
			}
		}
	}
	if all == 0 || wsd/all < cfg.MinShare || len(reflectors) < cfg.MinSources || wsdBytes/wsd < cfg.MinSize {
		return kapkan.Verdict{}, nil
	}
	kapkan.Logf(kapkan.LevelInfo, "ws-discovery reflection on %s: %.0f%% of packets from %d reflectors",
		in.Attack.Target, 100*wsd/all, len(reflectors))
	return kapkan.Verdict{
		Match:  true,
		Labels: []string{"ws-discovery-amplification", "amplification"},
		Vector: &kapkan.Vector{Protocol: "udp", SrcPorts: []string{"3702"}},
	}, nil
}

func main() {}
