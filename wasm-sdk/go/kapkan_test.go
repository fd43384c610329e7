package kapkan

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/rules"
	"github.com/kapkan-io/kapkan/rules/wasm"
)

// jsonNames returns the JSON names of a struct's exported fields.
func jsonNames(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// TestAttackIsFeatures: the SDK's Attack has every feature the host sends,
// and nothing else.
func TestAttackIsFeatures(t *testing.T) {
	got, want := jsonNames(reflect.TypeFor[Attack]()), jsonNames(reflect.TypeFor[rules.Features]())
	if !slices.Equal(got, want) {
		t.Errorf("Attack fields %v\nFeatures fields %v", got, want)
	}
	if got, want := jsonNames(reflect.TypeFor[Vector]()), jsonNames(reflect.TypeFor[flowspec.Match]()); !slices.Equal(got, want) {
		t.Errorf("Vector fields %v, flowspec.Match %v", got, want)
	}
}

func TestDispatch(t *testing.T) {
	defer Register(Guest{})
	payload := []byte(`{"abi":1,"features":5,"module":"m","config":{"n":3},"attack":{"target":"203.0.113.1/32","udp_share":0.9,
		"top_src_ports":[{"port":3702,"share":0.8}]},"sample":[{"src":"198.51.100.1","sp":3702,"dp":9,"proto":17,"bytes":1400,"pkts":1,"rate":100}],
		"unknown_future_field":true}`)
	Register(Guest{
		Classify: func(in *Input) (Verdict, error) {
			var cfg struct{ N int }
			if err := in.DecodeConfig(&cfg); err != nil {
				return Verdict{}, err
			}
			if cfg.N != 3 || in.Attack.SrcPortShare(3702) != 0.8 || in.Attack.DstPortShare(1) != 0 || len(in.Sample) != 1 || in.Sample[0].SamplingRate != 100 {
				t.Errorf("input %+v config %+v", in, cfg)
			}
			return Verdict{Match: true, Labels: []string{"x"}, Vector: &Vector{Protocol: "udp"}}, nil
		},
		Sample: true,
	})
	if f := Features(); f != FeatureClassify|FeatureSample {
		t.Errorf("features %#x", f)
	}
	for _, tc := range []struct {
		name    string
		role    int
		payload string
		want    string
	}{
		{"classify", roleClassify, string(payload), `{"match":true,"labels":["x"],"vector":{"protocol":"udp"}}`},
		{"no decide handler", roleDecide, string(payload), `{"error":"this module registered no handler for the call"}`},
		{"not json", roleClassify, "{", `{"error":"decode payload: unexpected end of JSON input"}`},
	} {
		if got := string(dispatch(tc.role, []byte(tc.payload))); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
	Register(Guest{Decide: func(in *Input) (Decision, error) {
		return Decision{Action: ActionRateLimit, RateMbps: 100, Reason: in.Current.Action}, nil
	}})
	got := dispatch(roleDecide, []byte(`{"current":{"action":"blackhole"}}`))
	var d Decision
	if err := json.Unmarshal(got, &d); err != nil || d != (Decision{Action: ActionRateLimit, RateMbps: 100, Reason: "blackhole"}) {
		t.Errorf("decide: %s %v", got, err)
	}
	Logf(LevelInfo, "host-side log line %d", 1)
}

// TestParseSample: the sample parser reads what the host writes exactly as
// encoding/json would, and copes with what a later minor version may add.
func TestParseSample(t *testing.T) {
	var recs []flow.Record
	for i := range 50 {
		recs = append(recs, flow.Record{Src: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}).As16(),
			Dst: netip.MustParseAddr("2001:db8::1").As16(), SrcPort: uint16(i * 1000), DstPort: 53, Proto: uint8(6 + i%12),
			TCPFlags: uint8(i % 3), Bytes: uint64(i) << 33, Packets: uint64(i + 1), SamplingRate: 100,
			Flags: flow.FlagHasIP | map[bool]uint8{true: flow.FlagFragment}[i%5 == 0]})
	}
	recs = append(recs, flow.Record{Proto: 17, Packets: 1}) // no addresses
	for _, doc := range [][]byte{
		wasm.AppendSample(nil, recs),
		[]byte(` [ ] `),
		[]byte(`[{"src":"a\"b","sp":1,"future":{"x":[1,2]},"frag":false} , {}]`),
	} {
		got, err := parseSample(doc)
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		var want []Record
		if err := json.Unmarshal(doc, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("parse %s:\n got %+v\nwant %+v", doc, got, want)
		}
	}
	for _, bad := range []string{`[`, `[{"sp":-1}]`, `[{"sp":1]`, `{}`, `[{"src":"x}]`, `[{"frag":maybe}]`} {
		if _, err := parseSample([]byte(bad)); err == nil {
			t.Errorf("%s parsed", bad)
		}
	}
	// A whole payload: the head through encoding/json, the sample by hand.
	var in Input
	payload := append([]byte(`{"abi":1,"config":{"sample":1},"attack":{"samples":51},"sample":`), wasm.AppendSample(nil, recs)...)
	if err := decodeInput(append(payload, '}'), &in); err != nil || len(in.Sample) != 51 || in.Attack.Samples != 51 || string(in.Config) != `{"sample":1}` {
		t.Errorf("decodeInput: %v %+v", err, in)
	}
}

// BenchmarkDecodeInput is the guest's decoding of a payload with a full
// sample, run natively (under WebAssembly it is several times slower).
func BenchmarkDecodeInput(b *testing.B) {
	var recs []flow.Record
	for i := range 2000 {
		recs = append(recs, flow.Record{Src: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}).As16(), Dst: netip.MustParseAddr("203.0.113.30").As16(),
			SrcPort: 3702, DstPort: uint16(i), Proto: 17, Bytes: 1300, Packets: 1, SamplingRate: 100, Flags: flow.FlagHasIP})
	}
	payload := append([]byte(`{"abi":1,"attack":{"samples":2000},"sample":`), wasm.AppendSample(nil, recs)...)
	payload = append(payload, '}')
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		var in Input
		if err := decodeInput(payload, &in); err != nil || len(in.Sample) != 2000 {
			b.Fatal(err)
		}
	}
}
