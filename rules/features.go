// Package rules owns the rule runtime: the features classifiers see, rule
// files (expr classifiers and escalation ladders) with positioned errors,
// the compiled, immutable rule Set, and classification.
package rules

import (
	"math"
	"net/netip"
	"slices"
	"sort"

	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/flow"
)

// PortShare is a port and the share of the sample's packets that use it.
type PortShare struct {
	Port  int     `expr:"port" json:"port"`
	Share float64 `expr:"share" json:"share"`
}

// Features are what classifiers see of an attack: computed once per attack
// (per update) from its flow sample and rates. Shares are of
// sampling-corrected packets unless named for bytes, from 0 to 1.
type Features struct {
	Target    string `expr:"target" json:"target"`
	Direction string `expr:"direction" json:"direction"`
	Hostgroup string `expr:"hostgroup" json:"hostgroup"`
	Scope     string `expr:"scope" json:"scope"`
	Trigger   string `expr:"trigger" json:"trigger"`
	IPv6      bool   `expr:"ipv6" json:"ipv6"`

	// Rates of the window when the attack was detected.
	PPS  float64 `expr:"pps" json:"pps"`
	Mbps float64 `expr:"mbps" json:"mbps"`
	FPS  float64 `expr:"fps" json:"fps"`

	// Threshold is the threshold of the metric that tripped (Mbps for a
	// byte metric), and OverThreshold that metric's rate now divided by it:
	// 2 is twice the threshold.
	Threshold     float64 `expr:"threshold" json:"threshold"`
	OverThreshold float64 `expr:"over_threshold" json:"over_threshold"`

	// Samples is the number of records in the flow sample.
	Samples int `expr:"samples" json:"samples"`

	TCPShare      float64 `expr:"tcp_share" json:"tcp_share"`
	UDPShare      float64 `expr:"udp_share" json:"udp_share"`
	ICMPShare     float64 `expr:"icmp_share" json:"icmp_share"`
	OtherShare    float64 `expr:"other_share" json:"other_share"`
	TCPByteShare  float64 `expr:"tcp_byte_share" json:"tcp_byte_share"`
	UDPByteShare  float64 `expr:"udp_byte_share" json:"udp_byte_share"`
	ICMPByteShare float64 `expr:"icmp_byte_share" json:"icmp_byte_share"`
	FragmentShare float64 `expr:"fragment_share" json:"fragment_share"`

	// TCP flag mix, as shares of the TCP packets.
	SYNOnlyShare float64 `expr:"syn_only_share" json:"syn_only_share"` // SYN without ACK
	SYNACKShare  float64 `expr:"synack_share" json:"synack_share"`
	ACKOnlyShare float64 `expr:"ack_only_share" json:"ack_only_share"` // ACK, no SYN/RST/FIN/PSH
	RSTShare     float64 `expr:"rst_share" json:"rst_share"`
	FINShare     float64 `expr:"fin_share" json:"fin_share"`
	PSHShare     float64 `expr:"psh_share" json:"psh_share"`

	// Packet sizes in bytes (mean and percentiles over packets).
	MeanPacketSize float64 `expr:"mean_packet_size" json:"mean_packet_size"`
	P10PacketSize  float64 `expr:"p10_packet_size" json:"p10_packet_size"`
	P50PacketSize  float64 `expr:"p50_packet_size" json:"p50_packet_size"`
	P90PacketSize  float64 `expr:"p90_packet_size" json:"p90_packet_size"`

	// The most used ports, most used first (at most 5 each).
	TopSrcPorts []PortShare `expr:"top_src_ports" json:"top_src_ports"`
	TopDstPorts []PortShare `expr:"top_dst_ports" json:"top_dst_ports"`

	// Distinct addresses in the sample.
	Sources      int `expr:"sources" json:"sources"`
	Destinations int `expr:"destinations" json:"destinations"`

	srcPorts, dstPorts map[uint16]float64 // full distributions, for the functions
	protos             *[256]float64      // share of packets by IP protocol number, for the functions
	sample             []flow.Record      // the flow sample, for WASM modules that ask for it
}

const topPorts = 5

// Compute derives the features of an attack from its candidate.
func Compute(c *engine.Candidate) Features {
	f := Features{
		Target: c.Target.String(), Direction: c.Direction.String(), Hostgroup: c.Hostgroup,
		Scope: c.Scope.String(), Trigger: c.Trigger.String(), IPv6: c.Target.Addr().Is6(),
		Samples: len(c.Sample),
	}
	f.SetRates(c.Trigger, c.Threshold, c.Rates)
	// Rates at detection can be below the trip value (the fast trip uses the
	// newest second); report the larger.
	if c.Trigger == engine.MetricPPS && float64(c.Rate) > f.PPS {
		f.PPS = float64(c.Rate)
	}
	if c.Trigger == engine.MetricBPS && engine.Mbps(c.Rate) > f.Mbps {
		f.Mbps = engine.Mbps(c.Rate)
	}
	f.Threshold = metricValue(c.Trigger, c.Threshold)
	f.SetRates(c.Trigger, c.Threshold, c.Rates)
	fill(&f, c.Sample)
	f.sample = c.Sample
	return f
}

// SetRates brings the live rates of a running attack into f: pps, mbps,
// fps and over_threshold (for the metric that tripped, with its threshold).
func (f *Features) SetRates(trigger engine.Metric, threshold uint64, r engine.Rates) {
	f.PPS = float64(r[engine.MetricPPS])
	f.Mbps = engine.Mbps(r[engine.MetricBPS])
	f.FPS = float64(r[engine.MetricFPS])
	if threshold > 0 {
		f.OverThreshold = float64(r[trigger]) / float64(threshold)
	}
}

// metricValue is a rate in the unit thresholds use (Mbps for bytes).
func metricValue(m engine.Metric, v uint64) float64 {
	if m.IsBytes() {
		return engine.Mbps(v)
	}
	return float64(v)
}

type sizeWeight struct {
	size, weight float64
}

func fill(f *Features, sample []flow.Record) {
	var pkts, bytes, tcp, udp, icmp, other, tcpB, udpB, icmpB, frag float64
	var synOnly, synAck, ackOnly, rst, fin, psh float64
	f.srcPorts, f.dstPorts = map[uint16]float64{}, map[uint16]float64{}
	f.protos = new([256]float64)
	srcs, dsts := map[netip.Addr]struct{}{}, map[netip.Addr]struct{}{}
	sizes := make([]sizeWeight, 0, len(sample))
	for i := range sample {
		r := &sample[i]
		rate := float64(max(r.SamplingRate, 1))
		p, b := float64(r.Packets)*rate, float64(r.Bytes)*rate
		if p == 0 {
			continue
		}
		pkts += p
		bytes += b
		f.protos[r.Proto] += p
		switch r.Proto {
		case 6:
			tcp += p
			tcpB += b
			fl := r.TCPFlags
			switch {
			case fl&0x02 != 0 && fl&0x10 == 0:
				synOnly += p
			case fl&0x12 == 0x12:
				synAck += p
			case fl&0x10 != 0 && fl&0x0d == 0: // ACK without FIN, RST, PSH (or SYN)
				ackOnly += p
			}
			if fl&0x04 != 0 {
				rst += p
			}
			if fl&0x01 != 0 {
				fin += p
			}
			if fl&0x08 != 0 {
				psh += p
			}
		case 17:
			udp += p
			udpB += b
		case 1, 58:
			icmp += p
			icmpB += b
		default:
			other += p
		}
		if r.IsFragment() {
			frag += p
		}
		if r.Proto == 6 || r.Proto == 17 {
			f.srcPorts[r.SrcPort] += p
			f.dstPorts[r.DstPort] += p
		}
		if a := r.SrcAddr(); a.IsValid() {
			srcs[a] = struct{}{}
		}
		if a := r.DstAddr(); a.IsValid() {
			dsts[a] = struct{}{}
		}
		sizes = append(sizes, sizeWeight{size: float64(r.Bytes) / float64(r.Packets), weight: p})
	}
	f.Sources, f.Destinations = len(srcs), len(dsts)
	if pkts == 0 {
		return
	}
	f.TCPShare, f.UDPShare, f.ICMPShare, f.OtherShare = tcp/pkts, udp/pkts, icmp/pkts, other/pkts
	f.FragmentShare = frag / pkts
	if bytes > 0 {
		f.TCPByteShare, f.UDPByteShare, f.ICMPByteShare = tcpB/bytes, udpB/bytes, icmpB/bytes
	}
	if tcp > 0 {
		f.SYNOnlyShare, f.SYNACKShare, f.ACKOnlyShare = synOnly/tcp, synAck/tcp, ackOnly/tcp
		f.RSTShare, f.FINShare, f.PSHShare = rst/tcp, fin/tcp, psh/tcp
	}
	f.MeanPacketSize = bytes / pkts
	sort.Slice(sizes, func(i, j int) bool { return sizes[i].size < sizes[j].size })
	f.P10PacketSize, f.P50PacketSize, f.P90PacketSize = quantile(sizes, pkts, 0.1), quantile(sizes, pkts, 0.5), quantile(sizes, pkts, 0.9)
	f.TopSrcPorts = top(f.srcPorts, pkts)
	f.TopDstPorts = top(f.dstPorts, pkts)
	// Port maps hold shares from here on.
	for p, v := range f.srcPorts {
		f.srcPorts[p] = v / pkts
	}
	for p, v := range f.dstPorts {
		f.dstPorts[p] = v / pkts
	}
	for p := range f.protos {
		f.protos[p] /= pkts
	}
}

// ProtocolShare is the share of the sample's packets of IP protocol (IPv6
// next header) proto.
func (f *Features) ProtocolShare(proto int) float64 {
	if f.protos == nil || proto < 0 || proto > 255 {
		return 0
	}
	return f.protos[proto]
}

// DominantProtocol is the IP protocol that carries the most of the
// sample's packets, and its share (0, 0 for an empty sample).
func (f *Features) DominantProtocol() (proto uint8, share float64) {
	if f.protos == nil {
		return 0, 0
	}
	for p, s := range f.protos {
		if s > share {
			proto, share = uint8(p), s
		}
	}
	return proto, share
}

func quantile(s []sizeWeight, total, q float64) float64 {
	acc := 0.0
	for _, x := range s {
		acc += x.weight
		if acc >= q*total {
			return math.Round(x.size)
		}
	}
	return 0
}

func top(m map[uint16]float64, total float64) []PortShare {
	out := make([]PortShare, 0, len(m))
	for p, v := range m {
		out = append(out, PortShare{Port: int(p), Share: v / total})
	}
	slices.SortFunc(out, func(a, b PortShare) int {
		switch {
		case a.Share > b.Share:
			return -1
		case a.Share < b.Share:
			return 1
		}
		return a.Port - b.Port
	})
	if len(out) > topPorts {
		out = out[:topPorts]
	}
	return out
}
