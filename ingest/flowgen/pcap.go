package flowgen

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net/netip"
	"time"
)

// Classic pcap file format (the libpcap format of tcpdump).
const (
	pcapMagicMicros = 0xa1b2c3d4
	pcapVersionMaj  = 2
	pcapVersionMin  = 4
	pcapSnapLen     = 262144
	linkTypeEther   = 1 // LINKTYPE_ETHERNET
	pcapFileHdrLen  = 24
	pcapRecHdrLen   = 16
	udpHeaderLen    = 8
)

// Packet is one UDP datagram to write into a capture: an export datagram on
// its way from an exporter to a collector.
type Packet struct {
	// Time is the capture timestamp (written in microseconds).
	Time time.Time
	// Src and Dst are the UDP endpoints, both IPv4 or both IPv6.
	Src, Dst netip.AddrPort
	// Payload is the UDP payload.
	Payload []byte
}

// PCAPWriter writes packets into a classic pcap stream (LINKTYPE_ETHERNET,
// microsecond timestamps, host byte order little-endian), each as an Ethernet
// frame with an IPv4 or IPv6 header and a UDP header, checksums computed
// (the UDP checksum too, optional over IPv4 but mandatory over IPv6).
type PCAPWriter struct {
	w   io.Writer
	buf []byte
}

// NewPCAPWriter writes the pcap file header to w and returns a writer for the
// packets that follow.
func NewPCAPWriter(w io.Writer) (*PCAPWriter, error) {
	h := make([]byte, pcapFileHdrLen, 2048)
	binary.LittleEndian.PutUint32(h[0:], pcapMagicMicros)
	binary.LittleEndian.PutUint16(h[4:], pcapVersionMaj)
	binary.LittleEndian.PutUint16(h[6:], pcapVersionMin)
	// thiszone and sigfigs stay 0
	binary.LittleEndian.PutUint32(h[16:], pcapSnapLen)
	binary.LittleEndian.PutUint32(h[20:], linkTypeEther)
	if _, err := w.Write(h); err != nil {
		return nil, fmt.Errorf("write pcap header: %w", err)
	}
	return &PCAPWriter{w: w, buf: h[:0]}, nil
}

// WritePacket writes one packet. It fails without writing for addresses that
// are invalid or of mixed families, a payload too large for one IP packet,
// or a time outside 1970-2106.
func (pw *PCAPWriter) WritePacket(p Packet) error {
	src, dst := p.Src.Addr().Unmap(), p.Dst.Addr().Unmap()
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
		return fmt.Errorf("write pcap packet %v > %v: want two addresses of one family", p.Src, p.Dst)
	}
	f := Flow{Src: src, Dst: dst, SrcPort: p.Src.Port(), DstPort: p.Dst.Port(), Proto: ProtoUDP}
	fam, etherType, maxIP := IPv4, uint16(etherTypeIPv4), math.MaxUint16
	if src.Is6() {
		fam, etherType, maxIP = IPv6, etherTypeIPv6, math.MaxUint16+ipv6HeaderLen
	}
	ipLen := packetHeadersLen(&f, fam) + len(p.Payload)
	if ipLen > maxIP {
		return fmt.Errorf("write pcap packet %v > %v: payload of %d bytes too large for one packet", p.Src, p.Dst, len(p.Payload))
	}
	secs := p.Time.Unix()
	if secs < 0 || secs > math.MaxUint32 {
		return fmt.Errorf("write pcap packet %v > %v: time %v out of range", p.Src, p.Dst, p.Time)
	}

	b := pw.buf[:0]
	b = binary.LittleEndian.AppendUint32(b, uint32(secs))
	b = binary.LittleEndian.AppendUint32(b, uint32(p.Time.Nanosecond()/1000))
	b = binary.LittleEndian.AppendUint32(b, 0) // captured length, set below
	b = binary.LittleEndian.AppendUint32(b, 0) // original length, set below
	b = appendEthernet(b, macHost, 0, etherType)
	b = appendIP(b, &f, fam, ipLen, p.Payload, -1)
	n := uint32(len(b) - pcapRecHdrLen)
	binary.LittleEndian.PutUint32(b[8:], n)
	binary.LittleEndian.PutUint32(b[12:], n)
	pw.buf = b
	if _, err := pw.w.Write(b); err != nil {
		return fmt.Errorf("write pcap packet: %w", err)
	}
	return nil
}

// WritePCAP writes a whole pcap stream of packets to w (see PCAPWriter).
func WritePCAP(w io.Writer, packets []Packet) error {
	pw, err := NewPCAPWriter(w)
	if err != nil {
		return err
	}
	for i := range packets {
		if err := pw.WritePacket(packets[i]); err != nil {
			return err
		}
	}
	return nil
}
