package ingest

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

var flightT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// payload is a datagram of n bytes whose first 8 carry i.
func flightPayload(i, n int) []byte {
	p := make([]byte, n)
	binary.BigEndian.PutUint64(p, uint64(i)+1000) // never a NetFlow version
	return p
}

func readAll(f *Flight, cur FlightCursor, from time.Time) ([]int, FlightCursor, int) {
	var got []int
	next, lost := f.Read(cur, from, func(_ int, _ uint64, d Datagram) {
		got = append(got, int(binary.BigEndian.Uint64(d.Payload))-1000)
	})
	return got, next, lost
}

func TestFlightRing(t *testing.T) {
	src := netip.MustParseAddr("192.0.2.1")
	for _, tc := range []struct {
		name     string
		arena    int
		n, size  int // datagrams written, and their size
		readFrom int // read after this many were written (0: only at the end)
		from     time.Duration
		want     []int // datagram numbers read at the end
		lost     int
	}{
		{name: "all held", arena: 64 << 10, n: 10, size: 1000, want: seq(0, 10)},
		// 64 KiB holds 65 datagrams of 1000 bytes, less the tail skipped at
		// the wrap: the 65 newest are still there.
		{name: "oldest overwritten", arena: 64 << 10, n: 200, size: 1000, want: seq(135, 200)},
		{name: "from a time", arena: 64 << 10, n: 10, size: 1000, from: 7 * time.Second, want: seq(7, 10)},
		{name: "after a cursor", arena: 64 << 10, n: 30, size: 1000, readFrom: 20, want: seq(20, 30)},
		{name: "lapped cursor counts the lost", arena: 64 << 10, n: 200, size: 1000, readFrom: 20, want: seq(135, 200), lost: 115},
		{name: "too large for the ring", arena: 64 << 10, n: 3, size: 20000, want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFlight(tc.arena)
			r := f.Ring()
			var cur FlightCursor
			for i := range tc.n {
				if tc.readFrom > 0 && i == tc.readFrom {
					_, cur, _ = readAll(f, nil, time.Time{})
				}
				r.Begin()
				r.Add(src, flightT0.Add(time.Duration(i)*time.Second), flightPayload(i, tc.size))
				r.End()
			}
			got, next, lost := readAll(f, cur, flightT0.Add(tc.from))
			if fmt.Sprint(got) != fmt.Sprint(tc.want) || lost != tc.lost {
				t.Errorf("read %v lost %d, want %v lost %d", got, lost, tc.want, tc.lost)
			}
			if again, _, _ := readAll(f, next, time.Time{}); len(again) != 0 {
				t.Errorf("a second read from the returned cursor gave %v, want nothing", again)
			}
		})
	}
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// v9 builds a NetFlow v9 datagram of source id domain with sets (id, body
// length) in order.
func v9(domain uint32, sets ...[2]uint16) []byte {
	p := make([]byte, 20)
	binary.BigEndian.PutUint16(p, 9)
	binary.BigEndian.PutUint32(p[16:], domain)
	for _, s := range sets {
		set := make([]byte, 4+int(s[1]))
		binary.BigEndian.PutUint16(set, s[0])
		binary.BigEndian.PutUint16(set[2:], uint16(len(set)))
		if len(set) >= 6 {
			binary.BigEndian.PutUint16(set[4:], 256+s[0]) // the template id
		}
		p = append(p, set...)
	}
	return p
}

// TestFlightAside: template datagrams, options templates and the data of
// options templates are kept aside, the latest per exporter, domain and
// template; plain data is not, and a ring overwritten many times over
// still has them.
func TestFlightAside(t *testing.T) {
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	f := NewFlight(64 << 10)
	r := f.Ring()
	add := func(src netip.Addr, p []byte) {
		r.Begin()
		r.Add(src, flightT0, p)
		r.End()
	}
	add(a, v9(1, [2]uint16{0, 8}))            // template 256 from a, domain 1
	add(a, v9(1, [2]uint16{0, 12}))           // a newer template 256: replaces it
	add(a, v9(2, [2]uint16{0, 8}))            // the same id in another domain
	add(b, v9(1, [2]uint16{1, 8}))            // options template 257 from b
	add(b, v9(1, [2]uint16{257, 8}))          // its data: the sampling rate
	add(a, v9(1, [2]uint16{256, 40}))         // data: not kept aside
	add(b, v9(1, [2]uint16{300, 8}))          // data of an unknown template
	add(a, []byte{0, 5, 0, 0, 0, 0, 0, 0, 0}) // NetFlow v5: not kept
	for i := range 500 {                      // lap the ring many times
		add(a, flightPayload(i, 1000))
	}
	var got []string
	f.Aside(func(d Datagram) {
		got = append(got, fmt.Sprintf("%s len %d", d.Src.Addr(), len(d.Payload)))
	})
	want := []string{"192.0.2.1 len 36", "192.0.2.1 len 32", "192.0.2.2 len 32", "192.0.2.2 len 32"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("aside %v, want %v", got, want)
	}
}

// TestFlightAddAllocs: writing a datagram allocates nothing, templates
// included once their slot exists.
func TestFlightAddAllocs(t *testing.T) {
	f := NewFlight(1 << 20)
	r := f.Ring()
	src := netip.MustParseAddr("192.0.2.1")
	data, tmpl := flightPayload(1, 1400), v9(1, [2]uint16{0, 40})
	r.Begin()
	r.Add(src, flightT0, tmpl)
	r.End()
	if n := testing.AllocsPerRun(1000, func() {
		r.Begin()
		r.Add(src, flightT0, data)
		r.Add(src, flightT0, tmpl)
		r.End()
	}); n != 0 {
		t.Errorf("%v allocations per Add, want 0", n)
	}
}

// BenchmarkFlightAdd is the flight recorder's cost per datagram on the
// listener's path: one copy into the ring, under a lock taken once per
// batch of 64 datagrams (a recvmmsg read).
func BenchmarkFlightAdd(b *testing.B) {
	for _, size := range []int{200, 1400} {
		b.Run(fmt.Sprintf("bytes=%d", size), func(b *testing.B) {
			r := NewFlight(FlightDefaultRingBytes).Ring()
			src := netip.MustParseAddr("192.0.2.1")
			p := flightPayload(1, size)
			b.SetBytes(int64(size * 64))
			b.ReportAllocs()
			for b.Loop() {
				r.Begin()
				for range 64 {
					r.Add(src, flightT0, p)
				}
				r.End()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/datagram")
		})
	}
}
