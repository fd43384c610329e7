package rules

// Func documents one function a rule may call. Every function rules can
// call is listed here, with its signature; Env binds them per attack.
type Func struct {
	Name, Signature, Doc string
}

// Funcs is the one registry of callable functions.
var Funcs = []Func{
	{"src_port_share", "src_port_share(port int) float", "share of the TCP/UDP packets with this source port"},
	{"dst_port_share", "dst_port_share(port int) float", "share of the TCP/UDP packets with this destination port"},
	{"src_port_range_share", "src_port_range_share(lo int, hi int) float", "share of the TCP/UDP packets with a source port in [lo, hi]"},
	{"dst_port_range_share", "dst_port_range_share(lo int, hi int) float", "share of the TCP/UDP packets with a destination port in [lo, hi]"},
	{"protocol_share", "protocol_share(proto int) float", "share of the packets of this IP protocol number (IPv6: the next header a record carries)"},
}

// Env is the typed environment expr rules are compiled against and run
// with: the features of one attack, and the registry's functions bound to
// them. A rule reads `udp_share > 0.9 && src_port_share(53) > 0.5`.
type Env struct {
	Features

	SrcPortShare      func(port int) float64   `expr:"src_port_share"`
	DstPortShare      func(port int) float64   `expr:"dst_port_share"`
	SrcPortRangeShare func(lo, hi int) float64 `expr:"src_port_range_share"`
	DstPortRangeShare func(lo, hi int) float64 `expr:"dst_port_range_share"`
	ProtoShare        func(proto int) float64  `expr:"protocol_share"`
}

// NewEnv binds the registry's functions to the features of one attack.
func NewEnv(f *Features) *Env {
	share := func(m map[uint16]float64, lo, hi int) float64 {
		s := 0.0
		for p, v := range m {
			if int(p) >= lo && int(p) <= hi {
				s += v
			}
		}
		return s
	}
	return &Env{
		Features:          *f,
		SrcPortShare:      func(p int) float64 { return f.srcPorts[uint16(p)] },
		DstPortShare:      func(p int) float64 { return f.dstPorts[uint16(p)] },
		SrcPortRangeShare: func(lo, hi int) float64 { return share(f.srcPorts, lo, hi) },
		DstPortRangeShare: func(lo, hi int) float64 { return share(f.dstPorts, lo, hi) },
		ProtoShare:        f.ProtocolShare,
	}
}
