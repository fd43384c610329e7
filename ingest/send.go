package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/kapkan-io/kapkan/flow"
)

// PaceClock is the clock a Sender paces datagrams by. The wall clock
// (WallClock) is the only one outside tests.
type PaceClock interface {
	// Now is a reading that only moves forward (time.Now carries the
	// monotonic clock).
	Now() time.Time
	// Sleep waits for d, or until ctx ends and then returns its error.
	Sleep(ctx context.Context, d time.Duration) error
}

// WallClock paces by the monotonic clock of this process.
type WallClock struct{}

// Now returns time.Now.
func (WallClock) Now() time.Time { return time.Now() }

// Sleep waits for d or for ctx.
func (WallClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SendOptions configure a Sender.
type SendOptions struct {
	// Target is the collector the datagrams go to. The sources are
	// loopback addresses, so it must be an address of this host.
	Target netip.AddrPort
	// Speed divides the gaps between capture timestamps: 1 plays at the
	// capture's pace, 10 ten times faster; 0 or less sends as fast as
	// possible.
	Speed float64
	// Clock paces the datagrams; nil is WallClock.
	Clock PaceClock
	// Progress, when set, is called on the sending goroutine after every
	// flow datagram with what was sent so far (valid during the call).
	Progress func(*SendStats)
}

// SendExporter is what a Sender did for one exporter of the captures.
type SendExporter struct {
	Exporter  netip.Addr // the UDP source in the capture
	Source    netip.Addr // the loopback address it was sent from
	Datagrams int        // sent
	Bytes     int64      // payload bytes sent
	Errors    int        // sends that failed
}

// SendErrors counts the datagrams that were not sent, by reason.
type SendErrors struct {
	// Refused: the kernel refused the send because an earlier datagram
	// of the same exporter was answered "port unreachable", so nothing
	// listened on the target then. Each refusal also stands for an
	// earlier datagram that was lost unseen.
	Refused int `json:"refused"`
	// ExporterLimit: the captures hold more than MaxSendExporters
	// exporters; datagrams of the others are not sent.
	ExporterLimit int `json:"exporter_limit"`
	// Other send failures (buffer space, message too long, ...).
	Other int `json:"other"`
}

// Total is the number of datagrams not sent.
func (e SendErrors) Total() int { return e.Refused + e.ExporterLimit + e.Other }

// SendStats is what a Sender did.
type SendStats struct {
	Datagrams int   // flow datagrams sent
	Bytes     int64 // their payload bytes
	NonFlow   int   // UDP datagrams that were not flow telemetry, not sent
	Errors    SendErrors
	// FirstError is the first send error, kept for the report.
	FirstError error
	// Exporters are in the order they were first seen.
	Exporters []SendExporter
}

// MaxSendExporters bounds the sockets a Sender opens, one per exporter.
const MaxSendExporters = 1024

// Sender plays the flow datagrams of captures to a collector, paced by
// their timestamps, each exporter from a loopback address of its own (see
// LoopbackSource). Build it with NewSender, call Send for each capture in
// turn, then Close. It is not safe for concurrent use.
type Sender struct {
	opts  SendOptions
	stats SendStats
	// byExporter indexes stats.Exporters and conns by exporter.
	byExporter map[netip.Addr]int
	conns      []*net.UDPConn
	taken      map[netip.Addr]bool // loopback sources handed out
}

// NewSender checks the options, and that the target can be reached from
// loopback (connecting a UDP socket sends nothing). Sockets are opened as
// exporters appear.
func NewSender(opts SendOptions) (*Sender, error) {
	if !opts.Target.IsValid() || !opts.Target.Addr().IsValid() || opts.Target.Addr().IsUnspecified() || opts.Target.Port() == 0 {
		return nil, fmt.Errorf("send target %q: want an address and a port", opts.Target)
	}
	opts.Target = netip.AddrPortFrom(opts.Target.Addr().Unmap(), opts.Target.Port())
	src := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	if opts.Target.Addr().Is6() {
		src = netip.IPv6Loopback()
	}
	probe, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(opts.Target))
	if err != nil {
		return nil, fmt.Errorf("send target %s cannot be reached from a loopback address (it must be an address of this host): %w", opts.Target, err)
	}
	probe.Close()
	if opts.Clock == nil {
		opts.Clock = WallClock{}
	}
	return &Sender{opts: opts, byExporter: map[netip.Addr]int{}, taken: map[netip.Addr]bool{}}, nil
}

// Stats returns what was sent so far. The Exporters slice is shared with
// the Sender until the next Send.
func (s *Sender) Stats() SendStats { return s.stats }

// Close closes the sockets.
func (s *Sender) Close() error {
	var errs []error
	for _, c := range s.conns {
		errs = append(errs, c.Close())
	}
	s.conns = nil
	return errors.Join(errs...)
}

// Send plays the flow datagrams of one capture. The first datagram goes
// at once, each next one when its capture time, measured from the first
// and divided by the speed, has passed; a datagram already late goes at
// once, so a slow start does not stretch the rest. Failed sends are
// counted and the play goes on. It returns early with an error when ctx
// ends, the capture cannot be read, or a socket cannot be opened.
func (s *Sender) Send(ctx context.Context, path string) error {
	var (
		start    bool
		capture0 time.Time // capture time of the first flow datagram
		wall0    time.Time // clock reading when it was sent
		clock    = s.opts.Clock
		paced    = s.opts.Speed > 0
		speed    = s.opts.Speed
	)
	_, err := ReadCapture(path, func(d Datagram) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if DetectFormat(d.Payload) == flow.FormatUnknown {
			s.stats.NonFlow++
			return nil
		}
		i, err := s.exporter(d.Src.Addr().Unmap())
		if err != nil {
			return err
		}
		if i < 0 {
			s.stats.Errors.ExporterLimit++
			return nil
		}
		if paced {
			if !start {
				start, capture0, wall0 = true, d.Time, clock.Now()
			} else {
				due := wall0.Add(time.Duration(float64(d.Time.Sub(capture0)) / speed))
				if wait := due.Sub(clock.Now()); wait > 0 {
					if err := clock.Sleep(ctx, wait); err != nil {
						return err
					}
				}
			}
		}
		if s.opts.Progress != nil {
			defer s.opts.Progress(&s.stats)
		}
		ex := &s.stats.Exporters[i]
		if _, err := s.conns[i].Write(d.Payload); err != nil {
			ex.Errors++
			if errors.Is(err, syscall.ECONNREFUSED) {
				s.stats.Errors.Refused++
			} else {
				s.stats.Errors.Other++
			}
			if s.stats.FirstError == nil {
				s.stats.FirstError = err
			}
			return nil
		}
		ex.Datagrams++
		ex.Bytes += int64(len(d.Payload))
		s.stats.Datagrams++
		s.stats.Bytes += int64(len(d.Payload))
		return nil
	})
	return err
}

// exporter returns the index of an exporter's socket, opening it on first
// sight, or -1 past MaxSendExporters.
func (s *Sender) exporter(a netip.Addr) (int, error) {
	if i, ok := s.byExporter[a]; ok {
		return i, nil
	}
	if len(s.conns) >= MaxSendExporters {
		return -1, nil
	}
	src := LoopbackSource(a, s.opts.Target.Addr().Is6(), s.taken)
	// A connected socket: a "port unreachable" answer comes back as
	// ECONNREFUSED on a later send, which tells the operator that nothing
	// listens on the target.
	conn, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(s.opts.Target))
	if err != nil {
		return 0, fmt.Errorf("open a socket from %s (for exporter %s) to %s: %w (the target must be an address of this host)", src, a, s.opts.Target, err)
	}
	s.taken[src] = true
	s.byExporter[a] = len(s.conns)
	s.conns = append(s.conns, conn)
	s.stats.Exporters = append(s.stats.Exporters, SendExporter{Exporter: a, Source: src})
	return len(s.conns) - 1, nil
}

// LoopbackSource chooses the loopback address an exporter's datagrams are
// sent from, given the addresses already taken (which it does not update).
//
// To an IPv4 target, exporter a.b.c.d is sent from 127.b.c.d, and an IPv6
// exporter from 127 followed by its last three bytes (2001:db8::a:b0c from
// 127.10.11.12). When that address is taken
// by an earlier exporter, or its last byte is 0 or 255 (127.0.0.0 and
// broadcast-like addresses are avoided), the next address up is tried,
// wrapping within 127.0.0.0/8. The same captures in the same order always
// give the same addresses.
//
// To an IPv6 target, every exporter is sent from ::1, the only IPv6
// loopback address: they differ only by source port, and a collector that
// keys exporters by address (as Kapkan's does) sees a single exporter.
func LoopbackSource(exporter netip.Addr, target6 bool, taken map[netip.Addr]bool) netip.Addr {
	if target6 {
		return netip.IPv6Loopback()
	}
	var v uint32
	if a := exporter.Unmap(); a.Is4() {
		b := a.As4()
		v = uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	} else {
		b := a.As16()
		v = uint32(b[13])<<16 | uint32(b[14])<<8 | uint32(b[15])
	}
	for range 1 << 24 {
		if last := v & 0xff; last != 0 && last != 0xff {
			src := netip.AddrFrom4([4]byte{127, byte(v >> 16), byte(v >> 8), byte(v)})
			if !taken[src] {
				return src
			}
		}
		v = (v + 1) & 0xffffff
	}
	// Unreachable: MaxSendExporters is far below the 2^24 addresses.
	return netip.AddrFrom4([4]byte{127, 0, 0, 1})
}
