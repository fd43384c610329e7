package bgp

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/kapkan-io/kapkan/flowspec"
)

// TestFlowSpecComponents checks the text GoBGP gives the components built
// from vectors, and that a vector it cannot express is an error.
func TestFlowSpecComponents(t *testing.T) {
	dst := netip.MustParsePrefix("203.0.113.9/32")
	for _, tc := range []struct {
		v    flowspec.Match
		want string
	}{
		{flowspec.Match{}, "[destination: 203.0.113.9/32]"},
		{flowspec.Match{Protocol: "17", DstPorts: []string{"123", "11211"}}, "[destination: 203.0.113.9/32][protocol: ==udp][destination-port: ==123 ==11211]"},
		{flowspec.Match{Protocol: "tcp", TCPFlags: "syn|rst&!ack"}, "[destination: 203.0.113.9/32][protocol: ==tcp][tcp-flags: =S =R&!A]"},
		{flowspec.Match{PacketLength: "<=128"}, "[destination: 203.0.113.9/32][packet-length: <=128]"},
		{flowspec.Match{PacketLength: "60"}, "[destination: 203.0.113.9/32][packet-length: ==60]"},
		{flowspec.Match{Protocol: "icmp", Fragment: "first-fragment"}, "[destination: 203.0.113.9/32][protocol: ==icmp][fragment: =first-fragment]"},
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
	for _, bad := range []flowspec.Match{
		{Protocol: "sctp"}, {SrcPorts: []string{"70000"}}, {DstPorts: []string{"90-80"}}, {TCPFlags: "syn&nope"},
		{PacketLength: ">=x"}, {Fragment: "maybe"},
	} {
		if _, err := FlowSpecComponents(dst, bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
