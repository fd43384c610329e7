package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestBatchReader sends datagrams of known contents from IPv4 and IPv6
// sources and checks that recvmmsg returns each one whole, in order, with
// its source, flags a datagram longer than the buffer, and allocates
// nothing per read.
func TestBatchReader(t *testing.T) {
	for _, tc := range []struct{ name, listen, from string }{
		{"ipv4", "127.0.0.1:0", "127.0.0.1"},
		{"ipv6", "[::1]:0", "::1"},
		{"dual stack", ":0", "127.0.0.1"}, // arrives as ::ffff:127.0.0.1
	} {
		t.Run(tc.name, func(t *testing.T) {
			lc, err := net.ListenPacket("udp", tc.listen)
			if err != nil {
				t.Fatal(err)
			}
			defer lc.Close()
			conn := lc.(*net.UDPConn)
			rc, err := conn.SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			const batch, size = 8, 64
			r := newBatchReader(rc, batch, size)
			port := conn.LocalAddr().(*net.UDPAddr).Port
			out, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.ParseIP(tc.from), Port: port})
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			payload := func(i int) []byte { return []byte(fmt.Sprintf("datagram %03d", i)) }

			// 20 datagrams and one longer than the buffer: three reads of
			// up to 8.
			const total = 20
			for i := range total {
				if _, err := out.Write(payload(i)); err != nil {
					t.Fatal(err)
				}
			}
			long := bytes.Repeat([]byte("x"), size+10)
			if _, err := out.Write(long); err != nil {
				t.Fatal(err)
			}
			wantSrc := netip.MustParseAddr(tc.from)
			got := 0
			sawLong := false
			deadline := time.Now().Add(5 * time.Second)
			for got <= total && time.Now().Before(deadline) {
				n, err := r.read()
				if err != nil {
					t.Fatal(err)
				}
				if n < 1 || n > batch {
					t.Fatalf("read returned %d datagrams, want 1..%d", n, batch)
				}
				for i := range n {
					p, truncated, src := r.datagram(i)
					if src != wantSrc {
						t.Fatalf("datagram %d from %v, want %v", got, src, wantSrc)
					}
					if got == total {
						if !truncated || len(p) != size || !bytes.Equal(p, long[:size]) {
							t.Fatalf("long datagram: truncated=%v len=%d", truncated, len(p))
						}
						sawLong = true
					} else if truncated || !bytes.Equal(p, payload(got)) {
						t.Fatalf("datagram %d = %q (truncated %v), want %q", got, p, truncated, payload(got))
					}
					got++
				}
			}
			if !sawLong {
				t.Fatalf("read %d datagrams, want %d", got, total+1)
			}

			// Reads allocate nothing: queue two full batches, read one to
			// warm up and measure the second.
			for i := range 2 * batch {
				if _, err := out.Write(payload(i)); err != nil {
					t.Fatal(err)
				}
			}
			allocs := testing.AllocsPerRun(1, func() {
				if n, err := r.read(); err != nil || n != batch {
					t.Fatalf("read = %d, %v; want %d", n, err, batch)
				}
			})
			if allocs != 0 {
				t.Errorf("a read of %d datagrams allocates %v times, want 0", batch, allocs)
			}
		})
	}
}

// TestBatchReaderClosed checks that a read on a closed socket ends with
// net.ErrClosed, which the listener takes as its signal to stop.
func TestBatchReaderClosed(t *testing.T) {
	lc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := lc.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	r := newBatchReader(rc, 4, 64)
	done := make(chan error, 1)
	go func() { _, err := r.read(); done <- err }()
	time.Sleep(50 * time.Millisecond) // let it wait in the poller
	lc.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read on a closed socket: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read did not return after Close")
	}
}
