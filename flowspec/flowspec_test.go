package flowspec

import (
	"encoding/json"
	"testing"
)

func TestActionNames(t *testing.T) {
	for _, a := range append([]Action{None}, Actions...) {
		got, err := ParseAction(a.String())
		if err != nil || got != a {
			t.Errorf("ParseAction(%q) = %v, %v; want %v", a.String(), got, err, a)
		}
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		var back Action
		if err := json.Unmarshal(b, &back); err != nil || back != a {
			t.Errorf("JSON %s → %v, %v; want %v", b, back, err, a)
		}
	}
	if _, err := ParseAction("nuke"); err == nil {
		t.Error(`ParseAction("nuke") gave no error`)
	}
	var a Action
	if err := json.Unmarshal([]byte(`"drop"`), &a); err == nil {
		t.Error(`"drop" unmarshalled without an error`)
	}
	if !Discard.IsFlowSpec() || !RateLimit.IsFlowSpec() || Blackhole.IsFlowSpec() || None.IsFlowSpec() {
		t.Error("IsFlowSpec is wrong")
	}
}

func TestMatchString(t *testing.T) {
	for _, tc := range []struct {
		m    Match
		want string
	}{
		{Match{}, "any"},
		{Match{Protocol: "udp", SrcPorts: []string{"53"}, PacketLength: ">=512"}, "proto udp src-port 53 len >=512"},
		{Match{Protocol: "tcp", DstPorts: []string{"80", "443"}, TCPFlags: "syn&!ack", Fragment: "is-fragment"},
			"proto tcp dst-port 80,443 tcp-flags syn&!ack fragment is-fragment"},
	} {
		if got := tc.m.String(); got != tc.want {
			t.Errorf("%#v: %q, want %q", tc.m, got, tc.want)
		}
		if tc.m.IsZero() != (tc.want == "any") {
			t.Errorf("%#v: IsZero wrong", tc.m)
		}
	}
}
