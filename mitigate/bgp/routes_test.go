package bgp

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/kapkan-io/kapkan/rules"
)

// TestFlowSpecComponents checks the text GoBGP gives the components built
// from vectors, and that a vector it cannot express is an error.
func TestFlowSpecComponents(t *testing.T) {
	dst := netip.MustParsePrefix("203.0.113.9/32")
	for _, tc := range []struct {
		v    rules.Vector
		want string
	}{
		{rules.Vector{}, "[destination: 203.0.113.9/32]"},
		{rules.Vector{Protocol: "17", DstPorts: []string{"123", "11211"}}, "[destination: 203.0.113.9/32][protocol: ==udp][destination-port: ==123 ==11211]"},
		{rules.Vector{Protocol: "tcp", TCPFlags: "syn|rst&!ack"}, "[destination: 203.0.113.9/32][protocol: ==tcp][tcp-flags: =S =R&!A]"},
		{rules.Vector{PacketLength: "<=128"}, "[destination: 203.0.113.9/32][packet-length: <=128]"},
		{rules.Vector{PacketLength: "60"}, "[destination: 203.0.113.9/32][packet-length: ==60]"},
		{rules.Vector{Protocol: "icmp", Fragment: "first-fragment"}, "[destination: 203.0.113.9/32][protocol: ==icmp][fragment: =first-fragment]"},
	} {
		comps, err := FlowSpecComponents(dst, tc.v)
		if err != nil {
			t.Fatalf("%+v: %v", tc.v, err)
		}
		var b strings.Builder
		for _, c := range comps {
			b.WriteString(c.String())
		}
		if b.String() != tc.want {
			t.Errorf("%+v:\n got %s\nwant %s", tc.v, b.String(), tc.want)
		}
	}
	for _, bad := range []rules.Vector{
		{Protocol: "sctp"}, {SrcPorts: []string{"70000"}}, {DstPorts: []string{"90-80"}}, {TCPFlags: "syn&nope"},
		{PacketLength: ">=x"}, {Fragment: "maybe"},
	} {
		if _, err := FlowSpecComponents(dst, bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
