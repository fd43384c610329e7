//go:build ignore

// Command gen makes the captures in testdata/real: for every attack case it
// crafts a packet capture (attack plus benign background), feeds it to a
// real NetFlow exporter (softflowd, reading the capture with -r), captures
// what softflowd exports over loopback with tcpdump, and writes
//
//	testdata/real/<case>/export.pcap  the NetFlow v9 datagrams softflowd sent
//	testdata/real/<case>/truth.yaml   the ground truth of the crafted traffic
//
// Run it as root from the repository root (tcpdump needs to capture on lo):
//
//	apt-get install -y softflowd tcpdump
//	go run testdata/real/gen/main.go
//
// Flags: -out (default testdata/real), -work (keep the crafted input pcaps
// there; by default they go to a temporary directory and are removed),
// -case (only the named cases, comma-separated), -sampling (softflowd -s,
// default 100).
//
// The crafted traffic is deterministic (fixed seeds, fixed capture time); the
// export is not byte-for-byte reproducible, since softflowd stamps its
// datagrams with the wall clock.
//
// Nothing is sent anywhere but 127.0.0.1: the crafted packets only ever live
// in a file that softflowd reads; softflowd's export goes to a UDP socket
// this program holds open on 127.0.0.1.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Capture layout, in capture time.
const (
	captureLen  = 20 * time.Second
	attackStart = 5 * time.Second
	attackEnd   = 15 * time.Second
	attackPPS   = 3000 // packets per second of attack in the crafted capture
	snapLen     = 128  // crafted packets are stored truncated, as a router's sampler would see them
	maxLife     = "5s" // softflowd -t maxlife
)

// captureBase is when the crafted capture being made starts: 21 s before
// it is made, so that the times softflowd exports (capture time, with -a),
// the times tcpdump stamps on the export (wall clock) and the ground truth
// all agree to within a few seconds, as they would with a live exporter.
var captureBase time.Time

var (
	victim4 = netip.MustParseAddr("203.0.113.10")
	victim6 = netip.MustParseAddr("2001:db8:1::10")
)

// portSpec is a port of the attack traffic: a fixed number, or random.
type portSpec int

const randomPort portSpec = -1

// attack describes one case's attack traffic.
type attack struct {
	name     string
	kind     string // the attack type the classifier should name (builtin/classify rule names)
	desc     string
	ipv6     bool
	proto    layers.IPProtocol
	srcPort  portSpec // for TCP/UDP
	dstPort  portSpec
	tcpFlags uint8 // for TCP
	sizeMin  int   // IP packet length (header included), bytes
	sizeMax  int
	// sources: "reflectors" (reflectors distinct hosts in 198.18.0.0/15),
	// "spoofed" (random IPv4 unicast), "spoofed6" (random in 2001:db8:ffff::/48)
	sources    string
	reflectors int
	// fragments: fraction of datagrams sent as two IPv4 fragments (first
	// fragment with the UDP header, then a non-first one)
	fragmentShare float64
	// nonFirstFragments: every packet is a non-first fragment (IPv4, or
	// IPv6 with a fragment header)
	nonFirstFragments bool
	icmpType          uint8 // for ICMP
}

var cases = []attack{
	{
		name: "dns-amplification", kind: "dns-amplification",
		desc:  "DNS responses from 300 open resolvers; a quarter of them are large responses split into two IP fragments",
		proto: layers.IPProtocolUDP, srcPort: 53, dstPort: randomPort,
		sizeMin: 1400, sizeMax: 1500, sources: "reflectors", reflectors: 300, fragmentShare: 0.25,
	},
	{
		name: "ntp-amplification", kind: "ntp-amplification",
		desc:  "NTP monlist (mode 7) responses from 300 NTP servers",
		proto: layers.IPProtocolUDP, srcPort: 123, dstPort: randomPort,
		sizeMin: 468, sizeMax: 468, sources: "reflectors", reflectors: 300,
	},
	{
		name: "cldap-amplification", kind: "cldap-amplification",
		desc:  "CLDAP searchResEntry responses from 300 domain controllers",
		proto: layers.IPProtocolUDP, srcPort: 389, dstPort: randomPort,
		sizeMin: 1380, sizeMax: 1420, sources: "reflectors", reflectors: 300,
	},
	{
		name: "memcached-amplification", kind: "memcached-amplification",
		desc:  "memcached stats/get responses from 300 servers",
		proto: layers.IPProtocolUDP, srcPort: 11211, dstPort: randomPort,
		sizeMin: 1380, sizeMax: 1420, sources: "reflectors", reflectors: 300,
	},
	{
		name: "ssdp-amplification", kind: "ssdp-amplification",
		desc:  "SSDP M-SEARCH responses from 300 UPnP devices",
		proto: layers.IPProtocolUDP, srcPort: 1900, dstPort: randomPort,
		sizeMin: 280, sizeMax: 320, sources: "reflectors", reflectors: 300,
	},
	{
		name: "chargen-amplification", kind: "chargen-amplification",
		desc:  "CHARGEN responses from 300 hosts",
		proto: layers.IPProtocolUDP, srcPort: 19, dstPort: randomPort,
		sizeMin: 980, sizeMax: 1020, sources: "reflectors", reflectors: 300,
	},
	{
		name: "syn-flood", kind: "syn-flood",
		desc:  "TCP SYN (no ACK) with MSS/SACK/timestamp/window-scale options from random spoofed sources to port 443",
		proto: layers.IPProtocolTCP, srcPort: randomPort, dstPort: 443, tcpFlags: 0x02,
		sizeMin: 60, sizeMax: 60, sources: "spoofed",
	},
	{
		name: "tcp-ack-flood", kind: "tcp-ack-flood",
		desc:  "TCP ACK-only segments without payload from random spoofed sources to random victim ports",
		proto: layers.IPProtocolTCP, srcPort: randomPort, dstPort: randomPort, tcpFlags: 0x10,
		sizeMin: 40, sizeMax: 40, sources: "spoofed",
	},
	{
		name: "tcp-rst-flood", kind: "tcp-rst-flood",
		desc:  "TCP RST segments (RST only) from random spoofed sources to random victim ports",
		proto: layers.IPProtocolTCP, srcPort: randomPort, dstPort: randomPort, tcpFlags: 0x04,
		sizeMin: 40, sizeMax: 40, sources: "spoofed",
	},
	{
		name: "udp-flood", kind: "udp-flood",
		desc:  "UDP from random spoofed sources, random source and destination ports",
		proto: layers.IPProtocolUDP, srcPort: randomPort, dstPort: randomPort,
		sizeMin: 512, sizeMax: 512, sources: "spoofed",
	},
	{
		name: "icmp-flood", kind: "icmp-flood",
		desc:  "ICMP echo requests from random spoofed sources",
		proto: layers.IPProtocolICMPv4, icmpType: 8,
		sizeMin: 1000, sizeMax: 1000, sources: "spoofed",
	},
	{
		name: "fragment-flood", kind: "fragment-flood",
		desc:  "non-first IPv4 fragments (offset > 0) of UDP datagrams from random spoofed sources",
		proto: layers.IPProtocolUDP, srcPort: randomPort, dstPort: randomPort,
		sizeMin: 1480, sizeMax: 1480, sources: "spoofed", nonFirstFragments: true,
	},
	{
		name: "ipv6-udp-flood", kind: "udp-flood", ipv6: true,
		desc:  "UDP over IPv6 from random sources in 2001:db8:ffff::/48, random source and destination ports",
		proto: layers.IPProtocolUDP, srcPort: randomPort, dstPort: randomPort,
		sizeMin: 512, sizeMax: 512, sources: "spoofed6",
	},
	{
		name: "ipv6-fragment-flood", kind: "fragment-flood", ipv6: true,
		desc:  "non-first IPv6 fragments (fragment header with offset > 0, UDP behind it) from random sources in 2001:db8:ffff::/48",
		proto: layers.IPProtocolUDP, srcPort: randomPort, dstPort: randomPort,
		sizeMin: 1280, sizeMax: 1280, sources: "spoofed6", nonFirstFragments: true,
	},
}

// pkt is one crafted frame.
type pkt struct {
	at   time.Duration // capture time offset
	data []byte        // the whole frame
}

var (
	srcMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x53, 0x01} // upstream router
	dstMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x53, 0x02} // the exporter's interface
)

var serializeOpts = gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}

func serialize(ls ...gopacket.SerializableLayer) []byte {
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, serializeOpts, ls...); err != nil {
		log.Fatalf("serialize: %v", err)
	}
	return slices.Clone(buf.Bytes())
}

func eth(ipv6 bool) *layers.Ethernet {
	t := layers.EthernetTypeIPv4
	if ipv6 {
		t = layers.EthernetTypeIPv6
	}
	return &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: t}
}

func ip4(src, dst netip.Addr, proto layers.IPProtocol, id uint16) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 54, Id: id, Flags: layers.IPv4DontFragment,
		Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
}

func ip6(src, dst netip.Addr, next layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 54, NextHeader: next, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
}

// payload returns n bytes of filler that starts with prefix.
func payload(n int, prefix []byte) gopacket.Payload {
	if n < 0 {
		log.Fatalf("negative payload %d", n)
	}
	p := make([]byte, n)
	copy(p, prefix)
	for i := len(prefix); i < n; i++ {
		p[i] = byte('a' + i%26)
	}
	return p
}

// udp4 crafts one IPv4 UDP packet of total IP length size.
func udp4(src, dst netip.Addr, sport, dport uint16, size int, id uint16, prefix []byte) []byte {
	ip := ip4(src, dst, layers.IPProtocolUDP, id)
	u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	_ = u.SetNetworkLayerForChecksum(ip)
	return serialize(eth(false), ip, u, payload(size-28, prefix))
}

// udp4Fragmented crafts one UDP datagram of UDP length 8+n split into two
// IPv4 fragments whose IP lengths are first and the rest.
func udp4Fragmented(src, dst netip.Addr, sport, dport uint16, first, second int, id uint16, prefix []byte) [][]byte {
	// The whole datagram, checksummed, without IP header.
	ip := ip4(src, dst, layers.IPProtocolUDP, id)
	u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	_ = u.SetNetworkLayerForChecksum(ip)
	udpLen := (first - 20) + (second - 20)
	whole := serialize(u, payload(udpLen-8, prefix))
	split := first - 20 // multiple of 8
	if split%8 != 0 {
		log.Fatalf("fragment boundary %d not a multiple of 8", split)
	}
	f1 := ip4(src, dst, layers.IPProtocolUDP, id)
	f1.Flags = layers.IPv4MoreFragments
	f2 := ip4(src, dst, layers.IPProtocolUDP, id)
	f2.Flags = 0
	f2.FragOffset = uint16(split / 8)
	return [][]byte{
		serialize(eth(false), f1, gopacket.Payload(whole[:split])),
		serialize(eth(false), f2, gopacket.Payload(whole[split:])),
	}
}

func tcp4(src, dst netip.Addr, sport, dport uint16, flags uint8, seq, ack uint32, payloadLen int, id uint16, opts []layers.TCPOption) []byte {
	ip := ip4(src, dst, layers.IPProtocolTCP, id)
	t := tcpLayer(sport, dport, flags, seq, ack, opts)
	_ = t.SetNetworkLayerForChecksum(ip)
	return serialize(eth(false), ip, t, payload(payloadLen, nil))
}

func tcp6(src, dst netip.Addr, sport, dport uint16, flags uint8, seq, ack uint32, payloadLen int) []byte {
	ip := ip6(src, dst, layers.IPProtocolTCP)
	t := tcpLayer(sport, dport, flags, seq, ack, nil)
	_ = t.SetNetworkLayerForChecksum(ip)
	return serialize(eth(true), ip, t, payload(payloadLen, nil))
}

func tcpLayer(sport, dport uint16, flags uint8, seq, ack uint32, opts []layers.TCPOption) *layers.TCP {
	return &layers.TCP{
		SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: seq, Ack: ack,
		FIN: flags&0x01 != 0, SYN: flags&0x02 != 0, RST: flags&0x04 != 0, PSH: flags&0x08 != 0,
		ACK: flags&0x10 != 0, URG: flags&0x20 != 0, ECE: flags&0x40 != 0, CWR: flags&0x80 != 0,
		Window: 64240, Options: opts,
	}
}

// synOptions is a Linux-like SYN option block: 20 bytes, so SYNs are 60 bytes.
var synOptions = []layers.TCPOption{
	{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
	{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
	{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0, 0, 0, 1, 0, 0, 0, 0}},
	{OptionType: layers.TCPOptionKindNop},
	{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
}

func randPort(r *rand.Rand) uint16 { return uint16(1024 + r.IntN(65536-1024)) }

func pickPort(r *rand.Rand, p portSpec) uint16 {
	if p == randomPort {
		return randPort(r)
	}
	return uint16(p)
}

var documentation = netip.MustParsePrefix("203.0.113.0/24")

// spoofed4 returns a random public-looking unicast IPv4 address outside the
// protected 203.0.113.0/24.
func spoofed4(r *rand.Rand) netip.Addr {
	for {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], r.Uint32())
		a := netip.AddrFrom4(b)
		if b[0] == 0 || b[0] == 10 || b[0] == 127 || b[0] >= 224 || documentation.Contains(a) {
			continue
		}
		return a
	}
}

// reflectors returns n distinct addresses in 198.18.0.0/15.
func reflectors(r *rand.Rand, n int) []netip.Addr {
	seen := map[netip.Addr]bool{}
	var out []netip.Addr
	for len(out) < n {
		v := uint32(198)<<24 | uint32(18)<<16 | r.Uint32N(1<<17)
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], v)
		a := netip.AddrFrom4(b)
		if b[3] == 0 || b[3] == 255 || seen[a] {
			continue
		}
		seen[a] = true
		out = append(out, a)
	}
	return out
}

func spoofed6(r *rand.Rand) netip.Addr {
	b := netip.MustParseAddr("2001:db8:ffff::").As16()
	binary.BigEndian.PutUint16(b[6:], uint16(r.Uint32()))
	binary.BigEndian.PutUint64(b[8:], r.Uint64())
	return netip.AddrFrom16(b)
}

// servicePrefix is the start of a response payload, so the crafted packets
// look right in Wireshark.
func servicePrefix(port portSpec) []byte {
	switch port {
	case 53: // DNS response header: id, QR|RD|RA, 1 question, many answers
		return []byte{0x4a, 0x21, 0x81, 0x80, 0, 1, 0, 40, 0, 0, 0, 1}
	case 123: // NTP mode 7 response, MON_GETLIST_1
		return []byte{0xd7, 0x00, 0x03, 0x2a, 0x00, 0x06, 0x00, 0x48}
	case 389: // LDAP message, searchResEntry
		return []byte{0x30, 0x84, 0x00, 0x00, 0x05, 0x5a, 0x02, 0x01, 0x01, 0x64}
	case 11211: // memcached UDP frame header + "VALUE"
		return []byte{0, 1, 0, 0, 0, 0x40, 0, 0, 'V', 'A', 'L', 'U', 'E', ' '}
	case 1900:
		return []byte("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nST: upnp:rootdevice\r\n")
	case 19:
		return []byte("!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefgh\r\n")
	}
	return nil
}

// attackStats is what was crafted for the attack.
type attackStats struct {
	packets, bytes int
	datagrams      int    // UDP datagrams (fragmented ones count once)
	fragments      int    // frames that are IP fragments
	nonFirst       int    // frames that are non-first fragments
	sizes          [2]int // IP packet length
	l2sizes        [2]int // frame length less the Ethernet header: IP length plus Ethernet padding
	sources        int
}

// ipLen is the IP packet length of an Ethernet frame.
func ipLen(frame []byte) int {
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case 0x0800:
		return int(binary.BigEndian.Uint16(frame[16:18]))
	case 0x86dd:
		return 40 + int(binary.BigEndian.Uint16(frame[18:20]))
	}
	log.Fatal("not IP")
	return 0
}

func craftAttack(c attack, r *rand.Rand) ([]pkt, attackStats) {
	var st attackStats
	st.sizes = [2]int{1 << 30, 0}
	st.l2sizes = st.sizes
	var refl []netip.Addr
	if c.sources == "reflectors" {
		refl = reflectors(r, c.reflectors)
	}
	srcs := map[netip.Addr]bool{}
	total := int(attackEnd-attackStart) / int(time.Second) * attackPPS
	step := (attackEnd - attackStart) / time.Duration(total)
	var out []pkt
	add := func(at time.Duration, frame []byte) {
		out = append(out, pkt{at: at, data: frame})
		size := ipLen(frame)
		st.packets++
		st.bytes += size
		st.sizes[0] = min(st.sizes[0], size)
		st.sizes[1] = max(st.sizes[1], size)
		st.l2sizes[0] = min(st.l2sizes[0], len(frame)-14)
		st.l2sizes[1] = max(st.l2sizes[1], len(frame)-14)
	}
	for i := 0; len(out) < total; i++ {
		// Evenly paced with jitter, never outside [attackStart, attackEnd).
		at := attackStart + time.Duration(len(out))*step + time.Duration(r.Int64N(int64(step)))
		var src netip.Addr
		switch c.sources {
		case "reflectors":
			src = refl[r.IntN(len(refl))]
		case "spoofed":
			src = spoofed4(r)
		case "spoofed6":
			src = spoofed6(r)
		}
		srcs[src] = true
		size := c.sizeMin + r.IntN(c.sizeMax-c.sizeMin+1)
		id := uint16(r.Uint32())
		sport, dport := pickPort(r, c.srcPort), pickPort(r, c.dstPort)
		switch {
		case c.ipv6 && c.nonFirstFragments:
			// A non-first fragment: the IPv6 header, a fragment header
			// (next header UDP, offset > 0 in units of 8 bytes, M set on
			// half of them) and data, no UDP header.
			ip := ip6(src, victim6, layers.IPProtocolIPv6Fragment)
			fh := make([]byte, 8)
			fh[0] = byte(layers.IPProtocolUDP)
			offM := uint16(1+r.IntN(7000)) << 3
			if r.IntN(2) == 0 {
				offM |= 1
			}
			binary.BigEndian.PutUint16(fh[2:], offM)
			binary.BigEndian.PutUint32(fh[4:], r.Uint32())
			add(at, serialize(eth(true), ip, gopacket.Payload(append(fh, payload(size-48, nil)...))))
			st.fragments++
			st.nonFirst++
		case c.ipv6:
			ip := ip6(src, victim6, layers.IPProtocolUDP)
			u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
			_ = u.SetNetworkLayerForChecksum(ip)
			add(at, serialize(eth(true), ip, u, payload(size-48, nil)))
			st.datagrams++
		case c.nonFirstFragments:
			// A non-first fragment: no UDP header, just data at offset > 0.
			ip := ip4(src, victim4, layers.IPProtocolUDP, id)
			ip.Flags = 0
			if r.IntN(2) == 0 {
				ip.Flags = layers.IPv4MoreFragments
			}
			ip.FragOffset = uint16(1 + r.IntN(7000)) // units of 8 bytes
			add(at, serialize(eth(false), ip, payload(size-20, nil)))
			st.fragments++
			st.nonFirst++
		case c.proto == layers.IPProtocolUDP && c.fragmentShare > 0 && r.Float64() < c.fragmentShare && total-len(out) >= 2:
			// A large response split in two: 1500 bytes, then the rest.
			second := c.sizeMin + r.IntN(c.sizeMax-c.sizeMin+1)
			for j, f := range udp4Fragmented(src, victim4, sport, dport, 1500, second, id, servicePrefix(c.srcPort)) {
				add(at+time.Duration(j)*20*time.Microsecond, f)
			}
			st.datagrams++
			st.fragments += 2
			st.nonFirst++
		case c.proto == layers.IPProtocolUDP:
			add(at, udp4(src, victim4, sport, dport, size, id, servicePrefix(c.srcPort)))
			st.datagrams++
		case c.proto == layers.IPProtocolTCP:
			var opts []layers.TCPOption
			var ack uint32
			if c.tcpFlags&0x02 != 0 {
				opts = synOptions
			}
			if c.tcpFlags&0x10 != 0 {
				ack = r.Uint32()
			}
			frame := tcp4(src, victim4, sport, dport, c.tcpFlags, r.Uint32(), ack, 0, id, opts)
			if ipLen(frame) != size {
				log.Fatalf("%s: TCP packet of %d bytes, want %d", c.name, ipLen(frame), size)
			}
			add(at, frame)
		case c.proto == layers.IPProtocolICMPv4:
			ip := ip4(src, victim4, layers.IPProtocolICMPv4, id)
			ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(c.icmpType, 0), Id: uint16(r.Uint32()), Seq: uint16(i)}
			add(at, serialize(eth(false), ip, ic, payload(size-28, nil)))
		default:
			log.Fatalf("%s: nothing to craft", c.name)
		}
	}
	st.sources = len(srcs)
	return out, st
}

// background is the benign traffic mixed into every case.
type backgroundStats struct {
	packets int
	hosts   []string
}

func craftBackground(r *rand.Rand, withIPv6 bool) ([]pkt, backgroundStats) {
	var out []pkt
	hosts := map[string]bool{}
	add := func(at time.Duration, frame []byte) {
		if at < 0 || at >= captureLen {
			return
		}
		out = append(out, pkt{at: at, data: frame})
	}
	// TCP sessions: handshake, request/response exchanges, FIN.
	session := func(client, server netip.Addr, port uint16, start time.Duration, exchanges int, v6 bool) {
		hosts[server.String()] = true
		cport := randPort(r)
		cseq, sseq := r.Uint32(), r.Uint32()
		t := start
		rtt := time.Duration(20+r.IntN(30)) * time.Millisecond
		seg := func(fromClient bool, flags uint8, n int) {
			var frame []byte
			switch {
			case v6 && fromClient:
				frame = tcp6(client, server, cport, port, flags, cseq, sseq, n)
			case v6:
				frame = tcp6(server, client, port, cport, flags, sseq, cseq, n)
			case fromClient:
				var opts []layers.TCPOption
				if flags == 0x02 {
					opts = synOptions
				}
				frame = tcp4(client, server, cport, port, flags, cseq, sseq, n, uint16(r.Uint32()), opts)
			default:
				var opts []layers.TCPOption
				if flags == 0x12 {
					opts = synOptions
				}
				frame = tcp4(server, client, port, cport, flags, sseq, cseq, n, uint16(r.Uint32()), opts)
			}
			add(t, frame)
			if fromClient {
				cseq += uint32(n)
			} else {
				sseq += uint32(n)
			}
			t += rtt / 2
		}
		seg(true, 0x02, 0)
		seg(false, 0x12, 0)
		seg(true, 0x10, 0)
		for range exchanges {
			seg(true, 0x18, 200+r.IntN(400))
			for range 2 + r.IntN(3) {
				seg(false, 0x10, 1400)
			}
			seg(false, 0x18, 100+r.IntN(1200))
			seg(true, 0x10, 0)
			t += time.Duration(200+r.IntN(800)) * time.Millisecond
		}
		seg(true, 0x11, 0)
		seg(false, 0x11, 0)
		seg(true, 0x10, 0)
	}
	web, app := netip.MustParseAddr("203.0.113.20"), netip.MustParseAddr("203.0.113.21")
	for i := range 8 {
		client := netip.AddrFrom4([4]byte{198, 51, 100, byte(11 + i)})
		session(client, web, 443, time.Duration(r.Int64N(int64(8*time.Second))), 4+r.IntN(6), false)
	}
	for i := range 3 {
		client := netip.AddrFrom4([4]byte{198, 51, 100, byte(31 + i)})
		session(client, app, 80, time.Duration(r.Int64N(int64(10*time.Second))), 3+r.IntN(4), false)
	}
	// DNS: queries to the resolver 203.0.113.22 and its answers.
	resolver := netip.MustParseAddr("203.0.113.22")
	hosts[resolver.String()] = true
	for i := range 40 {
		client := netip.AddrFrom4([4]byte{198, 51, 100, byte(50 + i%10)})
		at := time.Duration(r.Int64N(int64(captureLen - time.Second)))
		sport := randPort(r)
		add(at, udp4(client, resolver, sport, 53, 60+r.IntN(20), uint16(r.Uint32()), []byte{0x12, 0x34, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 1}))
		add(at+2*time.Millisecond, udp4(resolver, client, 53, sport, 90+r.IntN(200), uint16(r.Uint32()), []byte{0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 1}))
	}
	// NTP: the host 203.0.113.23 polls its server; benign port-123 traffic
	// towards the protected prefix, with small packets.
	ntpClient, ntpServer := netip.MustParseAddr("203.0.113.23"), netip.MustParseAddr("192.0.2.123")
	hosts[ntpClient.String()] = true
	for i := range 10 {
		at := time.Duration(i)*2*time.Second + time.Duration(r.Int64N(int64(time.Second)))
		add(at, udp4(ntpClient, ntpServer, 123, 123, 76, uint16(r.Uint32()), []byte{0x23, 2, 6, 0xe8}))
		add(at+15*time.Millisecond, udp4(ntpServer, ntpClient, 123, 123, 76, uint16(r.Uint32()), []byte{0x24, 2, 6, 0xe8}))
	}
	if withIPv6 {
		web6 := netip.MustParseAddr("2001:db8:1::20")
		for i := range 3 {
			client := netip.MustParseAddr(fmt.Sprintf("2001:db8:2::%d", 11+i))
			session(client, web6, 443, time.Duration(r.Int64N(int64(10*time.Second))), 4+r.IntN(4), true)
		}
	}
	st := backgroundStats{packets: len(out)}
	for h := range hosts {
		st.hosts = append(st.hosts, h)
	}
	sort.Strings(st.hosts)
	return out, st
}

func seed(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

// writeCrafted writes frames, ordered by time, as a truncated pcap.
func writeCrafted(path string, frames []pkt) error {
	sort.SliceStable(frames, func(i, j int) bool { return frames[i].at < frames[j].at })
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	w := pcapgo.NewWriterNanos(bw)
	if err := w.WriteFileHeader(snapLen, layers.LinkTypeEthernet); err != nil {
		f.Close()
		return err
	}
	for _, p := range frames {
		data := p.data
		if len(data) > snapLen {
			data = data[:snapLen]
		}
		ci := gopacket.CaptureInfo{Timestamp: captureBase.Add(p.at), CaptureLength: len(data), Length: len(p.data)}
		if err := w.WritePacket(ci, data); err != nil {
			f.Close()
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// exportResult is what one softflowd run produced.
type exportResult struct {
	args      []string
	datagrams int // received by our sink
	captured  int // in export.pcap
	stdout    string
}

// runSoftflowd feeds crafted to softflowd and captures its export into out.
func runSoftflowd(ctx context.Context, crafted, out, work string, sampling int) (exportResult, error) {
	var res exportResult
	// The sink: holds the port (so nobody else takes it and softflowd gets
	// no ICMP port-unreachable) and counts what arrives.
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return res, err
	}
	defer sink.Close()
	port := sink.LocalAddr().(*net.UDPAddr).Port
	got := make(chan int, 1)
	go func() {
		n := 0
		buf := make([]byte, 65536)
		for {
			if _, _, err := sink.ReadFromUDP(buf); err != nil {
				got <- n
				return
			}
			n++
		}
	}()

	// tcpdump on lo, packet-buffered, only the export's port. It writes
	// into the work directory as root (-Z root: no privilege drop, which
	// would leave it unable to write there), and its stderr to a file we
	// poll for "listening on".
	capFile := filepath.Join(work, "export.pcap")
	errFile := filepath.Join(work, "tcpdump.err")
	ef, err := os.Create(errFile)
	if err != nil {
		return res, err
	}
	defer ef.Close()
	tdCtx, tdCancel := context.WithTimeout(ctx, 5*time.Minute)
	defer tdCancel()
	filter := fmt.Sprintf("udp and dst host 127.0.0.1 and dst port %d", port)
	td := exec.CommandContext(tdCtx, "tcpdump", "-i", "lo", "-n", "--immediate-mode", "-U", "-s", "0", "-Z", "root", "-w", capFile, filter)
	td.Cancel = func() error { return td.Process.Kill() }
	td.Stderr = ef
	if err := td.Start(); err != nil {
		return res, fmt.Errorf("tcpdump: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- td.Wait() }()
	tdStopped := false
	stopTcpdump := func() (string, error) {
		if tdStopped {
			return "", nil
		}
		tdStopped = true
		_ = td.Process.Signal(syscall.SIGINT) // tcpdump flushes and closes the file on SIGINT
		var err error
		select {
		case err = <-exited:
		case <-time.After(15 * time.Second):
			_ = td.Process.Kill()
			err = <-exited
			err = fmt.Errorf("tcpdump did not stop on SIGINT: %v", err)
		}
		b, _ := os.ReadFile(errFile)
		return string(b), err
	}
	defer stopTcpdump()
	for deadline := time.Now().Add(15 * time.Second); ; {
		b, _ := os.ReadFile(errFile)
		if bytes.Contains(b, []byte("listening on")) {
			break
		}
		select {
		case err := <-exited:
			tdStopped = true
			return res, fmt.Errorf("tcpdump exited before listening: %v: %s", err, b)
		default:
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("tcpdump not listening after 15s: %s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Run from the work directory with a relative -r: softflowd exports the
	// first 16 bytes of the capture's name as the interface name (IF_NAME)
	// in its options data. -a takes the time from the capture (header
	// export time and uptime follow the packets' timestamps) instead of
	// the wall clock, so flow times are capture times.
	res.args = []string{"softflowd", "-r", filepath.Base(crafted), "-a", "-v", "9", "-n", fmt.Sprintf("127.0.0.1:%d", port),
		"-t", "maxlife=" + maxLife, "-p", "softflowd.pid", "-c", "none"}
	if sampling > 1 {
		res.args = append(res.args, "-s", fmt.Sprint(sampling))
	}
	sfCtx, sfCancel := context.WithTimeout(ctx, 2*time.Minute)
	defer sfCancel()
	sf := exec.CommandContext(sfCtx, res.args[0], res.args[1:]...)
	sf.Dir = filepath.Dir(crafted)
	var sfOut bytes.Buffer
	sf.Stdout, sf.Stderr = &sfOut, &sfOut
	if err := sf.Run(); err != nil {
		return res, fmt.Errorf("softflowd: %w\n%s", err, sfOut.String())
	}
	res.stdout = sfOut.String()

	// softflowd has exited: everything it sent is on lo. Give the sink and
	// tcpdump a moment, then stop tcpdump so it flushes and closes the file.
	time.Sleep(500 * time.Millisecond)
	tail, err := stopTcpdump()
	if err != nil {
		return res, fmt.Errorf("tcpdump: %w: %s", err, tail)
	}
	// "packets dropped by kernel" is not checked: it also counts lo traffic
	// of others seen before the filter was attached. What matters is that
	// export.pcap holds every datagram the sink received (checked below).
	sink.Close()
	res.datagrams = <-got

	if !strings.Contains(tail, "packets captured") {
		return res, fmt.Errorf("tcpdump did not finish cleanly: %s", tail)
	}
	if err := copyFile(capFile, out); err != nil {
		return res, err
	}
	n, err := countPackets(out)
	if err != nil {
		return res, err
	}
	res.captured = n
	if res.captured != res.datagrams {
		return res, fmt.Errorf("export.pcap holds %d datagrams, the sink received %d", res.captured, res.datagrams)
	}
	return res, nil
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

func countPackets(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		return 0, err
	}
	n := 0
	for {
		_, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

func softflowdVersion() string {
	out, _ := exec.Command("softflowd", "-h").CombinedOutput()
	m := regexp.MustCompile(`softflowd version (\S+?)\.?\s`).FindSubmatch(out)
	v := "unknown"
	if m != nil {
		v = string(m[1])
	}
	if pkg, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "softflowd").Output(); err == nil {
		v += " (Debian package " + string(pkg) + ")"
	}
	return v
}

func main() {
	log.SetFlags(0)
	outDir := flag.String("out", "testdata/real", "where the case directories go")
	workDir := flag.String("work", "", "keep the crafted input pcaps in this directory (default: a temporary directory, removed)")
	only := flag.String("case", "", "comma-separated cases to generate (default: all)")
	sampling := flag.Int("sampling", 100, "softflowd -s: keep 1 packet in N (1 = no sampling)")
	flag.Parse()
	if err := run(*outDir, *workDir, *only, *sampling); err != nil {
		log.Fatal(err)
	}
}

func run(outDir, work, only string, sampling int) error {
	for _, p := range []string{"softflowd", "tcpdump"} {
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Errorf("%s not found: apt-get install -y softflowd tcpdump", p)
		}
	}
	keep := work != "" // crafted captures stay in a -work directory
	if work == "" {
		d, err := os.MkdirTemp("", "kapkan-real-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		work = d
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	work, err := filepath.Abs(work)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, n := range strings.Split(only, ",") {
		if n != "" {
			want[n] = true
		}
	}
	for n := range want {
		if !slices.ContainsFunc(cases, func(c attack) bool { return c.name == n }) {
			return fmt.Errorf("no case %q", n)
		}
	}
	version := softflowdVersion()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	started := time.Now()
	for _, c := range cases {
		if len(want) > 0 && !want[c.name] {
			continue
		}
		t0 := time.Now()
		captureBase = t0.Truncate(time.Second).Add(-captureLen - time.Second)
		r := rand.New(rand.NewPCG(seed(c.name), 2025))
		frames, ast := craftAttack(c, r)
		bg, bst := craftBackground(rand.New(rand.NewPCG(seed("background"), uint64(len(c.name)))), c.ipv6)
		frames = append(frames, bg...)
		crafted := filepath.Join(work, c.name+".pcap")
		if err := writeCrafted(crafted, frames); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		dir := filepath.Join(outDir, c.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		export := filepath.Join(dir, "export.pcap")
		res, err := runSoftflowd(ctx, crafted, export, work, sampling)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		fi, err := os.Stat(crafted)
		if err != nil {
			return err
		}
		ei, err := os.Stat(export)
		if err != nil {
			return err
		}
		if err := writeTruth(filepath.Join(dir, "truth.yaml"), c, ast, bst, res, version, sampling, fi.Size()); err != nil {
			return err
		}
		if !keep {
			if err := os.Remove(crafted); err != nil {
				return err
			}
		}
		log.Printf("%-24s crafted %6d frames %4.1f MB -> softflowd -> %3d NetFlow v9 datagrams, export.pcap %5.1f KB (%s)",
			c.name, len(frames), float64(fi.Size())/1e6, res.datagrams, float64(ei.Size())/1e3, time.Since(t0).Round(time.Millisecond))
		if os.Getenv("GEN_VERBOSE") != "" {
			log.Print(res.stdout)
		}
	}
	log.Printf("done in %s", time.Since(started).Round(time.Millisecond))
	return nil
}

// expectation is what the victim's records in softflowd's export show,
// derived from the crafted traffic and what softflowd does with it.
type expectation struct {
	protocol         int    // of the records: the attack's, unless softflowd did not read it
	srcPort, dstPort string // a number, or "random"
	srcShareMin      float64
	dstShareMin      float64
	portZeroShareMin float64
	tcpFlags         uint8
	notes            []string
}

func expect(c attack) expectation {
	e := expectation{protocol: int(c.proto), srcPort: portString(c.srcPort), dstPort: portString(c.dstPort), srcShareMin: 0.95, dstShareMin: 0.95, tcpFlags: c.tcpFlags}
	switch {
	case c.proto == layers.IPProtocolICMPv4:
		// softflowd exports ICMP with its own template: icmpTypeCode
		// (type*256+code, read into the destination port), no ports.
		e.srcPort, e.dstPort = "0", fmt.Sprint(uint16(c.icmpType)<<8)
		e.notes = append(e.notes, "ICMP records use softflowd's ICMP template: icmpTypeCode (IE 32) = type*256+code, which Kapkan reads into the destination port; the source port is 0")
	case c.nonFirstFragments && c.ipv6:
		e.protocol = 0
		e.srcPort, e.dstPort = "0", "0"
		e.notes = append(e.notes, "softflowd stops at an IPv6 fragment header whose offset is not 0 before it reads the next header behind it: non-first fragments are exported with next header (protocol) 0 and ports 0/0")
	case c.nonFirstFragments:
		e.srcPort, e.dstPort = "0", "0"
		e.notes = append(e.notes, "non-first fragments carry no UDP header: softflowd exports them with ports 0/0 (protocol 17)")
	case c.fragmentShare > 0:
		// Non-first fragments become separate port-0 flows.
		share := 1 / (1 + c.fragmentShare)
		e.srcShareMin = share - 0.1
		e.portZeroShareMin = (1 - share) / 2
		e.notes = append(e.notes, fmt.Sprintf("the non-first fragments (%.0f%% of the attack's packets) are separate flows with ports 0/0; first fragments keep the UDP ports", 100*(1-share)))
	}
	if c.nonFirstFragments || c.fragmentShare > 0 {
		e.notes = append(e.notes, "softflowd's NetFlow v9 templates carry no fragment information (no fragment flags or offset IEs): no record has the fragment flag")
	}
	if c.proto == layers.IPProtocolTCP {
		e.notes = append(e.notes, "tcp_flags is the OR of the flags of the packets in a record (softflowd exports the cumulative flags per direction)")
	}
	return e
}

func portString(p portSpec) string {
	if p == randomPort {
		return "random"
	}
	return fmt.Sprint(int(p))
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

func writeTruth(path string, c attack, ast attackStats, bst backgroundStats, res exportResult, version string, sampling int, craftedSize int64) error {
	victim := victim4
	if c.ipv6 {
		victim = victim6
	}
	e := expect(c)
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	rfc := func(d time.Duration) string { return captureBase.Add(d).UTC().Format(time.RFC3339Nano) }
	w("# Ground truth for export.pcap in this directory: what was crafted, how")
	w("# softflowd exported it, and what the victim's records must show.")
	w("# Generated by testdata/real/gen/main.go (see ../README.md); regenerate, do not edit.")
	w("case: %s", c.name)
	w("kind: %s", c.kind)
	w("description: %s", quote(c.desc))
	w("victim: %s", victim)
	w("")
	w("# The attack as crafted (before sampling).")
	w("attack:")
	w("  protocol: %d", c.proto)
	if c.proto == layers.IPProtocolICMPv4 {
		w("  icmp_type: %d", c.icmpType)
		w("  icmp_code: 0")
	} else {
		w("  src_port: %s", portString(c.srcPort))
		w("  dst_port: %s", portString(c.dstPort))
	}
	if c.proto == layers.IPProtocolTCP {
		w("  tcp_flags: 0x%02x", c.tcpFlags)
	}
	w("  packet_size: {min: %d, max: %d}  # IP packet length (header included), bytes", ast.sizes[0], ast.sizes[1])
	switch c.sources {
	case "reflectors":
		w("  sources: {kind: reflectors, prefix: 198.18.0.0/15, distinct: %d}", ast.sources)
	case "spoofed":
		w("  sources: {kind: random spoofed IPv4, distinct: %d}", ast.sources)
	case "spoofed6":
		w("  sources: {kind: random spoofed IPv6, prefix: \"2001:db8:ffff::/48\", distinct: %d}", ast.sources)
	}
	w("  fragments: {frames: %d, non_first: %d}", ast.fragments, ast.nonFirst)
	w("  packets: %d", ast.packets)
	w("  bytes: %d", ast.bytes)
	w("  rate_pps: %d", attackPPS)
	w("  # The attack's window in capture time; softflowd's flow times are capture")
	w("  # times (-a), so records' start/end fall in it.")
	w("  start: %s", rfc(attackStart))
	w("  end: %s", rfc(attackEnd))
	w("  start_offset: %s", attackStart)
	w("  end_offset: %s", attackEnd)
	w("")
	w("# Benign background mixed in over the whole capture: TCP sessions to")
	w("# 203.0.113.20:443 and 203.0.113.21:80, DNS to the resolver 203.0.113.22,")
	w("# NTP (76-byte, port 123 both ways) of 203.0.113.23%s.", map[bool]string{true: ", HTTPS over IPv6 to 2001:db8:1::20", false: ""}[c.ipv6])
	w("background:")
	w("  packets: %d", bst.packets)
	w("  hosts: [%s]", strings.Join(quoteAll(bst.hosts), ", "))
	w("")
	w("# The crafted input (not kept): Ethernet, packets truncated to %d bytes", snapLen)
	w("# (original lengths kept), %d attack packets per second from %s to %s.", attackPPS, attackStart, attackEnd)
	w("capture:")
	w("  start: %s", rfc(0))
	w("  end: %s", rfc(captureLen))
	w("  frames: %d", ast.packets+bst.packets)
	w("  snaplen: %d", snapLen)
	w("  bytes: %d", craftedSize)
	w("")
	w("exporter:")
	w("  software: softflowd")
	w("  version: %s", quote(version))
	w("  # Run from the directory holding the crafted capture; the port was a free")
	w("  # one on 127.0.0.1, captured with tcpdump -i lo.")
	w("  command: %s", quote(strings.Join(res.args, " ")))
	w("  format: netflow9")
	w("  sampling_rate: %d", max(sampling, 1))
	w("  # softflowd -s N keeps every Nth packet (deterministic) and announces N in")
	w("  # an options data record (template 256, scope interface 0, IE 34")
	w("  # samplingInterval, IE 35 samplingAlgorithm = 1 deterministic).")
	w("  sampling_rate_in_export: %t", sampling > 1)
	w("  datagrams: %d", res.datagrams)
	w("  # softflowd's own summary (printed on exit with -r).")
	w("  stats:")
	for _, k := range []struct{ key, re string }{
		{"packets_processed", `Packets processed: (\d+)`},
		{"packets_not_sampled", `Packets non-sampled: (\d+)`},
		{"fragments", `Fragments: (\d+)`},
		{"flows_exported", `Flows exported: (\d+)`},
		{"records_exported", `Flows exported: \d+ \((\d+) records\)`},
		{"expired_maxlife", `maxlife = +(\d+)`},
		{"expired_at_eof", `flushed = +(\d+)`},
	} {
		v := "0"
		if m := regexp.MustCompile(k.re).FindStringSubmatch(res.stdout); m != nil {
			v = m[1]
		}
		w("    %s: %s", k.key, v)
	}
	w("")
	w("# What the victim's records (destination = victim) in export.pcap show,")
	w("# weighting each record by packets x sampling rate. \"random\": no single")
	w("# port dominates.")
	w("expect:")
	w("  protocol: %d", e.protocol)
	w("  src_port: %s", e.srcPort)
	w("  src_port_share_min: %.2f", e.srcShareMin)
	w("  dst_port: %s", e.dstPort)
	w("  dst_port_share_min: %.2f", e.dstShareMin)
	if e.portZeroShareMin > 0 {
		w("  port_zero_share_min: %.2f", e.portZeroShareMin)
	}
	w("  tcp_flags: 0x%02x", e.tcpFlags)
	w("  fragment: false")
	w("  # Bytes per packet of the victim's records. softflowd counts the frame")
	w("  # length less the Ethernet header, so frames padded to Ethernet's 60-byte")
	w("  # minimum count as 46 bytes, not their IP length.")
	w("  bytes_per_packet: {min: %d, max: %d}", ast.l2sizes[0], ast.l2sizes[1])
	if len(e.notes) > 0 {
		w("  notes:")
		for _, n := range e.notes {
			w("    - %s", quote(n))
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = quote(s)
	}
	return out
}
