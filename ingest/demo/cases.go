package demo

import (
	"net/netip"
	"time"

	"github.com/kapkan-io/kapkan/flow"
)

// CaptureCase is a scenario recorded into testdata/captures/<Name>/.
type CaptureCase struct {
	Name     string
	Scenario Scenario
}

// CaptureCases are the scenarios behind the committed test captures. The
// capture files are regenerated from them with
// `go test ./ingest/demo -run TestCaptures -update`.
var CaptureCases = []CaptureCase{
	{
		Name: "sflow-udp-flood",
		Scenario: Scenario{
			Format: flow.FormatSFlow5, SamplingRate: 1000,
			Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, Hosts: 50, BackgroundPPS: 20_000,
			Attacks: []Attack{{Kind: UDPFlood, Target: netip.MustParseAddr("203.0.113.10"), PPS: 150_000,
				Start: 20 * time.Second, Duration: 20 * time.Second}},
			Duration: 60 * time.Second, Agent: netip.MustParseAddr("192.0.2.1"), Seed: 1,
		},
	},
	{
		Name: "netflow9-dns-amplification",
		Scenario: Scenario{
			Format: flow.FormatNetFlow9, SamplingRate: 512,
			Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, Hosts: 100, BackgroundPPS: 20_000,
			Attacks: []Attack{{Kind: DNSAmp, Target: netip.MustParseAddr("203.0.113.20"), PPS: 100_000,
				Start: 15 * time.Second, Duration: 25 * time.Second}},
			Duration: 50 * time.Second, Agent: netip.MustParseAddr("192.0.2.2"), Seed: 2,
		},
	},
}

// CaptureStart is the capture time of a scenario's start in the test
// captures.
var CaptureStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
