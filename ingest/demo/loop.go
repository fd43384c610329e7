package demo

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/kapkan-io/kapkan/flow"
	fg "github.com/kapkan-io/kapkan/ingest/flowgen"
)

// Loop produces a scenario like Generator, with its background built once
// and then replayed: NewLoop generates a period of background datagrams
// (whole seconds, over DistinctHosts), and Next hands them out again tick
// by tick, rewriting in place what a collector checks for continuity —
// the sFlow datagram and sample sequence numbers, sample pools and uptime;
// the NetFlow v9 package sequence, sysUpTime, export time and every
// record's first and last switched times — so that the stream looks like
// one exporter's that never restarts. Attacks (and NetFlow templates) are
// generated live by a Generator without background and numbered in the
// same sequence. Sending then costs a few stores per datagram instead of
// building every sample, which is what lets one core load a collector with
// a million hosts.
//
// Background frames are 132 bytes or longer in a Loop, so every sFlow
// sample carries a full 128-byte header and every background datagram of a
// tick has the same length (the last excepted): a sender may hand a run of
// them to the kernel as one UDP GSO send.
//
// Loop supports sFlow v5 and NetFlow v9.
type Loop struct {
	s      Scenario
	period time.Duration
	live   *Generator
	ticks  [][][]byte // per tick of the period, its background datagrams (into one arena)
	recs   []int      // per tick, its background records
	out    [][]byte
	boot   time.Time
	// NetFlow v9 record layout per template id: length, first and last
	// switched offsets.
	layouts map[uint16]recordLayout

	seq, sampleSeq uint32
	liveRecords    int64

	// FirstSample is, per attack, the time of the tick that carried its
	// first sampled record; -1 until then.
	FirstSample []time.Duration
	// Records counts the flow records sent so far.
	Records int64
	// Bytes is the size of the pre-generated background.
	Bytes int
}

type recordLayout struct{ size, first, last int }

// NewLoop pre-generates period of the scenario's background. The period is
// rounded up to whole seconds, raised so that it holds every host at least
// once, and lowered to the scenario's duration.
func NewLoop(s Scenario, period time.Duration) (*Loop, error) {
	if s.Format != flow.FormatSFlow5 && s.Format != flow.FormatNetFlow9 {
		return nil, fmt.Errorf("pre-generated background: format %s (want sflow5 or netflow9)", s.Format)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.Base.IsZero() {
		s.Base = CaptureStart
	}
	s.DistinctHosts = true
	perSecond := float64(s.BackgroundPPS) / float64(s.SamplingRate)
	if perSecond > 0 {
		period = max(period, time.Duration(float64(s.Hosts)/perSecond*float64(time.Second)))
	}
	period = min(period, s.Duration)
	period = max(time.Second, (period + time.Second - 1).Truncate(time.Second))

	bg := s
	bg.Attacks, bg.Duration = nil, period
	g, err := NewGenerator(bg)
	if err != nil {
		return nil, err
	}
	g.tcpLo, g.tcpSpan, g.udpLo, g.udpSpan = 132, 1332, 132, 348
	live := s
	live.BackgroundPPS = 0
	l := &Loop{s: s, period: period, boot: s.Base.Add(-time.Hour), layouts: map[uint16]recordLayout{}}
	if l.live, err = NewGenerator(live); err != nil {
		return nil, err
	}
	l.FirstSample = l.live.FirstSample
	if s.Format == flow.FormatNetFlow9 {
		for _, t := range []fg.Template{g.tpl4, g.tpl6} {
			l.layouts[t.ID] = layoutOf(t)
		}
	}
	type span struct{ off, n int }
	var arena []byte
	var spans [][]span
	for {
		_, dgs, ok := g.Next()
		if !ok {
			break
		}
		var ds []span
		recs := 0
		for _, d := range dgs {
			n := datagramRecords(s.Format, d, s.Agent.Is6())
			if n < 0 {
				continue // templates and options: the live generator sends them
			}
			ds = append(ds, span{len(arena), len(d)})
			arena = append(arena, d...)
			recs += n
		}
		if len(spans) == 0 {
			// Size the arena once from the first tick (with 10 % to spare).
			arena = append(make([]byte, 0, len(arena)*int(period/tick)*11/10), arena...)
		}
		spans = append(spans, ds)
		l.recs = append(l.recs, recs)
	}
	for _, ds := range spans {
		var dgs [][]byte
		for _, sp := range ds {
			dgs = append(dgs, arena[sp.off:sp.off+sp.n:sp.off+sp.n])
		}
		l.ticks = append(l.ticks, dgs)
	}
	l.Bytes = len(arena)
	return l, nil
}

// Rebase moves the scenario's start to base before the first Next: the
// times written from then on count from it.
func (l *Loop) Rebase(base time.Time) {
	l.s.Base, l.boot = base, base.Add(-time.Hour)
}

// Period returns the length of the pre-generated background.
func (l *Loop) Period() time.Duration { return l.period }

// layoutOf finds a v9 flow template's record length and the offsets of its
// first and last switched times.
func layoutOf(t fg.Template) recordLayout {
	r := recordLayout{first: -1, last: -1}
	for _, f := range t.Fields {
		switch f.ID {
		case fg.IEFlowStartSysUpTime:
			r.first = r.size
		case fg.IEFlowEndSysUpTime:
			r.last = r.size
		}
		r.size += int(f.Len)
	}
	return r
}

// sflowHeaderLen is the length of an sFlow v5 datagram header.
func sflowHeaderLen(agent6 bool) int {
	if agent6 {
		return 40
	}
	return 28
}

// datagramRecords returns how many flow records a generated datagram holds,
// or -1 for a NetFlow datagram that starts with templates.
func datagramRecords(f flow.Format, d []byte, agent6 bool) int {
	if f == flow.FormatSFlow5 {
		return int(binary.BigEndian.Uint32(d[sflowHeaderLen(agent6)-4:]))
	}
	if binary.BigEndian.Uint16(d[20:]) < 256 {
		return -1
	}
	return int(binary.BigEndian.Uint16(d[2:]))
}

// Next returns the datagrams of the next tick and the tick's time, or false
// when the scenario is over: the live ones (templates, attacks), then the
// tick's background. The datagrams are valid until the next call.
func (l *Loop) Next() (time.Duration, [][]byte, bool) {
	at, live, ok := l.live.Next()
	if !ok {
		return 0, nil, false
	}
	i := int((at % l.period) / tick)
	l.out = l.out[:0]
	// The live datagrams first: they carry the NetFlow templates the
	// background needs (the first tick's would otherwise wait or be lost).
	for _, d := range live {
		l.patch(d, at)
		l.out = append(l.out, d)
	}
	for _, d := range l.ticks[i] {
		l.patch(d, at)
		l.out = append(l.out, d)
	}
	l.Records += int64(l.recs[i]) + l.live.Records - l.liveRecords
	l.liveRecords = l.live.Records
	return at, l.out, true
}

func (l *Loop) patch(d []byte, at time.Duration) {
	be := binary.BigEndian
	if l.s.Format == flow.FormatSFlow5 {
		h := sflowHeaderLen(l.s.Agent.Is6())
		l.seq++
		be.PutUint32(d[h-12:], l.seq)
		be.PutUint32(d[h-8:], uint32((time.Hour + at).Milliseconds()))
		n := int(be.Uint32(d[h-4:]))
		for p := h; n > 0 && p+8 <= len(d); n-- {
			format, size := be.Uint32(d[p:]), int(be.Uint32(d[p+4:]))
			body := d[p+8 : min(len(d), p+8+size)]
			pool := -1
			switch format {
			case 1: // flow sample: sequence, source, rate, pool
				pool = 12
			case 3: // expanded: sequence, source type, source index, rate, pool
				pool = 16
			}
			if pool > 0 && len(body) >= pool+4 {
				l.sampleSeq++
				be.PutUint32(body, l.sampleSeq)
				be.PutUint32(body[pool:], l.sampleSeq*be.Uint32(body[pool-4:]))
			}
			p += 8 + size
		}
		return
	}
	// NetFlow v9: header, then sets.
	now := l.s.Base.Add(at)
	export := time.Unix(now.Unix(), 0)
	be.PutUint32(d[4:], uint32(export.Sub(l.boot).Milliseconds()))
	be.PutUint32(d[8:], uint32(export.Unix()))
	be.PutUint32(d[12:], l.seq)
	l.seq++
	ms := uint32(now.Sub(l.boot).Milliseconds())
	for p := 20; p+4 <= len(d); {
		id, size := be.Uint16(d[p:]), int(be.Uint16(d[p+2:]))
		if size < 4 {
			return
		}
		if r, ok := l.layouts[id]; ok && r.first >= 0 && r.last >= 0 {
			for q := p + 4; q+r.size <= min(len(d), p+size); q += r.size {
				be.PutUint32(d[q+r.first:], ms)
				be.PutUint32(d[q+r.last:], ms)
			}
		}
		p += size
	}
}
