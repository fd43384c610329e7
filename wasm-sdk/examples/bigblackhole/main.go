//go:build wasip1

// Command bigblackhole is an escalation policy: an attack above a bound
// (5 Gbps unless configured) goes straight to a blackhole, because a
// FlowSpec rule would not save the customer's link anyway; below it, the
// attack's vector is dropped with FlowSpec, or, without a vector, the
// target is rate-limited. A blackhole stays while the attack runs above
// half the bound, so it does not flap. Which hostgroups it serves is said
// by the ladder in the rule file.
//
// Config (all optional):
//
//	config: {blackhole_above_mbps: 5000, ratelimit_mbps: 100}
package main

import (
	"fmt"

	kapkan "github.com/kapkan-io/kapkan/wasm-sdk/go"
)

type config struct {
	BlackholeAboveMbps float64 `json:"blackhole_above_mbps"`
	RateLimitMbps      float64 `json:"ratelimit_mbps"`
}

func init() {
	kapkan.Register(kapkan.Guest{Decide: decide})
}

func decide(in *kapkan.Input) (kapkan.Decision, error) {
	cfg := config{BlackholeAboveMbps: 5000, RateLimitMbps: 100}
	if err := in.DecodeConfig(&cfg); err != nil {
		return kapkan.Decision{}, err
	}
	if cfg.BlackholeAboveMbps <= 0 || cfg.RateLimitMbps <= 0 {
		return kapkan.Decision{}, fmt.Errorf("config: blackhole_above_mbps and ratelimit_mbps must be > 0")
	}
	mbps := in.Attack.Mbps
	switch {
	case mbps > cfg.BlackholeAboveMbps:
		return kapkan.Decision{Action: kapkan.ActionBlackhole,
			Reason: fmt.Sprintf("%.0f Mbps, above %.0f Mbps", mbps, cfg.BlackholeAboveMbps)}, nil
	case in.Current.Action == kapkan.ActionBlackhole && mbps > cfg.BlackholeAboveMbps/2:
		return kapkan.Decision{Action: kapkan.ActionBlackhole,
			Reason: fmt.Sprintf("%.0f Mbps, still above half of %.0f Mbps", mbps, cfg.BlackholeAboveMbps)}, nil
	case in.Verdict.Vector != nil:
		return kapkan.Decision{Action: kapkan.ActionDiscard, Reason: "drop the attack's vector"}, nil
	default:
		return kapkan.Decision{Action: kapkan.ActionRateLimit, RateMbps: cfg.RateLimitMbps,
			Reason: "no vector: rate-limit the target"}, nil
	}
}

func main() {}
