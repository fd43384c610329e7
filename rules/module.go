package rules

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/rules/wasm"
)

// loadModule reads the module a rule or ladder of file fname (in src)
// names and loads it with host.
func loadModule(host *wasm.Host, src Source, fname, name string, spec *Module, role wasm.Role) (*wasm.Module, error) {
	var (
		read    func() ([]byte, error)
		display string
	)
	switch {
	case filepath.IsAbs(spec.WASM) && !src.Builtin:
		display = spec.WASM
		read = func() ([]byte, error) { return os.ReadFile(spec.WASM) }
	default:
		p := path.Join(path.Dir(fname), spec.WASM)
		display = path.Join(src.Name, p)
		if !src.Builtin {
			display = filepath.Join(src.Name, filepath.FromSlash(p))
		}
		if !fs.ValidPath(p) {
			return nil, fmt.Errorf("%s: the path leaves the rule directory (want a path inside it, or an absolute one)", spec.WASM)
		}
		read = func() ([]byte, error) { return fs.ReadFile(src.FS, p) }
	}
	limits, err := spec.Limits.limits()
	if err != nil {
		return nil, err
	}
	var config json.RawMessage
	if spec.Config != nil {
		if config, err = json.Marshal(spec.Config); err != nil {
			return nil, fmt.Errorf("config: %v (want a mapping of plain values)", err)
		}
	}
	return host.LoadFrom(context.Background(), read, wasm.Options{Name: name, File: display, Role: role,
		Limits: limits, SHA256: spec.SHA256, Config: config})
}

// newPayload is the part of a call's payload every module of a
// classification shares.
func newPayload(f *Features) *wasm.Payload {
	attack, _ := json.Marshal(f) // plain values only: cannot fail
	return &wasm.Payload{Attack: attack, Sample: f.sample}
}

// classifyModule calls a classifier module and checks what it says as a
// rule file would be checked: kebab-case labels and a valid vector.
func classifyModule(ctx context.Context, m *wasm.Module, p *wasm.Payload) (wasm.ClassifyResult, *flowspec.Match, error) {
	var vec *flowspec.Match
	res, err := m.ClassifyContext(ctx, p, func(r *wasm.ClassifyResult) error {
		var msgs []string
		for _, l := range r.Labels {
			if !labelName.MatchString(l) {
				msgs = append(msgs, fmt.Sprintf("label %q is not kebab-case", l))
			}
		}
		if len(r.Vector) > 0 && string(r.Vector) != "null" {
			var v flowspec.Match
			dec := json.NewDecoder(bytes.NewReader(r.Vector))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&v); err != nil {
				msgs = append(msgs, fmt.Sprintf("vector: %v", err))
			} else {
				for _, m := range checkVector(&v) {
					msgs = append(msgs, "vector: "+m)
				}
				vec = &v
			}
		}
		if len(msgs) > 0 {
			return errors.New(strings.Join(msgs, "; "))
		}
		return nil
	})
	return res, vec, err
}

// modulePolicy is a ladder whose decisions come from a WASM module.
type modulePolicy struct {
	m *wasm.Module
}

// Decide asks the module what action the attack needs, within the
// module's timeout. An invalid decision is an error of that call (counted
// as bad_output). While the module is suspended after repeated failures,
// Decide returns at once an error wrapping wasm.ErrSuspended without
// running it; like any error of Decide, the policy tracker then keeps the
// attack's action as it is.
func (p *modulePolicy) Decide(in PolicyInput) (PolicyDecision, error) {
	var f Features
	if in.Features != nil {
		f = *in.Features
	}
	payload := newPayload(&f)
	verdict := struct {
		Labels []string        `json:"labels"`
		Vector *flowspec.Match `json:"vector,omitempty"`
	}{Labels: in.Labels}
	if verdict.Labels == nil {
		verdict.Labels = []string{}
	}
	if !in.Vector.IsZero() {
		verdict.Vector = &in.Vector
	}
	payload.Verdict, _ = json.Marshal(verdict)
	payload.Current = &wasm.Current{Action: in.Current.String(), RateMbps: in.RateMbps, SinceSeconds: in.Since.Seconds()}
	res, err := p.m.Decide(payload, checkDecision)
	if err != nil {
		return PolicyDecision{}, err
	}
	action, _ := flowspec.ParseAction(res.Action) // checked by checkDecision
	return PolicyDecision{Action: action, RateMbps: res.RateMbps, Reason: res.Reason}, nil
}

// checkDecision accepts what a ladder step could say, or no action.
func checkDecision(r *wasm.DecideResult) error {
	_, err := parseAction(r.Action, r.RateMbps, true)
	return err
}

// Modules returns the names of the rules and ladders that run a WASM
// module.
func (s *Set) Modules() []string {
	out := make([]string, len(s.modules))
	for i, m := range s.modules {
		out[i] = m.Name()
	}
	return out
}

// Close releases the set's WASM modules once their calls in flight are
// done. A set that is simply dropped releases them too, when it (and every
// ladder taken from it) is no longer referenced; Close is for sets whose
// end is known, like a replay's. Classifying with a closed set skips its
// WASM rules (each skip counted as a closed call).
func (s *Set) Close() error {
	for _, m := range s.modules {
		_ = m.Close()
	}
	return nil
}
