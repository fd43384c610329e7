package engine

import "github.com/kapkan-io/kapkan/flow"

// Metric is one rate a threshold can be set on.
type Metric uint8

// Metrics. Totals come first; per-protocol ones follow, packets then bytes.
const (
	MetricPPS Metric = iota
	MetricBPS
	MetricFPS
	MetricTCPPPS
	MetricUDPPPS
	MetricICMPPPS
	MetricSYNPPS
	MetricFragPPS
	MetricTCPBPS
	MetricUDPBPS
	MetricICMPBPS
	MetricSYNBPS
	MetricFragBPS
	NumMetrics
)

const numTotals = 3

// Protocol classes, for the per-protocol counters.
const (
	classTCP = iota
	classUDP
	classICMP
	classSYN
	classFrag
	numClasses
)

var metricNames = [NumMetrics]string{"pps", "mbps", "fps", "tcp_pps", "udp_pps", "icmp_pps", "syn_pps", "frag_pps",
	"tcp_mbps", "udp_mbps", "icmp_mbps", "syn_mbps", "frag_mbps"}

// String returns the name used in configuration and output (bytes-based
// metrics are named in Mbps, as thresholds are).
func (m Metric) String() string {
	if m >= NumMetrics {
		return "unknown"
	}
	return metricNames[m]
}

// IsBytes reports whether the metric counts bytes (shown in Mbps).
func (m Metric) IsBytes() bool {
	return m == MetricBPS || (m >= MetricTCPBPS && m <= MetricFragBPS)
}

// limits converts configured thresholds into per-second limits in base units
// (packets, bytes, flows); 0 is off.
func (t Thresholds) limits() (l [NumMetrics]uint64) {
	mb := func(v uint64) uint64 { return v * 1_000_000 / 8 }
	l[MetricPPS], l[MetricBPS], l[MetricFPS] = t.PPS, mb(t.Mbps), t.FPS
	l[MetricTCPPPS], l[MetricUDPPPS], l[MetricICMPPPS], l[MetricSYNPPS], l[MetricFragPPS] =
		t.TCPPPS, t.UDPPPS, t.ICMPPPS, t.SYNPPS, t.FragPPS
	l[MetricTCPBPS], l[MetricUDPBPS], l[MetricICMPBPS], l[MetricSYNBPS], l[MetricFragBPS] =
		mb(t.TCPMbps), mb(t.UDPMbps), mb(t.ICMPMbps), mb(t.SYNMbps), mb(t.FragMbps)
	return l
}

// classes returns the protocol classes a record belongs to, as a bit set.
func classes(r *flow.Record) uint8 {
	var c uint8
	switch r.Proto {
	case 6:
		c |= 1 << classTCP
		if r.TCPFlags&0x12 == 0x02 { // SYN without ACK
			c |= 1 << classSYN
		}
	case 17:
		c |= 1 << classUDP
	case 1, 58:
		c |= 1 << classICMP
	}
	if r.IsFragment() {
		c |= 1 << classFrag
	}
	return c
}

// Rates are per-second values of every metric, bytes in bytes/s.
type Rates [NumMetrics]uint64

// Mbps converts a bytes-per-second value into megabits per second.
func Mbps(bps uint64) float64 { return float64(bps) * 8 / 1e6 }
