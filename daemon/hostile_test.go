package daemon_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/daemon/daemontest"
	"github.com/kapkan-io/kapkan/ingest/demo"
	fg "github.com/kapkan-io/kapkan/ingest/flowgen"
	"github.com/kapkan-io/kapkan/internal/testutil"
)

// hostileKind is one kind of hostile datagram: what it is, and the
// decode-error reason (or refusal kind) it must show up under.
type hostileKind struct {
	name string
	// reason is the kapkan_ingest_decode_errors_total reason it must be
	// counted under; refused the kapkan_ingest_state_refused_total kind.
	reason, refused string
	make            func(rng *rand.Rand, i int) []byte
}

// hostileKinds are garbage, truncated and template-less datagrams of every
// format, and a template flood. Each is generated from rng, differently for
// each i.
func hostileKinds() []hostileKind {
	at := time.Now().Truncate(time.Second)
	f := fg.Flow{Src: netip.MustParseAddr("198.51.100.7"), Dst: netip.MustParseAddr("192.0.2.200"),
		Proto: 17, SrcPort: 53, DstPort: 4444, Packets: 1, Bytes: 512, Start: at, End: at}
	sflow := func(seq uint32) []byte {
		return fg.AppendSFlow(nil, fg.SFlowHeader{Agent: netip.MustParseAddr("127.0.0.1"), SubAgentID: 9, Sequence: seq},
			[]fg.SFlowSample{{Sequence: seq, SourceIndex: 77, SamplingRate: 10, Flow: f}})
	}
	v5, err := fg.AppendNetFlow5(nil, fg.NetFlow5Header{Uptime: time.Hour, Time: at}, []fg.Flow{f, f, f})
	if err != nil {
		panic(err)
	}
	tplV9 := fg.Template{ID: 400, Fields: fg.FlowFields(fg.VersionNetFlow9, fg.IPv4, fg.TimesDefault)}
	tplIPFIX := fg.Template{ID: 400, Fields: fg.FlowFields(fg.VersionIPFIX, fg.IPv4, fg.TimesDefault)}
	random := func(rng *rand.Rand, n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	// cut keeps a random prefix of a valid datagram, header included but
	// not all of it.
	cut := func(rng *rand.Rand, dg []byte, header int) []byte {
		return dg[:header+rng.IntN(len(dg)-header-4)]
	}
	// headed is random bytes after a valid version word.
	headed := func(rng *rand.Rand, version []byte) []byte {
		b := random(rng, 24+rng.IntN(1400))
		copy(b, version)
		return b
	}
	return []hostileKind{
		{name: "random bytes", reason: "unknown_version", make: func(rng *rand.Rand, _ int) []byte {
			b := random(rng, rng.IntN(1500))
			if len(b) >= 2 {
				b[0] = 0xff // never a supported version
			}
			return b
		}},
		{name: "sflow garbage body", reason: "malformed", make: func(rng *rand.Rand, _ int) []byte {
			return headed(rng, []byte{0, 0, 0, 5, 0, 0, 0, 1})
		}},
		{name: "sflow truncated", reason: "truncated", make: func(rng *rand.Rand, i int) []byte {
			return cut(rng, sflow(uint32(i)), 28)
		}},
		{name: "netflow v5 truncated", reason: "truncated", make: func(rng *rand.Rand, _ int) []byte {
			return cut(rng, v5, 24)
		}},
		{name: "netflow v9 garbage body", reason: "malformed", make: func(rng *rand.Rand, _ int) []byte {
			return headed(rng, []byte{0, 9})
		}},
		{name: "ipfix garbage body", reason: "malformed", make: func(rng *rand.Rand, _ int) []byte {
			b := headed(rng, []byte{0, 10})
			b[2], b[3] = byte(len(b)>>8), byte(len(b))
			return b
		}},
		{name: "ipfix truncated", reason: "truncated", make: func(rng *rand.Rand, _ int) []byte {
			return []byte{0, 10, 0, 40, 0, 0}
		}},
		{name: "netflow v9 without template", reason: "pending_dropped", make: func(rng *rand.Rand, i int) []byte {
			e := &fg.Exporter{Version: fg.VersionNetFlow9, DomainID: uint32(i % 3), Now: at, Sequence: uint32(i)}
			return e.Datagram(fg.DataSet(tplV9, f, f))
		}},
		{name: "ipfix without template", reason: "pending_dropped", make: func(rng *rand.Rand, i int) []byte {
			e := &fg.Exporter{Version: fg.VersionIPFIX, DomainID: uint32(i % 3), Now: at, Sequence: uint32(i)}
			return e.Datagram(fg.DataSet(tplIPFIX, f, f))
		}},
		{name: "netflow v9 template flood", reason: "template_limit", refused: "template", make: func(rng *rand.Rand, i int) []byte {
			e := &fg.Exporter{Version: fg.VersionNetFlow9, DomainID: uint32(i % 64), Now: at}
			return e.Datagram(fg.TemplateSet(fg.Template{ID: uint16(256 + i/64%4000), Fields: tplV9.Fields}))
		}},
		{name: "ipfix template flood", reason: "template_limit", refused: "template", make: func(rng *rand.Rand, i int) []byte {
			e := &fg.Exporter{Version: fg.VersionIPFIX, DomainID: uint32(i % 64), Now: at}
			return e.Datagram(fg.TemplateSet(fg.Template{ID: uint16(256 + i/64%4000), Fields: tplIPFIX.Fields}))
		}},
	}
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestHostileTrafficFlood runs the daemon with small ingest caps and, while
// a real SYN flood arrives as sFlow, floods both listeners on loopback as
// fast as one goroutine can send (bounded: floodDatagrams or floodFor,
// whichever ends first) with garbage, truncated and template-less datagrams
// of every format, a template flood, and single datagrams from more
// exporter addresses (127.1.x.y) than ingest.max_exporters. The daemon
// must not crash, must still detect the attack, must count every kind of
// hostile datagram under its decode-error reason and every refusal under
// its kind, and its heap must stay within the caps.
func TestHostileTrafficFlood(t *testing.T) {
	const (
		floodDatagrams = 400_000
		floodFor       = 6 * time.Second
		addrFlood      = 600 // distinct exporter addresses, past maxExporters
		maxExporters   = 200
		maxTemplates   = 500
		maxPending     = 1 << 20
	)
	cfg := daemontest.Config(t, "")
	cfg.Ingest.NetFlow.Listen = "127.0.0.1:0"
	cfg.Ingest.MaxExporters = maxExporters
	cfg.Ingest.MaxTemplates = maxTemplates
	cfg.Ingest.MaxPendingBytes = maxPending
	d, logs := daemontest.Start(t, cfg, "")
	// After the start: the flight recorder's rings and the other
	// preallocated parts are the baseline.
	before := liveHeap()
	addrs := d.FlowAddrs()
	if len(addrs) != 2 {
		t.Fatalf("flow listeners: %v, want sFlow and NetFlow", addrs)
	}
	reg := d.Registry()

	kinds := hostileKinds()
	ctx, cancel := context.WithTimeout(context.Background(), floodFor)
	defer cancel()
	var wg sync.WaitGroup
	var floodErr error
	sent := make([]int, len(kinds))
	wg.Add(1)
	go func() {
		defer wg.Done()
		floodErr = flood(ctx, addrs, kinds, floodDatagrams, addrFlood, sent)
	}()
	// The real attack, paced in real time from 127.0.0.1 while the flood runs.
	daemontest.SendAttack(t, addrs[0], demo.SYNFlood, netip.MustParseAddr("203.0.113.5"), 4*time.Second, 7)
	wg.Wait()
	if floodErr != nil {
		t.Fatalf("flood: %v", floodErr)
	}
	total := 0
	for i, k := range kinds {
		t.Logf("sent %d × %s", sent[i], k.name)
		total += sent[i]
	}

	deadline := time.Now().Add(10 * time.Second)
	for logs.Find("attack detected") == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if det := logs.Find("attack detected"); det == nil || det["target"] != "203.0.113.5/32" {
		t.Errorf("the real attack was not detected under the flood (%v)", det)
	}

	after := liveHeap()
	drops := testutil.MetricSum(t, reg, "kapkan_ingest_socket_drops_total", nil)
	datagrams := testutil.MetricSum(t, reg, "kapkan_ingest_datagrams_total", nil)
	t.Logf("flood: %d datagrams sent in at most %v, %.0f decoded, %.0f dropped by the kernel; heap %d MB before, %d MB after",
		total, floodFor, datagrams, drops, before>>20, after>>20)

	for _, k := range kinds {
		if got := testutil.MetricSum(t, reg, "kapkan_ingest_decode_errors_total", map[string]string{"reason": k.reason}); got == 0 {
			t.Errorf("%s: no decode error with reason %q", k.name, k.reason)
		}
		if k.refused != "" {
			if got := testutil.MetricSum(t, reg, "kapkan_ingest_state_refused_total", map[string]string{"kind": k.refused}); got == 0 {
				t.Errorf("%s: no refusal of kind %q", k.name, k.refused)
			}
		}
	}
	if got := testutil.MetricSum(t, reg, "kapkan_ingest_exporters", nil); got != maxExporters {
		t.Errorf("exporters with state: %v, want the cap %d", got, maxExporters)
	}
	if got := testutil.MetricSum(t, reg, "kapkan_ingest_state_refused_total", map[string]string{"kind": "exporter"}); got == 0 {
		t.Error("no exporter refused past ingest.max_exporters")
	}
	if got := testutil.MetricSum(t, reg, "kapkan_ingest_decode_errors_total", map[string]string{"exporter": "other", "reason": "exporter_limit"}); got == 0 {
		t.Error("no exporter_limit decode error past ingest.max_exporters")
	}
	if got := testutil.MetricSum(t, reg, "kapkan_ingest_decode_errors_total", map[string]string{"reason": "decoder_panic"}); got != 0 {
		t.Errorf("%v decoder panics", got)
	}
	// The caps: exporters at 18 KB, templates at 6 KB, the pending sets,
	// the flight recorder's incident of the one attack (incidents.max_bytes),
	// and 32 MB for everything else the flood and the attack leave (engine
	// state, the flow sample, the event ring, pools).
	bound := uint64(maxExporters*18<<10 + maxTemplates*6<<10 + maxPending + 32<<20 + cfg.Incidents.MaxBytes)
	if after > before && after-before > bound {
		t.Errorf("heap grew by %d MB under the flood, more than the %d MB the caps allow", (after-before)>>20, bound>>20)
	}
}

// flood sends hostile datagrams round-robin over kinds to both listeners
// until n are sent or ctx ends, and one valid sFlow datagram from each of
// addrFlood loopback addresses 127.1.x.y, counting what it sent by kind.
func flood(ctx context.Context, to []netip.AddrPort, kinds []hostileKind, n, addrFlood int, sent []int) error {
	rng := rand.New(rand.NewPCG(19, 3))
	// Pre-generate a pool per kind so that sending, not generating, sets the pace.
	const pool = 512
	dgs := make([][][]byte, len(kinds))
	for k := range kinds {
		for i := range pool {
			dgs[k] = append(dgs[k], kinds[k].make(rng, i))
		}
	}
	conns := make([]*net.UDPConn, len(to))
	for i, a := range to {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(a))
		if err != nil {
			return err
		}
		defer c.Close()
		conns[i] = c
	}
	at := time.Now()
	f := fg.Flow{Src: netip.MustParseAddr("198.51.100.9"), Dst: netip.MustParseAddr("192.0.2.201"),
		Proto: 6, SrcPort: 1234, DstPort: 80, Packets: 1, Bytes: 60, Start: at, End: at}
	spoofed := 0
	for i := 0; i < n && ctx.Err() == nil; i++ {
		k := i % len(kinds)
		// Template floods go past the pool so that ids keep changing.
		var dg []byte
		if kinds[k].refused == "template" {
			dg = kinds[k].make(rng, i/len(kinds))
		} else {
			dg = dgs[k][(i/len(kinds))%pool]
		}
		if _, err := conns[i%len(conns)].Write(dg); err != nil {
			return fmt.Errorf("send %s: %w", kinds[k].name, err)
		}
		sent[k]++
		if i%64 == 0 && spoofed < addrFlood {
			src := netip.AddrFrom4([4]byte{127, 1, byte(spoofed >> 8), byte(spoofed + 1)})
			if err := sendFrom(src, to[0], fg.AppendSFlow(nil, fg.SFlowHeader{Agent: src, Sequence: 1},
				[]fg.SFlowSample{{Sequence: 1, SourceIndex: 1, SamplingRate: 10, Flow: f}})); err != nil {
				return err
			}
			spoofed++
		}
	}
	if spoofed < addrFlood {
		return fmt.Errorf("only %d of %d exporter addresses sent from before the flood ended", spoofed, addrFlood)
	}
	return nil
}

// sendFrom sends one datagram from a socket bound to src.
func sendFrom(src netip.Addr, to netip.AddrPort, dg []byte) error {
	c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(to))
	if err != nil {
		return fmt.Errorf("send from %s: %w", src, err)
	}
	defer c.Close()
	_, err = c.Write(dg)
	return err
}
