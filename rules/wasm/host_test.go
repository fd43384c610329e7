package wasm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/rules/wasm/wasmtest"
)

// syncBuffer is a log destination for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newTestHost(t testing.TB) (*Host, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	return NewHost(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))), logs
}

// sample makes n records of a WS-Discovery reflection towards 203.0.113.30.
func sample(n int) []flow.Record {
	recs := make([]flow.Record, n)
	dst := netip.MustParseAddr("203.0.113.30").As16()
	for i := range recs {
		src := netip.AddrFrom4([4]byte{198, 51, byte(100 + i%50), byte(1 + i%200)}).As16()
		recs[i] = flow.Record{Src: src, Dst: dst, SrcPort: 3702, DstPort: uint16(1024 + i), Proto: 17,
			Bytes: 1400, Packets: 1, SamplingRate: 100, Flags: flow.FlagHasIP}
	}
	return recs
}

func payload(n int) *Payload {
	return &Payload{Attack: json.RawMessage(fmt.Sprintf(`{"target":"203.0.113.30/32","samples":%d,"mbps":1200,"udp_share":1}`, n)),
		Sample: sample(n)}
}

func load(t *testing.T, h *Host, bin []byte, o Options) *Module {
	t.Helper()
	if o.Name == "" {
		o.Name = "test-module"
	}
	if o.File == "" {
		o.File = "test.wasm"
	}
	m, err := h.Load(context.Background(), bin, o)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func calls(h *Host, module, role, result string) float64 {
	return testutil.ToFloat64(h.calls.WithLabelValues(module, role, result))
}

var kebab = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

func checkLabels(r *ClassifyResult) error {
	for _, l := range r.Labels {
		if !kebab.MatchString(l) {
			return fmt.Errorf("label %q is not kebab-case", l)
		}
	}
	return nil
}

// TestConformance runs the conformance guest through every ABI function and
// every call result it can produce.
func TestConformance(t *testing.T) {
	bin := wasmtest.One(t, "conformance")
	h, logs := newTestHost(t)

	t.Run("classify", func(t *testing.T) {
		m := load(t, h, bin, Options{Name: "conf", Role: RoleClassify,
			Config: json.RawMessage(`{"label":"extra-label","vector":{"protocol":"udp","src_ports":["3702"]}}`)})
		if m.Features() != FeatureClassify|FeatureDecide|FeatureSample {
			t.Errorf("features %#x", m.Features())
		}
		res, err := m.Classify(payload(2000), checkLabels)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Match || strings.Join(res.Labels, ",") != "conformance,extra-label" || string(res.Vector) != `{"protocol":"udp","src_ports":["3702"]}` {
			t.Errorf("result %+v vector %s", res, res.Vector)
		}
		if !strings.Contains(logs.String(), "guest: classify conf for 203.0.113.30/32: 2000 records") {
			t.Errorf("kapkan_v1.log line missing from the log:\n%s", logs)
		}
		if got := calls(h, "conf", "classify", ResultOK); got != 1 {
			t.Errorf("ok calls %v", got)
		}
	})

	t.Run("decide", func(t *testing.T) {
		m := load(t, h, bin, Options{Name: "conf-policy", Role: RoleDecide, Config: json.RawMessage(`{"action":"blackhole"}`)})
		p := payload(10)
		p.Verdict = json.RawMessage(`{"labels":["amplification"],"vector":{"protocol":"udp"}}`)
		p.Current = &Current{Action: "flowspec-discard", SinceSeconds: 60}
		res, err := m.Decide(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Action != "blackhole" || res.Reason != `labels [amplification], current "flowspec-discard" for 60s` {
			t.Errorf("decision %+v", res)
		}
	})

	t.Run("alloc and free", func(t *testing.T) {
		m := load(t, h, bin, Options{Name: "conf-mem", Role: RoleClassify})
		in, err := m.c.get(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer m.c.put(in)
		ctx := context.Background()
		var ptrs []uint64
		for _, size := range []uint64{0, 1, 4096, 1 << 20} {
			r, err := in.alloc.Call(ctx, size)
			if err != nil || r[0] == 0 {
				t.Fatalf("kapkan_alloc(%d) = %v, %v", size, r, err)
			}
			if size > 0 && !in.mem.Write(uint32(r[0]), bytes.Repeat([]byte{'x'}, int(size))) {
				t.Fatalf("kapkan_alloc(%d) = %#x, not writable", size, r[0])
			}
			ptrs = append(ptrs, r[0])
		}
		for i, p := range ptrs {
			if _, err := in.free.Call(ctx, p, uint64(i)); err != nil {
				t.Fatalf("kapkan_free: %v", err)
			}
		}
		// A buffer that was freed is not a payload any more: no result.
		r, err := in.fn.Call(ctx, ptrs[2], 10)
		if err != nil || r[0] != 0 {
			t.Errorf("classify on a freed buffer = %v, %v, want 0", r, err)
		}
	})

	t.Run("sandbox", func(t *testing.T) {
		m := load(t, h, bin, Options{Name: "conf-sandbox", Role: RoleClassify, Config: json.RawMessage(`{"mode":"sandbox"}`)})
		res, err := m.Classify(payload(1), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(res.Labels, ","); got != "conformance,no-fs,no-net,no-env" {
			t.Errorf("the guest reached outside its sandbox: %s", got)
		}
	})

	t.Run("sample only when asked", func(t *testing.T) {
		p := payload(3)
		with := string(p.encode(nil, FeatureClassify|FeatureSample, "x", nil))
		without := string(p.encode(nil, FeatureClassify, "x", nil))
		if !strings.Contains(with, `"sample":[{"src":"198.51.100.1","dst":"203.0.113.30","sp":3702,"dp":1024,"proto":17,"bytes":1400,"pkts":1,"rate":100}`) {
			t.Errorf("payload with sample: %s", with)
		}
		if strings.Contains(without, `"sample":`) {
			t.Errorf("payload without the sample bit: %s", without)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(with), &v); err != nil {
			t.Errorf("payload is not JSON: %v", err)
		}
	})

	for _, tc := range []struct {
		mode, result string
		timeout      time.Duration
	}{
		{"error", ResultGuestError, 0},
		{"bad_label", ResultBadOutput, 0},
		{"panic", ResultTrap, 0},
		{"spin", ResultTimeout, 500 * time.Millisecond},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			name := "conf-" + strings.ReplaceAll(tc.mode, "_", "-")
			m := load(t, h, bin, Options{Name: name, Role: RoleClassify, Limits: Limits{Timeout: tc.timeout, Instances: 1},
				Config: json.RawMessage(`{"mode":"` + tc.mode + `","spin":1000000000000}`)})
			for i := range 2 { // the second call works on a rebuilt instance
				waitIdle(t, m)
				_, err := m.Classify(payload(5), checkLabels)
				var ce *CallError
				if !errors.As(err, &ce) || ce.Result != tc.result {
					t.Fatalf("call %d: error %v, want a %s", i, err, tc.result)
				}
			}
			if got := calls(h, name, "classify", tc.result); got != 2 {
				t.Errorf("%s calls %v, want 2", tc.result, got)
			}
		})
	}
}

// TestBadModules: each module of testdata/wasm/bad is refused at load or
// contained at call time, with the counter of its failure kind increased,
// and a good module loaded next to it keeps working.
func TestBadModules(t *testing.T) {
	bins := wasmtest.Build(t, "conformance", "bad/loop", "bad/membomb", "bad/trap", "bad/wrongabi", "bad/missingexport")
	notWasm := readBad(t, "not-wasm.wasm")
	truncated := readBad(t, "truncated.wasm")
	h, logs := newTestHost(t)
	good := load(t, h, bins["conformance"], Options{Name: "good", Role: RoleClassify})

	for _, tc := range []struct {
		name, reason, want string
		bin                []byte
	}{
		{"wrong abi version", ReasonABI, "kapkan_abi_version returned 2, want 1", bins["bad/wrongabi"]},
		{"missing export", ReasonMissingExport, "no export kapkan_classify", bins["bad/missingexport"]},
		{"not wasm", ReasonNotWasm, `starts with "kapk"`, notWasm},
		{"truncated", ReasonNotWasm, "not a valid WebAssembly module", truncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(h.loads.WithLabelValues(tc.reason))
			_, err := h.Load(context.Background(), tc.bin, Options{Name: "bad", File: "bad.wasm", Role: RoleClassify})
			var le *LoadError
			if !errors.As(err, &le) || le.Reason != tc.reason || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "bad.wasm: ") {
				t.Fatalf("load error %v, want a %s error with %q", err, tc.reason, tc.want)
			}
			if got := testutil.ToFloat64(h.loads.WithLabelValues(tc.reason)); got != before+1 {
				t.Errorf("kapkan_wasm_load_failures_total{reason=%q} = %v, want %v", tc.reason, got, before+1)
			}
		})
	}

	for _, tc := range []struct {
		name, guest, result string
		limits              Limits
	}{
		{"infinite loop", "bad/loop", ResultTimeout, Limits{Timeout: time.Second, Instances: 1}},
		{"memory bomb", "bad/membomb", ResultMemory, Limits{MemoryMB: 16, Timeout: 5 * time.Second, Instances: 1}},
		{"trap", "bad/trap", ResultTrap, Limits{Instances: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := strings.ReplaceAll(tc.name, " ", "-")
			m := load(t, h, bins[tc.guest], Options{Name: name, Role: RoleClassify, Limits: tc.limits})
			for i := range 2 {
				waitIdle(t, m)
				_, err := m.Classify(payload(20), nil)
				var ce *CallError
				if !errors.As(err, &ce) || ce.Result != tc.result {
					t.Fatalf("call %d: %v, want a %s", i, err, tc.result)
				}
				// The good module is unaffected.
				if res, err := good.Classify(payload(20), nil); err != nil || !res.Match {
					t.Fatalf("good module after %s: %+v %v", tc.name, res, err)
				}
			}
			if got := calls(h, name, "classify", tc.result); got != 2 {
				t.Errorf("kapkan_wasm_calls_total{result=%q} = %v, want 2", tc.result, got)
			}
		})
	}
	if !strings.Contains(logs.String(), "wasm call failed") || !strings.Contains(logs.String(), "out of memory") {
		t.Errorf("failures not logged with the guest's output:\n%s", logs)
	}
}

// waitIdle waits until every instance of m is built and idle (after a
// failure, the replacement is built in the background).
func waitIdle(t *testing.T, m *Module) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(m.c.idle) < cap(m.c.idle) && len(m.c.slots) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the instance was not rebuilt")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func readBad(t *testing.T, name string) []byte {
	t.Helper()
	b, err := readFile("../../testdata/wasm/bad/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCloseUnderLoad is a hammer test: goroutines call one module while it
// is closed. Calls in flight finish, later ones fail as closed (never with
// another error), and the runtime is closed once the last call is done.
func TestCloseUnderLoad(t *testing.T) {
	h, _ := newTestHost(t)
	m, err := h.Load(context.Background(), wasmtest.One(t, "conformance"),
		Options{Name: "hammer", Role: RoleClassify, Limits: Limits{Instances: 2, Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	const workers = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, closed := 0, 0
	started := make(chan struct{}, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			for {
				res, err := m.Classify(payload(20), nil)
				if first {
					started <- struct{}{}
					first = false
				}
				var ce *CallError
				switch {
				case err == nil && res.Match:
					mu.Lock()
					ok++
					mu.Unlock()
				case errors.As(err, &ce) && ce.Result == ResultClosed && errors.Is(err, ErrClosed):
					mu.Lock()
					closed++
					mu.Unlock()
					return
				default:
					t.Errorf("call: %+v %v", res, err)
					return
				}
			}
		}()
	}
	for range workers {
		<-started
	}
	if h.OpenModules() != 1 {
		t.Errorf("%d modules open during the calls", h.OpenModules())
	}
	_ = m.Close()
	_ = m.Close() // twice is harmless
	wg.Wait()
	if closed != workers || ok < workers {
		t.Errorf("%d ok calls, %d closed, want at least %d and exactly %d", ok, closed, workers, workers)
	}
	if h.OpenModules() != 0 {
		t.Errorf("%d modules open after the last call", h.OpenModules())
	}
	if got := calls(h, "hammer", "classify", ResultOK); got != float64(ok) {
		t.Errorf("ok counter %v, want %d", got, ok)
	}
}

// TestBusy: with every instance taken until the deadline, a call fails as
// busy instead of waiting for ever.
func TestBusy(t *testing.T) {
	h, _ := newTestHost(t)
	m := load(t, h, wasmtest.One(t, "conformance"), Options{Name: "busy", Role: RoleClassify,
		Limits: Limits{Instances: 1, Timeout: 100 * time.Millisecond}})
	in, err := m.c.get(context.Background(), nil) // as a call in flight would
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Classify(payload(1), nil)
	var ce *CallError
	if !errors.As(err, &ce) || ce.Result != ResultBusy {
		t.Errorf("call: %v, want busy", err)
	}
	m.c.put(in)
	if _, err := m.Classify(payload(1), nil); err != nil {
		t.Errorf("call once the instance is back: %v", err)
	}
}
