// Package wasm is Kapkan's WebAssembly host: it loads classifier and policy
// modules written against ABI v1 (wasm-sdk/ABI.md) on wazero and calls
// them, in a sandbox built in code. A module is compiled once (through a
// compilation cache shared by every load), its first instance is built and
// its ABI checked at load, so a broken module fails the rule reload rather
// than the first attack. Each call gets an instance of its own from a small
// pool, a memory cap and a deadline; a trap, a timeout or running out of
// memory fails that call only, and the instance is thrown away and rebuilt.
// WASI is there for language runtimes, with no file system and no network;
// the only host function is kapkan_v1.log.
package wasm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// Call results (the result label of kapkan_wasm_calls_total).
const (
	ResultOK         = "ok"
	ResultTimeout    = "timeout"
	ResultMemory     = "memory"
	ResultTrap       = "trap"
	ResultGuestError = "guest_error"
	ResultBadOutput  = "bad_output"
	ResultBusy       = "busy"
	ResultClosed     = "closed"
)

// Load failure reasons (the reason label of kapkan_wasm_load_failures_total).
const (
	ReasonRead          = "read"
	ReasonLimits        = "limits"
	ReasonSHA256        = "sha256"
	ReasonNotWasm       = "not_wasm"
	ReasonImports       = "imports"
	ReasonMissingExport = "missing_export"
	ReasonABI           = "abi"
	ReasonInstantiate   = "instantiate"
)

// CompileConfig is the runtime configuration modules are compiled with,
// cached in cache (nil for none): the settings that change compiled code
// (CloseOnContextDone adds termination checks), so that a cache filled
// elsewhere (wasmtest/warmcache) serves the host. Limits are added per
// module.
func CompileConfig(cache wazero.CompilationCache) wazero.RuntimeConfig {
	c := wazero.NewRuntimeConfig().WithCloseOnContextDone(true)
	if cache != nil {
		c = c.WithCompilationCache(cache)
	}
	return c
}

var callResults = [...]string{ResultOK, ResultTimeout, ResultMemory, ResultTrap, ResultGuestError, ResultBadOutput, ResultBusy, ResultClosed}

var loadReasons = []string{ReasonRead, ReasonLimits, ReasonSHA256, ReasonNotWasm, ReasonImports, ReasonMissingExport, ReasonABI, ReasonInstantiate}

// ErrClosed is the error of a call to a closed module.
var ErrClosed = errors.New("wasm module closed")

// LoadError is why a module could not be loaded.
type LoadError struct {
	File   string
	Reason string // one of the Reason constants
	Msg    string // what was found and what was expected
}

func (e *LoadError) Error() string { return e.File + ": " + e.Msg }

// CallError is why a call failed.
type CallError struct {
	Module string
	Role   Role
	Result string // one of the Result constants but ok
	Err    error
}

func (e *CallError) Error() string {
	return fmt.Sprintf("wasm %s %s: %s: %v", e.Module, e.Role, e.Result, e.Err)
}

func (e *CallError) Unwrap() error { return e.Err }

// Host loads modules. It holds what they share: the compilation cache, the
// metrics and the logger. One per process is enough.
type Host struct {
	cache   wazero.CompilationCache
	log     *slog.Logger
	breaker Breaker

	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	loads    *prometheus.CounterVec
	open     prometheus.GaugeFunc
	openN    atomic.Int64

	suspended   *prometheus.GaugeVec
	suspensions *prometheus.CounterVec
	skipped     *prometheus.CounterVec
}

// NewHost returns a host logging to log (nil: slog.Default()), with the
// default Breaker.
func NewHost(log *slog.Logger) *Host { return NewHostWith(log, Breaker{}) }

// NewHostWith is NewHost with the breaker settings every module it loads
// gets (zero fields: defaults).
func NewHostWith(log *slog.Logger, b Breaker) *Host {
	if log == nil {
		log = slog.Default()
	}
	h := &Host{
		cache:   compilationCache(),
		log:     log.With("component", "wasm"),
		breaker: b.WithDefaults(),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_wasm_calls_total",
			Help: "Calls into WASM modules, by module (rule or ladder name), role (classify, decide) and result (ok, timeout, memory, trap, guest_error, bad_output, busy, closed).",
		}, []string{"module", "role", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kapkan_wasm_call_duration_seconds",
			Help:    "How long calls into WASM modules take, payload encoding and result decoding included.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
		}, []string{"module", "role"}),
		loads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_wasm_load_failures_total",
			Help: "WASM modules that failed to load, by reason (read, limits, sha256, not_wasm, imports, missing_export, abi, instantiate).",
		}, []string{"reason"}),
		suspended: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kapkan_wasm_module_suspended",
			Help: "1 while a WASM module is suspended after repeated failures (its calls are skipped), 0 otherwise.",
		}, []string{"module"}),
		suspensions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_wasm_suspensions_total",
			Help: "Times a WASM module was suspended after repeated failures, or suspended again after a failed trial call.",
		}, []string{"module"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_wasm_skipped_calls_total",
			Help: "Calls into WASM modules not made, by module, role and reason (suspended: the module is suspended; budget: the attack's classification budget was spent).",
		}, []string{"module", "role", "reason"}),
	}
	h.open = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kapkan_wasm_modules_open",
		Help: "WASM modules loaded and not yet released (those of the running rules, and of replaced rules still in use).",
	}, func() float64 { return float64(h.openN.Load()) })
	for _, r := range loadReasons {
		h.loads.WithLabelValues(r)
	}
	return h
}

// CacheDirEnv names the environment variable that, when set, keeps
// compiled modules in that directory too, so that a restart (or another
// test binary) does not compile an unchanged module again.
const CacheDirEnv = "KAPKAN_WASM_CACHE_DIR"

// compilationCache is shared by every host of the process: a module is
// compiled once whichever host loads it (a reload of an unchanged module
// costs an instantiation, not a compilation).
var compilationCache = sync.OnceValue(func() wazero.CompilationCache {
	if dir := os.Getenv(CacheDirEnv); dir != "" {
		if c, err := wazero.NewCompilationCacheWithDir(dir); err == nil {
			return c
		}
		slog.Warn("wasm compilation cache directory unusable, keeping compiled modules in memory only", "component", "wasm", "dir", dir)
	}
	return wazero.NewCompilationCache()
})

var defaultHost = sync.OnceValue(func() *Host { return NewHost(nil) })

// Default is a process-wide host whose metrics nobody registered, for
// short-lived users (replay, rule tests).
func Default() *Host { return defaultHost() }

// Collectors are the host's metrics, to register.
func (h *Host) Collectors() []prometheus.Collector {
	return []prometheus.Collector{h.calls, h.duration, h.loads, h.open, h.suspended, h.suspensions, h.skipped}
}

// OpenModules is how many loaded modules have not been released.
func (h *Host) OpenModules() int { return int(h.openN.Load()) }

// Options say how to load a module.
type Options struct {
	// Name is the rule or ladder the module runs under: the guest sees it,
	// and it labels the metrics.
	Name string
	// File is the module's file, for errors and logs.
	File string
	Role Role
	// Limits (zero fields: defaults).
	Limits Limits
	// SHA256, when set, is the hex digest the module must have.
	SHA256 string
	// Config is the rule's config: mapping, as JSON, passed in every call.
	Config json.RawMessage
}

// Module is a loaded module. Its methods are safe for concurrent use. It is
// released by Close, or when it is no longer referenced (a replaced rule
// set); calls in flight finish first either way.
type Module struct {
	c *core
}

// core is what a Module handle points to; it does not point back, so the
// handle can become unreachable while calls hold the core.
type core struct {
	h        *Host
	opts     Options
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	features uint64 // granted

	idle  chan *instance // instances ready for a call
	slots chan struct{}  // one token per instance that may be built

	refs      atomic.Int64 // the owner's reference plus one per call in flight
	closing   atomic.Bool  // set when the owner lets go: no new call starts
	ownerOnce sync.Once

	logMu   sync.Mutex
	lastLog map[string]time.Time

	calls    [len(callResults)]prometheus.Counter // by callResults
	duration prometheus.Observer
	brk      *breaker
	skipped  map[string]prometheus.Counter // by Skip reason
}

// instance is one instantiated module, used by one call at a time.
type instance struct {
	mod       api.Module
	mem       api.Memory
	alloc, fn api.Function
	free      api.Function
	out       *tail
	logged    int // kapkan_v1.log lines in this call
	log       *slog.Logger
}

var wasmMagic = []byte{0, 'a', 's', 'm'}

// Load compiles a module, builds its first instance and checks it against
// the ABI. A LoadError says why it cannot be used; the failure is counted.
func (h *Host) Load(ctx context.Context, bin []byte, o Options) (*Module, error) {
	m, err := h.load(ctx, bin, o)
	if err != nil {
		var le *LoadError
		if errors.As(err, &le) {
			h.loads.WithLabelValues(le.Reason).Inc()
		}
		return nil, err
	}
	return m, nil
}

// LoadFrom is Load of the bytes read returns; a read that fails is a
// load failure of reason read, counted like the others.
func (h *Host) LoadFrom(ctx context.Context, read func() ([]byte, error), o Options) (*Module, error) {
	bin, err := read()
	if err != nil {
		h.loads.WithLabelValues(ReasonRead).Inc()
		return nil, &LoadError{File: o.File, Reason: ReasonRead, Msg: fmt.Sprintf("read module: %v", err)}
	}
	return h.Load(ctx, bin, o)
}

func (h *Host) load(ctx context.Context, bin []byte, o Options) (*Module, error) {
	fail := func(reason, format string, a ...any) error {
		return &LoadError{File: o.File, Reason: reason, Msg: fmt.Sprintf(format, a...)}
	}
	if err := o.Limits.Check(); err != nil {
		return nil, fail(ReasonLimits, "limits: %v", err)
	}
	o.Limits = o.Limits.WithDefaults()
	if o.SHA256 != "" {
		sum := sha256.Sum256(bin)
		if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, o.SHA256) {
			return nil, fail(ReasonSHA256, "sha256 is %s, the rule file pins %s (rebuilt module? update the pin)", got, strings.ToLower(o.SHA256))
		}
	}
	if len(bin) < 8 || !bytes.Equal(bin[:4], wasmMagic) {
		start := bin[:min(len(bin), 4)]
		return nil, fail(ReasonNotWasm, "not a WebAssembly module: starts with %q, want \"\\x00asm\" (build with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared)", start)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, CompileConfig(h.cache).WithMemoryLimitPages(o.Limits.pages()))
	ok := false
	defer func() {
		if !ok {
			_ = rt.Close(context.Background())
		}
	}()
	compiled, err := rt.CompileModule(ctx, bin)
	if err != nil {
		if strings.Contains(err.Error(), "over limit") {
			return nil, fail(ReasonInstantiate, "needs more memory than memory_mb %d allows: %v", o.Limits.MemoryMB, err)
		}
		return nil, fail(ReasonNotWasm, "not a valid WebAssembly module: %v", err)
	}
	for _, f := range compiled.ImportedFunctions() {
		mod, name, _ := f.Import()
		if mod != wasiModuleName && mod != HostModuleName {
			hint := ""
			if strings.HasPrefix(mod, "kapkan_v") {
				hint = " (a module for another ABI version)"
			}
			return nil, fail(ReasonImports, "imports %s.%s%s; a v1 module may import only from %s and %s", mod, name, hint, wasiModuleName, HostModuleName)
		}
	}
	if _, ok := compiled.ExportedMemories()["memory"]; !ok {
		return nil, fail(ReasonMissingExport, "exports no memory named \"memory\" (ABI v1 needs it)")
	}
	exports := compiled.ExportedFunctions()
	if err := checkExport(exports, "kapkan_abi_version", nil, []api.ValueType{api.ValueTypeI32}); err != nil {
		return nil, fail(ReasonMissingExport, "%v", err)
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return nil, fail(ReasonInstantiate, "wasi: %v", err)
	}
	if _, err := rt.NewHostModuleBuilder(HostModuleName).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(hostLog), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, nil).
		WithParameterNames("level", "ptr", "len").Export("log").Instantiate(ctx); err != nil {
		return nil, fail(ReasonInstantiate, "host module: %v", err)
	}
	c := &core{h: h, opts: o, rt: rt, compiled: compiled,
		idle: make(chan *instance, o.Limits.Instances), slots: make(chan struct{}, o.Limits.Instances),
		lastLog: map[string]time.Time{}}
	for range o.Limits.Instances {
		c.slots <- struct{}{}
	}

	// The first instance: the ABI version first (a v2 module has other
	// exports), then the rest of the exports and the features.
	lctx, cancel := context.WithTimeout(ctx, o.Limits.Timeout+5*time.Second)
	defer cancel()
	<-c.slots
	in, err := c.instantiate(lctx)
	if err != nil {
		return nil, fail(ReasonInstantiate, "first instance: %v%s", err, in.stderr())
	}
	res, err := in.mod.ExportedFunction("kapkan_abi_version").Call(lctx)
	if err != nil {
		return nil, fail(ReasonABI, "kapkan_abi_version: %v%s", err, in.stderr())
	}
	if v := int32(res[0]); v != ABIVersion {
		return nil, fail(ReasonABI, "kapkan_abi_version returned %d, want %d: the module is built for another ABI (this Kapkan serves %s)", v, ABIVersion, HostModuleName)
	}
	i32 := api.ValueTypeI32
	for _, e := range []struct {
		name            string
		params, results []api.ValueType
	}{
		{"kapkan_features", nil, []api.ValueType{api.ValueTypeI64}},
		{"kapkan_alloc", []api.ValueType{i32}, []api.ValueType{i32}},
		{"kapkan_free", []api.ValueType{i32, i32}, nil},
		{o.Role.export(), []api.ValueType{i32, i32}, []api.ValueType{api.ValueTypeI64}},
	} {
		if err := checkExport(exports, e.name, e.params, e.results); err != nil {
			return nil, fail(ReasonMissingExport, "%v (a %s module needs it, see wasm-sdk/ABI.md)", err, o.Role)
		}
	}
	res, err = in.mod.ExportedFunction("kapkan_features").Call(lctx)
	if err != nil {
		return nil, fail(ReasonABI, "kapkan_features: %v%s", err, in.stderr())
	}
	if res[0]&o.Role.feature() == 0 {
		return nil, fail(ReasonMissingExport, "kapkan_features is %#x, without the %s bit: the module does not serve %s (with the Go SDK, set Guest.%s)",
			res[0], o.Role, o.Role.export(), map[Role]string{RoleClassify: "Classify", RoleDecide: "Decide"}[o.Role])
	}
	c.features = res[0] & hostFeatures
	in.bind(o.Role)
	c.idle <- in
	for i, r := range callResults {
		c.calls[i] = h.calls.WithLabelValues(o.Name, o.Role.String(), r)
	}
	c.duration = h.duration.WithLabelValues(o.Name, o.Role.String())
	c.skipped = map[string]prometheus.Counter{}
	for _, r := range []string{SkipSuspended, SkipBudget} {
		c.skipped[r] = h.skipped.WithLabelValues(o.Name, o.Role.String(), r)
	}
	c.brk = newBreaker(h.breaker, h.log, o.Name, h.suspended.WithLabelValues(o.Name), h.suspensions.WithLabelValues(o.Name))
	c.refs.Store(1)
	h.openN.Add(1)
	ok = true
	m := &Module{c: c}
	runtime.AddCleanup(m, func(c *core) { c.dropOwner() }, c)
	return m, nil
}

func checkExport(exports map[string]api.FunctionDefinition, name string, params, results []api.ValueType) error {
	d, ok := exports[name]
	if !ok {
		return fmt.Errorf("no export %s", name)
	}
	if !sameTypes(d.ParamTypes(), params) || !sameTypes(d.ResultTypes(), results) {
		return fmt.Errorf("export %s has type %s, want %s", name, sig(d.ParamTypes(), d.ResultTypes()), sig(params, results))
	}
	return nil
}

func sameTypes(a, b []api.ValueType) bool { return bytes.Equal(a, b) }

func sig(params, results []api.ValueType) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return "(" + strings.Join(s, ", ") + ")"
	}
	return names(params) + " -> " + names(results)
}

// Name is the rule or ladder name the module was loaded under.
func (m *Module) Name() string { return m.c.opts.Name }

// File is the module's file.
func (m *Module) File() string { return m.c.opts.File }

// Features are the feature bits the host honours for the module.
func (m *Module) Features() uint64 { return m.c.features }

// Close releases the module once the calls in flight are done. Calls made
// after Close fail with ErrClosed.
func (m *Module) Close() error {
	m.c.dropOwner()
	return nil
}

func (c *core) dropOwner() {
	c.ownerOnce.Do(func() {
		c.closing.Store(true)
		c.release()
	})
}

// acquire takes a reference for a call; false once the owner has let go
// (calls already in flight finish, new ones do not start).
func (c *core) acquire() bool {
	for {
		if c.closing.Load() {
			return false
		}
		n := c.refs.Load()
		if n <= 0 {
			return false
		}
		if c.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (c *core) release() {
	if c.refs.Add(-1) == 0 {
		_ = c.rt.Close(context.Background()) // closes every instance too
		c.h.openN.Add(-1)
	}
}

// instantiate builds an instance (a slot must have been taken).
func (c *core) instantiate(ctx context.Context) (*instance, error) {
	in := &instance{out: &tail{}, log: c.h.log.With("module", c.opts.Name, "file", c.opts.File)}
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize").
		WithStdout(in.out).WithStderr(in.out)
	mod, err := c.rt.InstantiateModule(withInstance(ctx, in), c.compiled, cfg)
	if err != nil {
		return in, err
	}
	in.mod, in.mem = mod, mod.Memory()
	return in, nil
}

func (in *instance) bind(role Role) {
	in.alloc = in.mod.ExportedFunction("kapkan_alloc")
	in.free = in.mod.ExportedFunction("kapkan_free")
	in.fn = in.mod.ExportedFunction(role.export())
}

func (in *instance) stderr() string {
	if in == nil || in.out == nil || in.out.Len() == 0 {
		return ""
	}
	return "; guest output: " + strings.TrimSpace(in.out.String())
}

// get returns an idle instance, or builds one while fewer than the limit
// exist, or waits for one until ctx ends or off is closed (the module was
// suspended meanwhile: ErrSuspended).
func (c *core) get(ctx context.Context, off <-chan struct{}) (*instance, error) {
	select {
	case in := <-c.idle:
		return in, nil
	default:
	}
	select {
	case in := <-c.idle:
		return in, nil
	case <-c.slots:
		return c.build()
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-off:
		return nil, ErrSuspended
	}
}

// build makes an instance for a slot taken, with the load's deadline
// rather than a call's: a rebuild must not fail for being slower than the
// call that needed it.
func (c *core) build() (*instance, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Limits.Timeout+5*time.Second)
	defer cancel()
	in, err := c.instantiate(ctx)
	if err != nil {
		c.slots <- struct{}{}
		return nil, fmt.Errorf("rebuild instance: %w%s", err, in.stderr())
	}
	in.bind(c.opts.Role)
	return in, nil
}

func (c *core) put(in *instance) { c.idle <- in }

// discard throws an instance away after a failure and builds its
// replacement in the background, so that the next call finds it ready.
func (c *core) discard(in *instance) {
	_ = in.mod.Close(context.Background())
	if !c.acquire() {
		c.slots <- struct{}{}
		return
	}
	go func() {
		defer c.release()
		in, err := c.build()
		if err != nil {
			c.h.log.Error("wasm instance could not be rebuilt; the next call tries again", "module", c.opts.Name, "err", firstLine(err.Error()))
			return
		}
		c.put(in)
	}()
}

// Classify is ClassifyContext without a deadline of the caller's: the
// module's timeout alone bounds the call.
func (m *Module) Classify(p *Payload, check func(*ClassifyResult) error) (ClassifyResult, error) {
	return m.ClassifyContext(context.Background(), p, check)
}

// ClassifyContext calls a classifier. check validates the result (labels,
// vector) beyond its JSON form; its error makes the call a bad_output
// failure. The call ends at the module's timeout or at ctx's deadline,
// whichever comes first, waiting for a free instance included. It is not
// made at all, and returns an error wrapping ErrSuspended or ErrNoBudget,
// when the module is suspended or ctx is already done.
func (m *Module) ClassifyContext(ctx context.Context, p *Payload, check func(*ClassifyResult) error) (ClassifyResult, error) {
	var res ClassifyResult
	err := m.call(ctx, RoleClassify, p, func(out []byte) (string, error) {
		if err := json.Unmarshal(out, &res); err != nil {
			return ResultBadOutput, fmt.Errorf("result is not a classify document: %v", err)
		}
		if res.Error != "" {
			return ResultGuestError, errors.New(res.Error)
		}
		if check != nil && res.Match {
			if err := check(&res); err != nil {
				return ResultBadOutput, err
			}
		}
		return ResultOK, nil
	})
	return res, err
}

// Decide is DecideContext without a deadline of the caller's.
func (m *Module) Decide(p *Payload, check func(*DecideResult) error) (DecideResult, error) {
	return m.DecideContext(context.Background(), p, check)
}

// DecideContext calls a policy. check validates the decision. Deadlines,
// suspension and ErrNoBudget are as for ClassifyContext.
func (m *Module) DecideContext(ctx context.Context, p *Payload, check func(*DecideResult) error) (DecideResult, error) {
	var res DecideResult
	err := m.call(ctx, RoleDecide, p, func(out []byte) (string, error) {
		if err := json.Unmarshal(out, &res); err != nil {
			return ResultBadOutput, fmt.Errorf("result is not a decide document: %v", err)
		}
		if res.Error != "" {
			return ResultGuestError, errors.New(res.Error)
		}
		if check != nil {
			if err := check(&res); err != nil {
				return ResultBadOutput, err
			}
		}
		return ResultOK, nil
	})
	return res, err
}

// call runs one call: take an instance, copy the payload in, call the
// role's export, read the result back and let parse judge it. Failures are
// counted and logged here, and told to the module's breaker; a call the
// breaker refuses, or whose caller has no time left, is not made.
func (m *Module) call(ctx context.Context, role Role, p *Payload, parse func([]byte) (string, error)) error {
	c := m.c
	defer runtime.KeepAlive(m)
	if role != c.opts.Role {
		return fmt.Errorf("wasm %s: loaded as %s, called as %s", c.opts.Name, c.opts.Role, role)
	}
	if !c.acquire() {
		c.count(ResultClosed)
		return &CallError{Module: c.opts.Name, Role: role, Result: ResultClosed, Err: ErrClosed}
	}
	defer c.release()
	if err := ctx.Err(); err != nil {
		c.skipped[SkipBudget].Inc()
		return fmt.Errorf("wasm %s %s: %w (%v)", c.opts.Name, role, ErrNoBudget, err)
	}
	ok, trial := c.brk.allow()
	if !ok {
		c.skipped[SkipSuspended].Inc()
		return fmt.Errorf("wasm %s %s: %w", c.opts.Name, role, ErrSuspended)
	}
	var off <-chan struct{}
	if !trial {
		off = c.brk.suspendedCh()
	}
	failed, reported := true, false
	report := func(failed bool) {
		if !reported {
			reported = true
			c.brk.done(trial, failed)
		}
	}
	defer func() { report(failed) }()
	start := time.Now()
	defer func() { c.duration.Observe(time.Since(start).Seconds()) }()
	ctx, cancel := context.WithTimeout(ctx, c.opts.Limits.Timeout)
	defer cancel()
	in, err := c.get(ctx, off)
	if err != nil {
		if errors.Is(err, ErrSuspended) {
			failed = false // not this call's doing
			c.skipped[SkipSuspended].Inc()
			return fmt.Errorf("wasm %s %s: %w", c.opts.Name, role, ErrSuspended)
		}
		result := ResultBusy
		if ctx.Err() == nil {
			result = ResultTrap // the instance could not be rebuilt
		}
		return c.fail(role, result, err, "")
	}
	payload := p.encode(make([]byte, 0, 4096+len(p.sample)), c.features, c.opts.Name, c.opts.Config)
	out, result, err := in.call(withInstance(ctx, in), payload)
	if err != nil {
		stderr := in.stderr()
		// Tell the breaker before the instance is free again: a call
		// waiting for it must see the suspension this failure causes.
		report(true)
		switch result {
		case ResultTimeout, ResultMemory, ResultTrap:
			c.discard(in)
		default:
			c.put(in)
		}
		return c.fail(role, result, err, stderr)
	}
	c.put(in)
	result, err = parse(out)
	if err != nil {
		return c.fail(role, result, err, "")
	}
	failed = false
	c.count(ResultOK)
	return nil
}

func (c *core) count(result string) {
	for i, r := range callResults {
		if r == result {
			c.calls[i].Inc()
			return
		}
	}
}

// logEvery is how often one module logs one kind of failure.
const logEvery = 10 * time.Second

// firstLine drops wazero's WebAssembly stack trace: the guest's own output
// says more.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func (c *core) fail(role Role, result string, err error, stderr string) error {
	c.count(result)
	c.logMu.Lock()
	now := time.Now()
	logIt := now.Sub(c.lastLog[result]) >= logEvery
	if logIt {
		c.lastLog[result] = now
	}
	c.logMu.Unlock()
	if logIt {
		c.h.log.Error("wasm call failed, the attack goes on without this module", "module", c.opts.Name, "file", c.opts.File,
			"role", role.String(), "result", result, "err", firstLine(err.Error())+stderr)
	}
	return &CallError{Module: c.opts.Name, Role: role, Result: result, Err: err}
}

// call copies the payload into the instance and calls its export. The
// result string says what went wrong when err is not nil.
func (in *instance) call(ctx context.Context, payload []byte) ([]byte, string, error) {
	in.out.Reset()
	in.logged = 0
	r, err := in.alloc.Call(ctx, uint64(len(payload)))
	if err != nil {
		return nil, in.why(ctx, err), fmt.Errorf("kapkan_alloc: %w", err)
	}
	ptr := uint32(r[0])
	if ptr == 0 {
		return nil, ResultGuestError, fmt.Errorf("kapkan_alloc(%d) returned 0", len(payload))
	}
	if !in.mem.Write(ptr, payload) {
		return nil, ResultBadOutput, fmt.Errorf("kapkan_alloc(%d) returned %#x, outside the memory", len(payload), ptr)
	}
	r, err = in.fn.Call(ctx, uint64(ptr), uint64(len(payload)))
	if err != nil {
		return nil, in.why(ctx, err), err
	}
	if r[0] == 0 {
		return nil, ResultGuestError, errors.New("no result (0)")
	}
	rptr, rlen := uint32(r[0]>>32), uint32(r[0])
	if rlen > maxResult {
		return nil, ResultBadOutput, fmt.Errorf("result of %d bytes, at most %d", rlen, maxResult)
	}
	b, ok := in.mem.Read(rptr, rlen)
	if !ok {
		return nil, ResultBadOutput, fmt.Errorf("result at %#x+%d is outside the memory", rptr, rlen)
	}
	return bytes.Clone(b), ResultOK, nil
}

// why names a failed call: timeout, memory or trap.
func (in *instance) why(ctx context.Context, err error) string {
	var ee *sys.ExitError
	if errors.As(err, &ee) {
		switch ee.ExitCode() {
		case sys.ExitCodeDeadlineExceeded, sys.ExitCodeContextCanceled:
			return ResultTimeout
		}
	}
	if ctx.Err() != nil {
		return ResultTimeout
	}
	if strings.Contains(in.out.String(), "out of memory") || strings.Contains(err.Error(), "out of memory") {
		return ResultMemory
	}
	return ResultTrap
}

type instanceKey struct{}

func withInstance(ctx context.Context, in *instance) context.Context {
	return context.WithValue(ctx, instanceKey{}, in)
}

// Lines kapkan_v1.log keeps per call, and their length.
const (
	maxLogLines = 16
	maxLogLine  = 1024
)

// hostLog is kapkan_v1.log(level, ptr, len).
func hostLog(ctx context.Context, mod api.Module, stack []uint64) {
	in, _ := ctx.Value(instanceKey{}).(*instance)
	if in == nil || in.logged >= maxLogLines {
		return
	}
	in.logged++
	level, ptr, n := int32(stack[0]), uint32(stack[1]), uint32(stack[2])
	b, ok := mod.Memory().Read(ptr, min(n, maxLogLine))
	if !ok {
		return
	}
	l := slog.LevelInfo
	switch level {
	case 0:
		l = slog.LevelDebug
	case 2:
		l = slog.LevelWarn
	case 3:
		l = slog.LevelError
	}
	in.log.Log(ctx, l, "guest: "+string(b))
}

// tail keeps the first and the last bytes written to it: a guest's stdout
// and stderr. A Go panic says what happened at the start of its output,
// other runtimes at the end.
type tail struct {
	head, end []byte
}

const (
	headSize = 2048
	endSize  = 1024
)

func (t *tail) Write(p []byte) (int, error) {
	n := len(p)
	if room := headSize - len(t.head); room > 0 {
		k := min(room, len(p))
		t.head = append(t.head, p[:k]...)
		p = p[k:]
	}
	t.end = append(t.end, p...)
	if len(t.end) > endSize {
		t.end = append(t.end[:0], t.end[len(t.end)-endSize:]...)
	}
	return n, nil
}

func (t *tail) Reset()   { t.head, t.end = t.head[:0], t.end[:0] }
func (t *tail) Len() int { return len(t.head) + len(t.end) }

func (t *tail) String() string {
	if len(t.end) == 0 {
		return string(t.head)
	}
	return string(t.head) + "\n[…]\n" + string(t.end)
}
