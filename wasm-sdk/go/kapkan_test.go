package kapkan

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kapkan-io/kapkan/rules"
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
	if got, want := jsonNames(reflect.TypeFor[Vector]()), jsonNames(reflect.TypeFor[rules.Vector]()); !slices.Equal(got, want) {
		t.Errorf("Vector fields %v, rules.Vector %v", got, want)
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
