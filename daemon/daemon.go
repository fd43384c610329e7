package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/kapkan-io/kapkan/api"
	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/incident"
	"github.com/kapkan-io/kapkan/ingest"
	"github.com/kapkan-io/kapkan/notify"
	"github.com/kapkan-io/kapkan/pipeline"
	"github.com/kapkan-io/kapkan/store"
)

// eventRingSize is how many events the daemon keeps for its readers (the
// log, and later the API, store and notifiers).
const eventRingSize = 1 << 14

// Role is what a process does. Only RoleAll exists now: the later
// scale-out roles (collector, detector) will build a subset of the
// components here.
type Role string

// RoleAll runs every stage in one process.
const RoleAll Role = "all"

// Deps are what the daemon gets from its caller besides the configuration.
type Deps struct {
	// Logger is the process logger; Level, when set, is its level, which a
	// configuration reload changes.
	Logger *slog.Logger
	Level  *slog.LevelVar
	// ConfigPath is the file the configuration came from ("" for the
	// embedded defaults): a reload reads it again.
	ConfigPath string
	// Demo sends the demo traffic to the sFlow listener.
	Demo bool
	// Version is the program's version, for the start line.
	Version string
	// Role is RoleAll (the default).
	Role Role
	// ExitKeepsRoutes is set by a process that exits when Run returns:
	// the BGP speaker then leaves its sessions to close with the process,
	// without a NOTIFICATION, so that routers with graceful restart keep
	// the routes across a planned restart (bgp.Speaker.Detach). Left
	// false, Run closes the sessions itself (in-process tests).
	ExitKeepsRoutes bool
}

// Daemon is the running process: every component of its role, built from
// one configuration.
type Daemon struct {
	cfgMu    sync.Mutex // guards cfg, which a reload replaces
	reloadMu sync.Mutex // one configuration reload at a time
	cfg      *config.Config
	// started is the configuration the daemon started with: what a reload
	// cannot change is named until the next restart.
	started       *config.Config
	configPath    string
	level         *slog.LevelVar
	reloadMetrics *reloadMetrics
	log           *slog.Logger
	registry      *prometheus.Registry
	decoder       *ingest.Decoder
	engine        *engine.Engine
	rules         *ruleRuntime
	shadow        *ruleRuntime // the shadow rule set (rules.shadow_dirs)
	mit           *Mitigation
	events        *events.Ring
	pipeline      *pipeline.Pipeline
	notify        *notify.Dispatcher
	// history is the store (nil when store.path is empty), writer what
	// fills it from the event ring.
	history   store.Store
	writer    *store.Writer
	listeners []*ingest.Listener
	// incidents is the flight recorder's read side (nil when
	// incidents.ring_bytes is 0).
	incidents *incident.Recorder
	api       *api.Server
	http      *http.Server
	httpLn    net.Listener
	demo      bool
	version   string
	startedAt time.Time // when New ran
	// exitKeepsRoutes: Deps.ExitKeepsRoutes.
	exitKeepsRoutes bool
}

// New builds every component and opens every socket, so that a port in use
// fails the start, but runs nothing: Run does. The configuration is
// validated. Close releases what New opened when Run is not called.
func New(cfg *config.Config, deps Deps) (*Daemon, error) {
	if deps.Role != "" && deps.Role != RoleAll {
		return nil, fmt.Errorf("role %q (want all)", deps.Role)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Daemon{cfg: cfg, started: cfg, log: log, registry: prometheus.NewRegistry(), level: deps.Level,
		configPath: deps.ConfigPath, demo: deps.Demo, version: deps.Version, startedAt: time.Now(),
		exitKeepsRoutes: deps.ExitKeepsRoutes}
	if d.level == nil {
		d.level = new(slog.LevelVar)
	}
	d.reloadMetrics = newReloadMetrics(d.registry, "config", "configuration")
	d.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ideps := ingest.Deps{Registry: d.registry, Logger: log}
	d.decoder = ingest.New(IngestOptions(cfg), ideps)

	// Attack ids count from the start time in microseconds, so that they
	// stay unique across restarts in the history.
	eng, err := engine.New(EngineConfig(cfg), engine.Deps{Registry: d.registry, Logger: log, Pool: flow.DefaultPool,
		FirstID: uint64(d.startedAt.UnixMicro())})
	if err != nil {
		return nil, err
	}
	d.engine = eng
	warnNoThresholds(log, cfg)
	if err := writable(cfg.Mitigation.StateFile, `state_file: "" to keep no state`); err != nil { // see preflight
		return nil, fmt.Errorf("mitigation: %w", err)
	}
	d.events = events.NewRing(eventRingSize, d.registry)
	if d.rules, err = newRuleRuntime(cfg.Rules.Dirs, log, d.registry); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	d.rules.pub = d.events
	if d.shadow, err = newShadowRuntime(cfg.Rules.ShadowDirs, log, d.registry, d.rules.wasm); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	if d.notify, err = notify.New(cfg.Notify, notify.Deps{Events: d.events, Logger: log, Registerer: d.registry}); err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	if err := d.openHistory(cfg); err != nil {
		return nil, err
	}
	built := false
	defer func() {
		if !built && d.history != nil {
			_ = d.history.Close() // the file stays locked until closed
		}
	}()
	if d.mit, err = NewMitigation(cfg, cfg.Mitigation.StateFile, log, d.registry, d.events); err != nil {
		return nil, fmt.Errorf("mitigation: %w", err)
	}
	if d.pipeline, err = pipeline.New(PipelineConfig(cfg, 0), pipeline.Deps{Rules: d.rules.Set, Mitigator: d.mit.mgr,
		Events: d.events, Log: log, Registerer: d.registry, OnSample: d.onSample(),
		Shadow: d.shadow.Set, ShadowSafety: SafetyConfig(cfg)}); err != nil {
		d.mit.Close()
		return nil, err
	}
	if n, err := d.mit.mgr.Restore(time.Now()); err != nil {
		d.mit.Close()
		return nil, err
	} else if n > 0 {
		log.Info("mitigations restored from the state file", "actions", n, "file", cfg.Mitigation.StateFile)
	}
	if cfg.Incidents.RingBytes > 0 {
		ideps.Flight = ingest.NewFlight(cfg.Incidents.RingBytes)
		if d.incidents, err = incident.New(IncidentConfig(cfg), incident.Deps{Flight: ideps.Flight, Decode: IngestOptions(cfg),
			Setup: func(a *events.Attack) incident.Setup { return IncidentSetup(d.Config())(a) },
			Log:   log, Registry: d.registry}); err != nil {
			d.mit.Close()
			return nil, err
		}
	}
	sink := flow.Sink(eng)
	for _, lc := range []ingest.ListenerConfig{
		{Name: "sflow", Listen: cfg.Ingest.SFlow.Listen, Workers: cfg.Ingest.SFlow.Workers, ReadBuffer: cfg.Ingest.SFlow.ReadBuffer},
		{Name: "netflow", Listen: cfg.Ingest.NetFlow.Listen, Workers: cfg.Ingest.NetFlow.Workers, ReadBuffer: cfg.Ingest.NetFlow.ReadBuffer},
	} {
		if lc.Listen == "" {
			continue
		}
		l, err := ingest.NewListener(lc, d.decoder, sink, flow.DefaultPool, ideps)
		if err != nil {
			d.mit.Close()
			d.close()
			return nil, err
		}
		d.listeners = append(d.listeners, l)
	}

	if d.api, err = api.New(cfg.API, d.apiDeps()); err != nil {
		d.mit.Close()
		d.close()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		d.mit.Close()
		d.close()
		return nil, fmt.Errorf("api listen on %s: %w", cfg.API.Listen, err)
	}
	d.httpLn = ln
	d.http = &http.Server{Handler: d.api.Handler(), ReadHeaderTimeout: 10 * time.Second}
	built = true
	return d, nil
}

func (d *Daemon) close() {
	for _, l := range d.listeners {
		l.Close()
	}
	if d.httpLn != nil {
		d.httpLn.Close()
	}
	if d.history != nil {
		if err := d.history.Close(); err != nil {
			d.log.Error("closing the history store", "err", err)
		}
	}
}

// Close releases what New opened, for a daemon that will not Run.
func (d *Daemon) Close() {
	d.close()
	d.mit.Close()
}

// Run runs every component until ctx ends (SIGINT/SIGTERM) or one fails,
// then stops them in order: the flow listeners and the stages stop
// together; the mitigation manager then hands what it still holds to the
// BGP speaker, which stops last, so a shutdown never cuts a change short.
// The speaker comes up here, in dry-run too, so that sessions can be
// checked before going live (nothing is announced in dry-run).
func (d *Daemon) Run(ctx context.Context) error {
	defer d.close()
	speakerCtx, stopSpeaker := context.WithCancel(context.Background())
	speakerDone := make(chan error, 1)
	if sp := d.mit.speaker; sp != nil {
		// What the state file restored is handed to the speaker before it
		// starts, so that every session's first UPDATEs carry it ahead of
		// the End-of-RIB: a router that kept the routes across the restart
		// (graceful restart) refreshes them, and drops only the rest.
		d.mit.mgr.Flush()
		if err := sp.Start(speakerCtx); err != nil {
			stopSpeaker()
			d.mit.Close()
			return fmt.Errorf("bgp: %w", err)
		}
		go func() { speakerDone <- sp.Run(speakerCtx) }()
	} else {
		speakerDone <- nil
	}
	defer func() {
		if sp := d.mit.speaker; sp != nil && d.exitKeepsRoutes {
			d.mit.mgr.Close() // hands the queue to the speaker
			sp.Detach()
		}
		d.mit.Close() // hands the queue to the speaker, and stops it
		stopSpeaker()
		<-speakerDone
	}()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.engine.Run(ctx) })
	g.Go(func() error { return d.pipeline.Run(ctx, d.engine.Candidates()) })
	logReader := d.events.NewReader("log", d.events.Last()+1)
	g.Go(func() error { return events.RunLog(ctx, logReader, d.log) })
	for _, l := range d.listeners {
		g.Go(func() error { return l.Run(ctx) })
	}
	g.Go(func() error { return d.api.Run(ctx) })
	g.Go(func() error {
		err := d.http.Serve(d.httpLn)
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("api: %w", err)
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return d.http.Shutdown(sctx)
	})
	g.Go(func() error { return d.handleSignals(ctx) })
	g.Go(func() error {
		return d.rules.Watch(ctx, func() time.Duration { return d.Config().Rules.PollInterval.Duration })
	})
	g.Go(func() error {
		return d.shadow.Watch(ctx, func() time.Duration { return d.Config().Rules.PollInterval.Duration })
	})
	g.Go(func() error { return d.mit.mgr.Run(ctx) })
	g.Go(func() error { return d.notify.Run(ctx) })
	if d.incidents != nil {
		rd := d.events.NewReader("incident", d.events.Last()+1)
		g.Go(func() error { return d.incidents.Run(ctx, rd) })
	}
	if d.writer != nil {
		g.Go(func() error { return d.writer.Run(ctx) })
	}
	if d.demo {
		listen := d.started.Ingest.SFlow.Listen // a listen address changes only at a restart
		g.Go(func() error { return runDemo(ctx, d.log, listen) })
	}
	d.log.Info("kapkan started", "version", d.version, "role", string(RoleAll), "dry_run", d.started.DryRun, "api", d.httpLn.Addr().String(),
		"dashboard", dashboardURL(d.httpLn.Addr()))
	err := g.Wait()
	st := d.engine.Stats()
	d.log.Info("kapkan stopped", "records", st.Records, "active_attacks", st.Attacks)
	return err
}

// handleSignals reloads the configuration (and with it the rules) on
// SIGHUP, and keeps SIGHUP from killing the process.
func (d *Daemon) handleSignals(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			if d.configPath == "" {
				_ = d.rules.Reload("SIGHUP")
				_ = d.shadow.Reload("SIGHUP")
				continue
			}
			_ = d.reloadConfig("SIGHUP") // the outcome is an event (and so a log line)
		}
	}
}

// FlowAddrs are the addresses the flow listeners are bound to, one per
// listener (sFlow first, then NetFlow/IPFIX).
func (d *Daemon) FlowAddrs() []netip.AddrPort {
	out := make([]netip.AddrPort, len(d.listeners))
	for i, l := range d.listeners {
		out[i] = l.Addr()
	}
	return out
}

// APIAddr is the address the API is bound to.
func (d *Daemon) APIAddr() net.Addr { return d.httpLn.Addr() }

// Registry holds every metric of the daemon.
func (d *Daemon) Registry() *prometheus.Registry { return d.registry }

// Events is the daemon's event ring.
func (d *Daemon) Events() *events.Ring { return d.events }

// Config is the running configuration (the last one a reload applied).
func (d *Daemon) Config() *config.Config {
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	return d.cfg
}

// dashboardURL is where a browser on this host finds the dashboard: the
// API's address, with a wildcard address replaced by loopback.
func dashboardURL(a net.Addr) string {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return "http://" + a.String() + "/"
	}
	addr := ap.Addr().Unmap()
	if addr.IsUnspecified() {
		addr = netip.MustParseAddr("127.0.0.1")
		if ap.Addr().Is6() && !ap.Addr().Is4In6() {
			addr = netip.IPv6Loopback()
		}
	}
	return "http://" + netip.AddrPortFrom(addr, ap.Port()).String() + "/"
}
