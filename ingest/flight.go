package ingest

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"time"
)

// The flight recorder's write side: every reading goroutine keeps the raw
// datagrams it received in a ring of its own (a byte arena allocated once,
// overwritten oldest first), so that when an attack is detected the
// telemetry of the seconds before is still there. Writing costs one copy
// per datagram, no allocation, and one uncontended lock per batch of
// datagrams read (recvmmsg), never per record; only the reader (the
// incident recorder, about once a second while an attack is being recorded)
// ever contends for it. NetFlow v9 and IPFIX datagrams that carry templates
// (and the data of options templates, where exporters send their sampling
// rate) are also kept aside, the latest per exporter, observation domain
// and template, so that a capture cut from the ring can be decoded.

// FlightDefaultRingBytes is the arena of one ring when none is given.
const FlightDefaultRingBytes = 4 << 20

// flightAsideSlots bounds the template datagrams kept aside per ring.
const flightAsideSlots = 64

// Flight is the set of rings of a process, one per reading goroutine.
type Flight struct {
	ringBytes int
	mu        sync.Mutex // guards rings (added when a worker starts)
	rings     []*FlightRing
}

// NewFlight returns a flight recorder whose rings each hold ringBytes of
// datagrams (FlightDefaultRingBytes when 0 or less).
func NewFlight(ringBytes int) *Flight {
	if ringBytes <= 0 {
		ringBytes = FlightDefaultRingBytes
	}
	return &Flight{ringBytes: ringBytes}
}

// RingBytes is the arena of one ring.
func (f *Flight) RingBytes() int { return f.ringBytes }

// Ring allocates a new ring for one writer and registers it.
func (f *Flight) Ring() *FlightRing {
	n := f.ringBytes
	// One entry per 128 bytes of arena: flow datagrams are rarely smaller,
	// and a smaller datagram only shortens the span the ring covers.
	ents := max(n/128, 64)
	r := &FlightRing{arena: make([]byte, n), ents: make([]flightEntry, ents)}
	f.mu.Lock()
	f.rings = append(f.rings, r)
	f.mu.Unlock()
	return r
}

// FlightCursor is how far a reader has read each ring.
type FlightCursor []uint64

// Read calls fn, ring after ring, for every datagram still held that was
// written after cur (with the ring's index and the datagram's sequence
// number in it) and is not older than from, and returns the cursor past
// them, with the number of datagrams after cur that the rings overwrote
// before they could be read (0 when cur is nil: a first read). Payloads are
// copies the callee may keep.
func (f *Flight) Read(cur FlightCursor, from time.Time, fn func(ring int, seq uint64, d Datagram)) (FlightCursor, int) {
	f.mu.Lock()
	rings := f.rings
	f.mu.Unlock()
	next := make(FlightCursor, len(rings))
	lost := 0
	for i, r := range rings {
		var after uint64
		first := cur == nil
		if i < len(cur) {
			after = cur[i]
		}
		var l int
		next[i], l = r.read(after, first, from.UnixNano(), func(seq uint64, d Datagram) { fn(i, seq, d) })
		lost += l
	}
	return next, lost
}

// Aside calls fn with every template datagram kept aside (copies), oldest
// first per ring.
func (f *Flight) Aside(fn func(Datagram)) {
	f.mu.Lock()
	rings := f.rings
	f.mu.Unlock()
	for _, r := range rings {
		r.aside(fn)
	}
}

// FlightRing is one writer's ring. Its writer calls Begin, Add for each
// datagram, then End; readers go through Flight.
type FlightRing struct {
	mu    sync.Mutex
	arena []byte
	wpos  uint64 // absolute position in the arena where the next datagram goes
	ents  []flightEntry
	seq   uint64 // datagrams written

	slots [flightAsideSlots]asideSlot
	// optIDs are the options template ids seen, per exporter and domain:
	// the data sets of those ids carry sampling rates and are kept aside.
	optIDs [flightAsideSlots]optionsID
	nopt   int
	tick   uint64 // orders aside slots for replacement
}

type flightEntry struct {
	pos uint64 // absolute arena position of the payload
	n   uint32
	at  int64 // receive time, Unix ns
	src netip.Addr
}

// asideKey names a kept-aside datagram: exporter, version, domain and the
// first template (or options data) set id it carries.
type asideKey struct {
	src     netip.Addr
	version uint16
	domain  uint32
	id      uint16
	data    bool // options data, not a template
}

type asideSlot struct {
	key  asideKey
	used uint64 // tick of the last write, 0 when empty
	at   int64
	src  netip.Addr
	data []byte
}

type optionsID struct {
	src     netip.Addr
	version uint16
	domain  uint32
	id      uint16
}

// Begin locks the ring for a batch of Add calls.
func (r *FlightRing) Begin() { r.mu.Lock() }

// End unlocks the ring after Begin.
func (r *FlightRing) End() { r.mu.Unlock() }

// Add copies one datagram into the ring (between Begin and End). A
// datagram larger than a quarter of the arena is not kept.
func (r *FlightRing) Add(src netip.Addr, at time.Time, payload []byte) {
	n := len(payload)
	size := uint64(len(r.arena))
	if n == 0 || uint64(n) > size/4 {
		return
	}
	off := r.wpos % size
	if off+uint64(n) > size { // no room at the end: wrap to the start
		r.wpos += size - off
		off = 0
	}
	copy(r.arena[off:], payload)
	e := &r.ents[r.seq%uint64(len(r.ents))]
	e.pos, e.n, e.at, e.src = r.wpos, uint32(n), at.UnixNano(), src
	r.wpos += uint64(n)
	r.seq++
	if len(payload) >= 4 {
		if v := binary.BigEndian.Uint16(payload); v == 9 || v == 10 {
			r.keepTemplates(src, at, payload, v)
		}
	}
}

// valid reports whether the datagram seq s is still held.
func (r *FlightRing) valid(s uint64) bool {
	if s >= r.seq || r.seq-s > uint64(len(r.ents)) {
		return false
	}
	e := &r.ents[s%uint64(len(r.ents))]
	return e.pos+uint64(len(r.arena)) >= r.wpos
}

func (r *FlightRing) read(after uint64, first bool, from int64, fn func(uint64, Datagram)) (uint64, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	lost := 0
	start := after
	if first {
		start = 0
	}
	// The oldest datagram still held.
	oldest := r.seq - min(r.seq, uint64(len(r.ents)))
	for oldest < r.seq && !r.valid(oldest) {
		oldest++
	}
	if start < oldest {
		if !first {
			lost = int(oldest - start)
		}
		start = oldest
	}
	size := uint64(len(r.arena))
	for s := start; s < r.seq; s++ {
		e := &r.ents[s%uint64(len(r.ents))]
		if e.at < from {
			continue
		}
		off := e.pos % size
		fn(s, Datagram{Time: time.Unix(0, e.at), Src: netip.AddrPortFrom(e.src, 0), Payload: append([]byte(nil), r.arena[off:off+uint64(e.n)]...)})
	}
	return r.seq, lost
}

func (r *FlightRing) aside(fn func(Datagram)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	idx := make([]int, 0, flightAsideSlots)
	for i := range r.slots {
		if r.slots[i].used != 0 {
			idx = append(idx, i)
		}
	}
	// Oldest first, so that a later template replaces an earlier one when
	// the datagrams are decoded in this order.
	for i := 1; i < len(idx); i++ {
		for j := i; j > 0 && r.slots[idx[j]].used < r.slots[idx[j-1]].used; j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
	for _, i := range idx {
		s := &r.slots[i]
		fn(Datagram{Time: time.Unix(0, s.at), Src: netip.AddrPortFrom(s.src, 0), Payload: append([]byte(nil), s.data...)})
	}
}

// keepTemplates keeps a NetFlow v9 or IPFIX datagram aside when one of its
// sets is a template, an options template, or the data of an options
// template seen before. It walks the set headers only.
func (r *FlightRing) keepTemplates(src netip.Addr, at time.Time, p []byte, version uint16) {
	hdr, domainAt := 20, 16 // NetFlow v9: source id at 16
	tmpl, optTmpl := uint16(0), uint16(1)
	if version == 10 {
		hdr, domainAt = 16, 12 // IPFIX: observation domain at 12
		tmpl, optTmpl = 2, 3
	}
	if len(p) < hdr {
		return
	}
	domain := binary.BigEndian.Uint32(p[domainAt:])
	addr := src
	keep, keyID, data := false, uint16(0), false
	for off := hdr; off+4 <= len(p); {
		id := binary.BigEndian.Uint16(p[off:])
		n := int(binary.BigEndian.Uint16(p[off+2:]))
		if n < 4 || off+n > len(p) {
			break
		}
		switch {
		case id == tmpl || id == optTmpl:
			// The first template id in the set names the slot.
			tid := uint16(0)
			if off+6 <= len(p) {
				tid = binary.BigEndian.Uint16(p[off+4:])
			}
			if !keep {
				keep, keyID = true, tid
			}
			if id == optTmpl {
				r.noteOptions(optionsID{addr, version, domain, tid})
			}
		case id >= 256 && r.isOptions(optionsID{addr, version, domain, id}):
			if !keep {
				keep, keyID, data = true, id, true
			}
		}
		off += n
	}
	if !keep {
		return
	}
	key := asideKey{addr, version, domain, keyID, data}
	r.tick++
	victim := 0
	for i := range r.slots {
		s := &r.slots[i]
		if s.used != 0 && s.key == key {
			victim = i
			break
		}
		if s.used < r.slots[victim].used {
			victim = i
		}
	}
	s := &r.slots[victim]
	s.key, s.used, s.at, s.src = key, r.tick, at.UnixNano(), src
	s.data = append(s.data[:0], p...) // grows only for a larger datagram
}

func (r *FlightRing) noteOptions(o optionsID) {
	if r.isOptions(o) {
		return
	}
	r.optIDs[r.nopt%len(r.optIDs)] = o
	r.nopt++
}

func (r *FlightRing) isOptions(o optionsID) bool {
	for i := range min(r.nopt, len(r.optIDs)) {
		if r.optIDs[i] == o {
			return true
		}
	}
	return false
}
