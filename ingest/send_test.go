package ingest

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/flow"
	fg "github.com/kapkan-io/kapkan/ingest/flowgen"
	"github.com/kapkan-io/kapkan/internal/testutil"
)

// fakeClock moves only when slept on, and records the sleeps.
type fakeClock struct {
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return ctx.Err()
}

// arrival is one datagram received by the test collector.
type arrival struct {
	from    netip.AddrPort
	payload []byte
}

// collectorSocket opens a UDP socket on 127.0.0.1 with a large buffer.
func collectorSocket(t *testing.T) *net.UDPConn {
	t.Helper()
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	_ = pc.SetReadBuffer(8 << 20)
	return pc
}

// receive reads n datagrams (or until the socket stays silent for a
// second).
func receive(t *testing.T, pc *net.UDPConn, n int) []arrival {
	t.Helper()
	var got []arrival
	buf := make([]byte, 65535)
	for len(got) < n {
		_ = pc.SetReadDeadline(time.Now().Add(time.Second))
		k, from, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Errorf("after %d of %d datagrams: %v", len(got), n, err)
			break
		}
		got = append(got, arrival{from, bytes.Clone(buf[:k])})
	}
	return got
}

// flowPayloads returns the first n flow datagrams of a capture.
func flowPayloads(t *testing.T, path string, n int) [][]byte {
	t.Helper()
	var out [][]byte
	_, err := ReadCapture(path, func(d Datagram) error {
		if len(out) < n && DetectFormat(d.Payload) != flow.FormatUnknown {
			out = append(out, bytes.Clone(d.Payload))
		}
		return nil
	})
	if err != nil || len(out) != n {
		t.Fatalf("%s: %d flow datagrams, %v", path, len(out), err)
	}
	return out
}

// TestSendPacesAndMapsExporters plays a capture made here, with real flow
// payloads from five exporters (two of whose loopback addresses collide,
// one IPv6, one ending in .255) and UDP that is not flow telemetry: every
// flow datagram must arrive unchanged and in order from its exporter's
// loopback address, the others are counted and not sent, and the pacing
// clock is asked for the capture's gaps divided by the speed.
func TestSendPacesAndMapsExporters(t *testing.T) {
	root := filepath.Join(testutil.RepoRoot(t), "testdata", "captures")
	sflow := flowPayloads(t, filepath.Join(root, "sflow-udp-flood", "capture.pcap"), 4)
	nf9 := flowPayloads(t, filepath.Join(root, "netflow9-dns-amplification", "capture.pcap"), 4)
	notFlow := []byte("not flow telemetry, e.g. syslog")
	if DetectFormat(notFlow) != flow.FormatUnknown {
		t.Fatal("the non-flow payload looks like flow telemetry")
	}

	var (
		a  = netip.MustParseAddr("192.0.2.1")         // → 127.0.2.1
		b  = netip.MustParseAddr("10.0.2.1")          // 127.0.2.1 taken → 127.0.2.2
		c  = netip.MustParseAddr("192.0.2.2")         // 127.0.2.2 taken → 127.0.2.3
		d  = netip.MustParseAddr("203.0.113.255")     // .255 and .0 avoided → 127.0.114.1
		e6 = netip.MustParseAddr("2001:db8::a:b0c")   // → 127.10.11.12
		f6 = netip.MustParseAddr("2001:db8:1::a:b0c") // same low bytes → 127.10.11.13
	)
	collector4 := netip.MustParseAddrPort("192.0.2.254:2055")
	collector6 := netip.MustParseAddrPort("[2001:db8::fe]:2055")
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	type pkt struct {
		ms      int // capture time after t0
		from    netip.Addr
		payload []byte
		source  string // loopback source expected; "" for non-flow
	}
	pkts := []pkt{
		{0, a, sflow[0], "127.0.2.1"},
		{0, b, nf9[0], "127.0.2.2"},
		{100, c, nf9[1], "127.0.2.3"},
		{100, a, notFlow, ""},
		{600, d, sflow[1], "127.0.114.1"},
		{590, a, sflow[2], "127.0.2.1"}, // out of order: late, sent at once
		{2600, e6, nf9[2], "127.10.11.12"},
		{2600, f6, nf9[3], "127.10.11.13"},
		{2700, e6, notFlow, ""},
		{10600, b, sflow[3], "127.0.2.2"},
	}
	var capture bytes.Buffer
	pw, err := fg.NewPCAPWriter(&capture)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		dst := collector4
		if p.from.Is6() {
			dst = collector6
		}
		if err := pw.WritePacket(fg.Packet{Time: t0.Add(time.Duration(p.ms) * time.Millisecond),
			Src: netip.AddrPortFrom(p.from, 50000), Dst: dst, Payload: p.payload}); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "mixed.pcap")
	if err := os.WriteFile(path, capture.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		speed  float64
		sleeps []time.Duration
	}{
		// Due times (ms after the first): 0 0 50 300 295 1300 1300 5300;
		// the late one waits for nothing.
		{"twice as fast", 2, []time.Duration{50 * time.Millisecond, 250 * time.Millisecond, time.Second, 4 * time.Second}},
		{"capture pace", 1, []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second, 8 * time.Second}},
		{"as fast as possible", 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc := collectorSocket(t)
			clock := &fakeClock{now: time.Unix(1000, 0)}
			s, err := NewSender(SendOptions{Target: pc.LocalAddr().(*net.UDPAddr).AddrPort(), Speed: tc.speed, Clock: clock})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Send(context.Background(), path); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(clock.sleeps, tc.sleeps) {
				t.Errorf("sleeps %v, want %v", clock.sleeps, tc.sleeps)
			}

			var want []pkt
			for _, p := range pkts {
				if p.source != "" {
					want = append(want, p)
				}
			}
			got := receive(t, pc, len(want))
			ports := map[netip.Addr]uint16{}
			for i := range min(len(got), len(want)) {
				g, w := got[i], want[i]
				if g.from.Addr().String() != w.source || !bytes.Equal(g.payload, w.payload) {
					t.Errorf("datagram %d from %s (%d bytes), want from %s (%d bytes, exporter %s), same bytes",
						i, g.from, len(g.payload), w.source, len(w.payload), w.from)
				}
				if p, ok := ports[g.from.Addr()]; ok && p != g.from.Port() {
					t.Errorf("%s sent from two ports", g.from.Addr())
				}
				ports[g.from.Addr()] = g.from.Port()
			}

			st := s.Stats()
			if st.Datagrams != len(want) || st.NonFlow != 2 || st.Errors.Total() != 0 || st.FirstError != nil {
				t.Errorf("stats %+v, want %d sent, 2 not flow, no error", st, len(want))
			}
			wantEx := []SendExporter{
				{a, netip.MustParseAddr("127.0.2.1"), 2, int64(len(sflow[0]) + len(sflow[2])), 0},
				{b, netip.MustParseAddr("127.0.2.2"), 2, int64(len(nf9[0]) + len(sflow[3])), 0},
				{c, netip.MustParseAddr("127.0.2.3"), 1, int64(len(nf9[1])), 0},
				{d, netip.MustParseAddr("127.0.114.1"), 1, int64(len(sflow[1])), 0},
				{e6, netip.MustParseAddr("127.10.11.12"), 1, int64(len(nf9[2])), 0},
				{f6, netip.MustParseAddr("127.10.11.13"), 1, int64(len(nf9[3])), 0},
			}
			if !slices.Equal(st.Exporters, wantEx) {
				t.Errorf("exporters\n got %+v\nwant %+v", st.Exporters, wantEx)
			}
			var bytesSent int64
			for _, e := range wantEx {
				bytesSent += e.Bytes
			}
			if st.Bytes != bytesSent {
				t.Errorf("%d bytes, want %d", st.Bytes, bytesSent)
			}
		})
	}
}

// TestSendRealCapture plays a whole capture of testdata as fast as
// possible: the collector receives exactly its flow datagrams, in order and
// byte for byte, from the one mapped exporter address.
func TestSendRealCapture(t *testing.T) {
	path := filepath.Join(testutil.RepoRoot(t), "testdata", "captures", "netflow9-dns-amplification", "capture.pcap")
	var want [][]byte
	if _, err := ReadCapture(path, func(d Datagram) error {
		if DetectFormat(d.Payload) != flow.FormatUnknown {
			want = append(want, bytes.Clone(d.Payload))
		}
		return nil
	}); err != nil || len(want) < 1000 {
		t.Fatalf("%d datagrams, %v", len(want), err)
	}
	pc := collectorSocket(t)
	// Speed 0: as fast as possible (the capture spans 50 s).
	s, err := NewSender(SendOptions{Target: pc.LocalAddr().(*net.UDPAddr).AddrPort()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	done := make(chan []arrival)
	go func() { done <- receive(t, pc, len(want)) }()
	if err := s.Send(context.Background(), path); err != nil {
		t.Fatal(err)
	}
	got := <-done
	if len(got) != len(want) {
		t.Fatalf("received %d datagrams, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].from.Addr() != netip.MustParseAddr("127.0.2.2") || !bytes.Equal(got[i].payload, want[i]) {
			t.Fatalf("datagram %d from %s differs from the capture's", i, got[i].from)
		}
	}
	if st := s.Stats(); st.Datagrams != len(want) || len(st.Exporters) != 1 || st.Exporters[0].Exporter != netip.MustParseAddr("192.0.2.2") {
		t.Errorf("stats %+v", st)
	}
}

// TestSendReportsRefusals plays to a port nothing listens on: the sends
// the kernel refuses are counted as such, the play goes on to the end.
func TestSendReportsRefusals(t *testing.T) {
	pc := collectorSocket(t)
	target := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close() // nothing listens there now
	path := filepath.Join(testutil.RepoRoot(t), "testdata", "captures", "sflow-udp-flood", "capture.pcap")
	s, err := NewSender(SendOptions{Target: target, Speed: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Send(context.Background(), path); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Errors.Refused == 0 || st.Errors.Other != 0 || !errors.Is(st.FirstError, syscall.ECONNREFUSED) ||
		st.Datagrams+st.Errors.Total() != 2800 || st.Exporters[0].Errors != st.Errors.Refused {
		t.Errorf("stats %+v, want refusals counted and 2800 datagrams tried", st)
	}
}

func TestSendStops(t *testing.T) {
	path := filepath.Join(testutil.RepoRoot(t), "testdata", "captures", "sflow-udp-flood", "capture.pcap")
	pc := collectorSocket(t)
	ctx, cancel := context.WithCancel(context.Background())
	clock := &fakeClock{now: time.Unix(1000, 0)}
	s, err := NewSender(SendOptions{Target: pc.LocalAddr().(*net.UDPAddr).AddrPort(), Speed: 1, Clock: clockFunc{clock, func() {
		if len(clock.sleeps) == 3 {
			cancel()
		}
	}}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Send(ctx, path); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want the context's error", err)
	}
	if st := s.Stats(); st.Datagrams == 0 || st.Datagrams >= 2800 {
		t.Errorf("sent %d datagrams before the stop", st.Datagrams)
	}

	// A target that is not an address of this host cannot be reached from
	// loopback: refused at once, and the error says why.
	if _, err := NewSender(SendOptions{Target: netip.MustParseAddrPort("198.51.100.7:2055")}); err == nil || !strings.Contains(err.Error(), "address of this host") {
		t.Errorf("remote target: %v", err)
	}
	for _, bad := range []string{"0.0.0.0:2055", "127.0.0.1:0"} {
		if _, err := NewSender(SendOptions{Target: netip.MustParseAddrPort(bad)}); err == nil {
			t.Errorf("target %s accepted", bad)
		}
	}
}

// clockFunc calls after on every sleep.
type clockFunc struct {
	*fakeClock
	after func()
}

func (c clockFunc) Sleep(ctx context.Context, d time.Duration) error {
	c.after()
	return c.fakeClock.Sleep(ctx, d)
}

func TestLoopbackSource(t *testing.T) {
	taken := map[netip.Addr]bool{netip.MustParseAddr("127.0.0.1"): true, netip.MustParseAddr("127.255.255.254"): true}
	for _, tc := range []struct {
		exporter string
		target6  bool
		want     string
	}{
		{"192.0.2.1", false, "127.0.2.1"},
		{"::ffff:192.0.2.1", false, "127.0.2.1"},
		{"10.0.0.1", false, "127.0.0.2"},       // 127.0.0.1 taken
		{"10.0.0.0", false, "127.0.0.2"},       // no .0
		{"10.255.255.254", false, "127.0.0.2"}, // taken, .255, wraps past .0.0.0 and the taken .1
		{"10.1.2.255", false, "127.1.3.1"},
		{"2001:db8::a:b0c", false, "127.10.11.12"},
		{"192.0.2.1", true, "::1"},
		{"2001:db8::1", true, "::1"},
	} {
		if got := LoopbackSource(netip.MustParseAddr(tc.exporter), tc.target6, taken); got.String() != tc.want {
			t.Errorf("%s → %s, want %s", tc.exporter, got, tc.want)
		}
	}
}
