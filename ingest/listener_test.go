package ingest

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kapkan-io/kapkan/flow"
)

// lockedSink collects records from several listener goroutines.
type lockedSink struct {
	mu      sync.Mutex
	records []flow.Record
	notify  chan struct{}
}

func (s *lockedSink) Consume(b *flow.Batch) {
	s.mu.Lock()
	s.records = append(s.records, b.Valid()...)
	s.mu.Unlock()
	flow.DefaultPool.Put(b)
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *lockedSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.records)
}

// TestListenerDecodesDatagrams sends real corpus datagrams over loopback to
// a listener with two SO_REUSEPORT sockets and checks every record arrives
// and is counted.
func TestListenerDecodesDatagrams(t *testing.T) {
	for _, tc := range []struct{ name, listen, exporter string }{
		{"ipv4", "127.0.0.1:0", "127.0.0.1"},
		{"ipv6", "[::1]:0", "::1"},
		{"dual stack", ":0", "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) { testListener(t, tc.listen, tc.exporter) })
	}
}

func testListener(t *testing.T, listen, exporter string) {
	dgs := corpusDatagrams(t, flow.FormatSFlow5)
	want := 0
	{
		d := New(Options{}, Deps{Logger: newDiscardLogger()})
		s := &discardSink{}
		b := NewBatcher(nil, s)
		for _, dg := range dgs {
			r, _ := d.Decode(dg.payload, dg.src, dg.time, b)
			want += r.Records
		}
	}
	reg := prometheus.NewRegistry()
	deps := Deps{Registry: reg, Logger: newDiscardLogger()}
	dec := New(Options{}, deps)
	sink := &lockedSink{notify: make(chan struct{}, 1)}
	l, err := NewListener(ListenerConfig{Name: "sflow", Listen: listen, Workers: 2, ReadBuffer: 1 << 20}, dec, sink, nil, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()

	to := &net.UDPAddr{IP: net.ParseIP(exporter), Port: int(l.Addr().Port())}
	conn, err := net.DialUDP("udp", nil, to)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, dg := range dgs {
		if _, err := conn.Write(dg.payload); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Microsecond) // stay far below the socket buffer
	}
	// Wait for every datagram (counter samples give no record) and record.
	datagrams := func() int { return int(testutil.ToFloat64(dec.metrics.datagrams.WithLabelValues(exporter, "sflow5"))) }
	deadline := time.After(10 * time.Second)
	for sink.count() < want || datagrams() < len(dgs) {
		select {
		case <-sink.notify:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("got %d records from %d datagrams, want %d from %d", sink.count(), datagrams(), want, len(dgs))
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := sink.count(); got != want {
		t.Fatalf("got %d records, want %d", got, want)
	}
	if got := datagrams(); got != len(dgs) {
		t.Errorf("kapkan_ingest_datagrams_total = %v, want %d", got, len(dgs))
	}
	if got := testutil.ToFloat64(dec.metrics.records.WithLabelValues(exporter, "sflow5")); int(got) != want {
		t.Errorf("kapkan_ingest_records_total = %v, want %d", got, want)
	}
	// The kernel drop counter is exported for the listener's port.
	n, err := testutil.GatherAndCount(reg, "kapkan_ingest_socket_drops_total")
	if err != nil || n != 1 {
		t.Errorf("socket drops metric: %d series, err %v", n, err)
	}
	for _, r := range sink.records {
		if r.Format != flow.FormatSFlow5 || r.ExporterAddr().String() != exporter {
			t.Fatalf("record with format %s exporter %s", r.Format, r.ExporterAddr())
		}
	}
}

func TestListenerPortInUse(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	dec := New(Options{}, Deps{Logger: newDiscardLogger()})
	_, err = NewListener(ListenerConfig{Name: "netflow", Listen: pc.LocalAddr().String(), Workers: 1}, dec, &discardSink{}, nil, Deps{Logger: newDiscardLogger()})
	if err == nil {
		t.Fatal("listening on a port held by a socket without SO_REUSEPORT must fail")
	}
	if want := "already in use by a program other than kapkan"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q lacks %q", err, want)
	}
}
