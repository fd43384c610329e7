package ingest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/ip4defrag"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Datagram is one UDP datagram read from a capture. Payload is only valid
// during the callback it is passed to.
type Datagram struct {
	Time    time.Time
	Src     netip.AddrPort
	Dst     netip.AddrPort
	Payload []byte
}

// CaptureStats counts what a capture held.
type CaptureStats struct {
	Packets   int // frames read
	UDP       int // UDP datagrams (after IP reassembly)
	Fragments int // IP fragments held for reassembly
	Skipped   int // frames that were not UDP over IP, or could not be parsed
}

type packetReader interface {
	ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	LinkType() layers.LinkType
}

// ReadCapture reads a pcap or pcapng file (told apart by their magic
// numbers) and calls fn for every UDP datagram in it, reassembling IPv4
// fragments. Whether a datagram is flow telemetry is left to fn: the
// content, not the port, decides.
func ReadCapture(path string, fn func(Datagram) error) (CaptureStats, error) {
	f, err := os.Open(path)
	if err != nil {
		return CaptureStats{}, err
	}
	defer f.Close()
	stats, err := readCapture(f, fn)
	if err != nil {
		return stats, fmt.Errorf("read capture %s: %w", path, err)
	}
	return stats, nil
}

// ReadCaptureFrom is ReadCapture on an open stream.
func ReadCaptureFrom(r io.Reader, fn func(Datagram) error) (CaptureStats, error) {
	return readCapture(r, fn)
}

func readCapture(r io.Reader, fn func(Datagram) error) (CaptureStats, error) {
	var stats CaptureStats
	br := bufio.NewReaderSize(r, 1<<16)
	magic, err := br.Peek(4)
	if err != nil {
		return stats, fmt.Errorf("not a pcap or pcapng file: %w", err)
	}
	var pr packetReader
	if bytes.Equal(magic, []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		ng, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return stats, fmt.Errorf("pcapng: %w", err)
		}
		pr = ng
	} else {
		pc, err := pcapgo.NewReader(br)
		if err != nil {
			return stats, fmt.Errorf("pcap: %w", err)
		}
		pr = pc
	}
	defrag := ip4defrag.NewIPv4Defragmenter()
	decodeOpts := gopacket.DecodeOptions{Lazy: true, NoCopy: true}
	for {
		data, ci, err := pr.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return stats, nil
		}
		if err != nil {
			// A truncated last record is common in captures cut short; keep
			// what was read and report it.
			return stats, fmt.Errorf("frame %d: %w", stats.Packets+1, err)
		}
		stats.Packets++
		pkt := gopacket.NewPacket(data, pr.LinkType(), decodeOpts)
		var (
			src, dst netip.Addr
			udp      *layers.UDP
		)
		switch nl := pkt.NetworkLayer().(type) {
		case *layers.IPv4:
			src, _ = netip.AddrFromSlice(nl.SrcIP.To4())
			dst, _ = netip.AddrFromSlice(nl.DstIP.To4())
			if nl.Flags&layers.IPv4MoreFragments != 0 || nl.FragOffset != 0 {
				stats.Fragments++
				whole, err := defrag.DefragIPv4WithTimestamp(nl, ci.Timestamp)
				if err != nil || whole == nil {
					if err != nil {
						stats.Skipped++
					}
					continue
				}
				if whole.Protocol != layers.IPProtocolUDP {
					continue
				}
				p := gopacket.NewPacket(whole.Payload, layers.LayerTypeUDP, decodeOpts)
				udp, _ = p.Layer(layers.LayerTypeUDP).(*layers.UDP)
			} else {
				udp, _ = pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
			}
		case *layers.IPv6:
			src, _ = netip.AddrFromSlice(nl.SrcIP)
			dst, _ = netip.AddrFromSlice(nl.DstIP)
			udp, _ = pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		}
		if udp == nil || !src.IsValid() {
			stats.Skipped++
			continue
		}
		payload := udp.Payload
		// Trust the UDP length over the frame when the frame is padded.
		if l := int(udp.Length) - 8; l >= 0 && l < len(payload) {
			payload = payload[:l]
		}
		stats.UDP++
		if err := fn(Datagram{
			Time:    ci.Timestamp,
			Src:     netip.AddrPortFrom(src, uint16(udp.SrcPort)),
			Dst:     netip.AddrPortFrom(dst, uint16(udp.DstPort)),
			Payload: payload,
		}); err != nil {
			return stats, err
		}
	}
}
