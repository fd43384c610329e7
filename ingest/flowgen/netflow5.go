package flowgen

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// MaxNetFlow5Records is the most records a NetFlow v5 datagram carries.
const MaxNetFlow5Records = 30

const (
	netflow5Version   = 5
	netflow5HeaderLen = 24
	netflow5RecordLen = 48
)

// ErrTooManyRecords is returned when flows do not fit in one datagram.
// AppendNetFlow5 does not split: the caller sends MaxNetFlow5Records at a
// time.
var ErrTooManyRecords = errors.New("too many records for one datagram")

// NetFlow5Header holds the header fields of a NetFlow v5 datagram. The record
// count is len(flows).
type NetFlow5Header struct {
	// Uptime is the router's uptime at export (sys_uptime, milliseconds
	// modulo 2^32).
	Uptime time.Duration
	// Time is the export time (unix_secs and unix_nsecs).
	Time time.Time
	// Sequence is flow_sequence: the number of flows exported before this
	// datagram.
	Sequence uint32
	// EngineType and EngineID identify the flow-switching engine.
	EngineType, EngineID uint8
	// SamplingMode is the 2-bit sampling mode (0 none, 1 deterministic,
	// 2 random).
	SamplingMode uint8
	// SamplingInterval is the 14-bit sampling interval (one packet out of
	// SamplingInterval).
	SamplingInterval uint16
}

// AppendNetFlow5 appends a NetFlow v5 datagram of flows to dst and returns the
// extended slice. It does not allocate when dst has room for it
// (24 + 48 × len(flows) bytes).
//
// A record's First and Last are its Start and End in milliseconds of router
// uptime, the boot time being h.Time - h.Uptime. It fails, leaving dst as it
// was, with ErrTooManyRecords for more than MaxNetFlow5Records flows, and
// with an error for an IPv6 flow, counters or interface indexes too large for
// the format, or a sampling field out of its bits.
func AppendNetFlow5(dst []byte, h NetFlow5Header, flows []Flow) ([]byte, error) {
	if len(flows) > MaxNetFlow5Records {
		return dst, fmt.Errorf("netflow v5: %d flows, at most %d: %w", len(flows), MaxNetFlow5Records, ErrTooManyRecords)
	}
	if h.SamplingMode > 3 || h.SamplingInterval > 0x3fff {
		return dst, fmt.Errorf("netflow v5: sampling mode %d interval %d out of 2+14 bits", h.SamplingMode, h.SamplingInterval)
	}
	for i := range flows {
		f := &flows[i]
		switch {
		case f.Family() == IPv6:
			return dst, fmt.Errorf("netflow v5: flow %d: IPv6 address %v > %v", i, f.Src, f.Dst)
		case f.Packets > math.MaxUint32 || f.Bytes > math.MaxUint32:
			return dst, fmt.Errorf("netflow v5: flow %d: %d packets %d bytes exceed 32 bits", i, f.Packets, f.Bytes)
		case f.InIf > math.MaxUint16 || f.OutIf > math.MaxUint16:
			return dst, fmt.Errorf("netflow v5: flow %d: interfaces %d/%d exceed 16 bits", i, f.InIf, f.OutIf)
		}
	}

	boot := h.Time.Add(-h.Uptime)
	dst = be16(dst, netflow5Version)
	dst = be16(dst, uint16(len(flows)))
	dst = be32(dst, uint32(h.Uptime.Milliseconds()))
	dst = be32(dst, uint32(h.Time.Unix()))
	dst = be32(dst, uint32(h.Time.Nanosecond()))
	dst = be32(dst, h.Sequence)
	dst = append(dst, h.EngineType, h.EngineID)
	dst = be16(dst, uint16(h.SamplingMode)<<14|h.SamplingInterval)
	for i := range flows {
		f := &flows[i]
		src, dstAddr := as4(f.Src), as4(f.Dst)
		dst = append(dst, src[:]...)
		dst = append(dst, dstAddr[:]...)
		dst = be32(dst, 0) // next hop
		dst = be16(dst, uint16(f.InIf))
		dst = be16(dst, uint16(f.OutIf))
		dst = be32(dst, uint32(f.Packets))
		dst = be32(dst, uint32(f.Bytes))
		dst = be32(dst, msSince(timeOr(f.Start, h.Time), boot))
		dst = be32(dst, msSince(timeOr(f.End, h.Time), boot))
		dst = be16(dst, f.SrcPort)
		dst = be16(dst, f.DstPort)
		dst = append(dst, 0, f.TCPFlags, f.Proto, 0) // pad1, flags, proto, tos
		dst = be32(dst, 0)                           // src_as, dst_as
		dst = append(dst, 0, 0, 0, 0)                // src_mask, dst_mask, pad2
	}
	return dst, nil
}
