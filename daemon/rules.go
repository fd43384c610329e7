package daemon

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/api"
	"github.com/kapkan-io/kapkan/builtin"
	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/pipeline"
	"github.com/kapkan-io/kapkan/rules"
	"github.com/kapkan-io/kapkan/rules/wasm"
)

// ruleRuntime holds the daemon's compiled rule set. A reload compiles the
// new set off to the side (WASM modules compiled and instantiated too) and
// swaps it in only when it has no error; the running set keeps classifying
// meanwhile and after a failed reload. A replaced set is not closed here:
// calls may still be running on it and policy trackers may hold its
// ladders, so its WASM modules are released when nothing references them
// any more (see rules.Set.Close).
type ruleRuntime struct {
	dirs []string
	log  *slog.Logger
	set  atomic.Pointer[rules.Set]
	wasm *wasm.Host

	mu      sync.Mutex // serialises reloads
	sum     [32]byte   // checksum of the files the running set came from
	lastErr atomic.Pointer[error]
	// last is the outcome of the last reload, for the API.
	last atomic.Pointer[api.ReloadView]

	// pub, when set, receives the outcome of each reload as an event (the
	// daemon's event log renders it); without it, reloads are logged here.
	pub pipeline.Publisher

	metrics *reloadMetrics
	// shadow: the runtime of the shadow rule set, which has no set at all
	// while it has no directory.
	shadow bool
}

func newRuleRuntime(dirs []string, log *slog.Logger, reg prometheus.Registerer) (*ruleRuntime, error) {
	r := &ruleRuntime{
		dirs: dirs,
		log:  log.With("component", "rules"),
		wasm: wasm.NewHost(log),
	}
	r.metrics = newReloadMetrics(reg, "rules", "rule set")
	if reg != nil {
		reg.MustRegister(r.wasm.Collectors()...)
	}
	if err := r.load(); err != nil {
		return nil, err
	}
	r.log.Info("rules loaded", "rules", len(r.Set().Rules()), "wasm_modules", len(r.Set().Modules()), "disabled", len(r.Set().Disabled()), "dirs", dirs)
	return r, nil
}

// newShadowRuntime builds the runtime of the shadow rule set (dirs may be
// empty: no shadow set until a reload names some). It shares the WASM host
// of the active rules, reports its reloads in kapkan_shadow_* metrics and
// the log, and publishes no event: a shadow set tells no one anything.
func newShadowRuntime(dirs []string, log *slog.Logger, reg prometheus.Registerer, host *wasm.Host) (*ruleRuntime, error) {
	r := &ruleRuntime{dirs: dirs, log: log.With("component", "rules", "set", "shadow"), wasm: host, shadow: true}
	r.metrics = newReloadMetrics(reg, "shadow", "shadow rule set")
	if err := r.load(); err != nil {
		return nil, fmt.Errorf("shadow: %w", err)
	}
	if set := r.Set(); set != nil {
		r.log.Info("shadow rules loaded", "rules", len(set.Rules()), "wasm_modules", len(set.Modules()), "disabled", len(set.Disabled()), "dirs", dirs)
	}
	return r, nil
}

func (r *ruleRuntime) load() error {
	set, sum, err := r.compile()
	if err != nil {
		return err
	}
	r.set.Store(set)
	r.sum = sum
	r.last.Store(&api.ReloadView{OK: true, At: time.Now().UTC(), Trigger: "start", Errors: []string{}})
	return nil
}

// Set returns the running rule set.
func (r *ruleRuntime) Set() *rules.Set { return r.set.Load() }

// LastError returns the error of the last failed reload, or nil.
func (r *ruleRuntime) LastError() error {
	if p := r.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (r *ruleRuntime) compile() (*rules.Set, [32]byte, error) {
	sum, err := r.checksum()
	if err != nil {
		return nil, sum, err
	}
	if r.shadow && len(r.dirs) == 0 {
		return nil, sum, nil // no shadow set
	}
	srcs, err := RuleSources(r.dirs)
	if err != nil {
		return nil, sum, err
	}
	set, err := rules.CompileWith(r.wasm, srcs...)
	return set, sum, err
}

// ruleSources are the operator directories, then the built-in rules.
func RuleSources(dirs []string) ([]rules.Source, error) {
	var srcs []rules.Source
	for _, d := range dirs {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("%s: not a rule directory", d)
		}
		srcs = append(srcs, rules.Dir(d))
	}
	return append(srcs, rules.Source{FS: builtin.Classify(), Name: "builtin", Builtin: true}), nil
}

// Reload recompiles the rules. why says what triggered it (for the log).
func (r *ruleRuntime) Reload(why string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reload(why)
}

// reloadDirs recompiles the rules from dirs (a configuration reload); on
// an error the running rules and directories stay.
func (r *ruleRuntime) reloadDirs(dirs []string, why string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.dirs
	r.dirs = dirs
	if err := r.reload(why); err != nil {
		r.dirs = old
		return err
	}
	return nil
}

func (r *ruleRuntime) reload(why string) error {
	set, sum, err := r.compile()
	if err != nil {
		r.metrics.failed()
		r.lastErr.Store(&err)
		r.sum = sum // do not retry the same broken files every poll
		var es rules.Errors
		lv := &api.ReloadView{At: time.Now().UTC(), Trigger: why, Errors: []string{err.Error()}}
		if errors.As(err, &es) {
			lv.Errors = lv.Errors[:0]
			for _, e := range es {
				lv.Errors = append(lv.Errors, e.Error())
			}
		}
		r.last.Store(lv)
		if r.pub != nil {
			ev := &events.Reload{What: "rules", Trigger: why, Err: err.Error()}
			if errors.As(err, &es) {
				for _, e := range es {
					ev.Errors = append(ev.Errors, e.Error())
				}
			}
			r.pub.Publish(events.Event{Kind: events.RulesReloaded, Reload: ev})
			return err
		}
		if errors.As(err, &es) {
			for _, e := range es {
				r.log.Error("rule reload failed, keeping the running rules", "trigger", why, "file", e.File, "line", e.Line,
					"col", e.Col, "rule", e.Rule, "err", e.Msg)
			}
		} else {
			r.log.Error("rule reload failed, keeping the running rules", "trigger", why, "err", err)
		}
		return err
	}
	r.set.Store(set)
	r.sum = sum
	r.lastErr.Store(nil)
	r.last.Store(&api.ReloadView{OK: true, At: time.Now().UTC(), Trigger: why, Errors: []string{}})
	r.metrics.succeeded()
	if r.pub != nil && set != nil {
		r.pub.Publish(events.Event{Kind: events.RulesReloaded, Reload: &events.Reload{What: "rules", OK: true, Trigger: why,
			Rules: len(set.Rules()), WASMModules: len(set.Modules()), Disabled: len(set.Disabled())}})
		return nil
	}
	if set == nil {
		r.log.Info("shadow rules off", "trigger", why)
		return nil
	}
	r.log.Info("rules reloaded", "trigger", why, "rules", len(set.Rules()), "wasm_modules", len(set.Modules()), "disabled", len(set.Disabled()))
	return nil
}

// checksum hashes the names and contents of every rule file and WASM
// module, so that a rebuilt module is reloaded like an edited rule.
func (r *ruleRuntime) checksum() ([32]byte, error) {
	h := sha256.New()
	for _, d := range r.dirs {
		var files []string
		err := filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if ext := filepath.Ext(p); !e.IsDir() && (ext == ".yaml" || ext == ".wasm") {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return [32]byte{}, err
		}
		sort.Strings(files)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return [32]byte{}, err
			}
			h.Write([]byte(f))
			h.Write(b)
		}
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s, nil
}

// Watch reloads when the files change, polling every interval (asked
// again after each poll: a configuration reload may change it), until ctx
// ends. It polls the directories of the moment: a configuration reload
// may add or remove some.
func (r *ruleRuntime) Watch(ctx context.Context, every func() time.Duration) error {
	for {
		t := time.NewTimer(every())
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
			r.mu.Lock()
			changed := false
			if len(r.dirs) > 0 {
				sum, err := r.checksum()
				changed = err != nil || sum != r.sum
			}
			r.mu.Unlock()
			if changed {
				_ = r.Reload("file change")
			}
		}
	}
}
