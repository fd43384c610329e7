package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/ingest"
	"github.com/kapkan-io/kapkan/pipeline"
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (embedded defaults when omitted)")
	logFormat := fs.String("log-format", "", "log format: text or json (overrides log.format)")
	logLevel := fs.String("log-level", "", "log level: debug, info, warn, error (overrides log.level)")
	demoMode := fs.Bool("demo", false, "protect 203.0.113.0/24 and send demo sFlow traffic with an attack every 90 s to the sFlow listener on loopback")
	setUsage(fs, "usage: kapkan run [--config FILE] [--demo] [flags]")
	if _, err := parseArgs(fs, args); err != nil {
		return flagStatus(err)
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "kapkan run: %v\n", err)
		return 1
	}
	if *logFormat != "" {
		cfg.Log.Format = *logFormat
	}
	if *logLevel != "" {
		cfg.Log.Level = *logLevel
	}
	if *demoMode {
		addDemoHostgroup(cfg)
		if *configPath == "" {
			cfg.Mitigation.StateFile = "" // the demo's dry-run actions need not outlive it
		}
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "kapkan run: %v\n", err)
		return 2
	}
	level := new(slog.LevelVar)
	level.Set(parseLevel(cfg.Log.Level))
	log := newLoggerVar(stderr, level, cfg.Log.Format)
	slog.SetDefault(log)
	d, err := newDaemon(cfg, log)
	if err != nil {
		log.Error("start failed", "err", err)
		return 1
	}
	d.demo = *demoMode
	d.configPath, d.level = *configPath, level
	defer d.mit.close()
	if err := d.run(ctx); err != nil {
		log.Error("stopped with an error", "err", err)
		return 1
	}
	return 0
}

// eventRingSize is how many events the daemon keeps for its readers (the
// log, and later the API, store and notifiers).
const eventRingSize = 1 << 14

// loadConfig loads path, or the embedded defaults when path is empty.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.Load(path)
}

// daemon is the running process: every component, built from one config.
type daemon struct {
	cfg *config.Config
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
	mit           *mitigation
	events        *events.Ring
	pipeline      *pipeline.Pipeline
	listeners     []*ingest.Listener
	http          *http.Server
	httpLn        net.Listener
	demo          bool
}

// newDaemon builds every component and opens every socket, so that a port
// in use fails the start, but runs nothing yet.
func newDaemon(cfg *config.Config, log *slog.Logger) (*daemon, error) {
	d := &daemon{cfg: cfg, started: cfg, log: log, registry: prometheus.NewRegistry(), level: new(slog.LevelVar)}
	d.reloadMetrics = newReloadMetrics(d.registry)
	d.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	deps := ingest.Deps{Registry: d.registry, Logger: log}
	d.decoder = ingest.New(ingestOptionsFrom(cfg), deps)

	eng, err := engine.New(engineConfigFrom(cfg), engine.Deps{Registry: d.registry, Logger: log, Pool: flow.DefaultPool})
	if err != nil {
		return nil, err
	}
	d.engine = eng
	warnNoThresholds(log, cfg)
	if err := stateFileWritable(cfg.Mitigation.StateFile); err != nil { // see preflight
		return nil, fmt.Errorf("mitigation: %w", err)
	}
	if d.rules, err = newRuleRuntime(cfg.Rules.Dirs, log, d.registry); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	d.events = events.NewRing(eventRingSize, d.registry)
	// The speaker starts here: in dry-run too, so that sessions come up.
	if d.mit, err = newMitigation(context.Background(), cfg, cfg.Mitigation.StateFile, log, d.registry, d.events); err != nil {
		return nil, fmt.Errorf("mitigation: %w", err)
	}
	if d.pipeline, err = pipeline.New(pipelineConfigFrom(cfg, 0), pipeline.Deps{Rules: d.rules.Set, Mitigator: d.mit.mgr,
		Events: d.events, Log: log, Registerer: d.registry}); err != nil {
		d.mit.close()
		return nil, err
	}
	if n, err := d.mit.mgr.Restore(time.Now()); err != nil {
		d.mit.close()
		return nil, err
	} else if n > 0 {
		log.Info("mitigations restored from the state file", "actions", n, "file", cfg.Mitigation.StateFile)
	}
	sink := flow.Sink(eng)
	for _, lc := range []ingest.ListenerConfig{
		{Name: "sflow", Listen: cfg.Ingest.SFlow.Listen, Workers: cfg.Ingest.SFlow.Workers, ReadBuffer: cfg.Ingest.SFlow.ReadBuffer},
		{Name: "netflow", Listen: cfg.Ingest.NetFlow.Listen, Workers: cfg.Ingest.NetFlow.Workers, ReadBuffer: cfg.Ingest.NetFlow.ReadBuffer},
	} {
		if lc.Listen == "" {
			continue
		}
		l, err := ingest.NewListener(lc, d.decoder, sink, flow.DefaultPool, deps)
		if err != nil {
			d.mit.close()
			d.close()
			return nil, err
		}
		d.listeners = append(d.listeners, l)
	}

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery())
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(d.registry, promhttp.HandlerOpts{Registry: d.registry})))
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	d.mitigationRoutes(r)
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		d.mit.close()
		d.close()
		return nil, fmt.Errorf("api listen on %s: %w", cfg.API.Listen, err)
	}
	d.httpLn = ln
	d.http = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	return d, nil
}

func (d *daemon) close() {
	for _, l := range d.listeners {
		l.Close()
	}
	if d.httpLn != nil {
		d.httpLn.Close()
	}
}

// run runs every component until ctx ends (SIGINT/SIGTERM) or one fails.
func (d *daemon) run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.engine.Run(ctx) })
	g.Go(func() error { return d.pipeline.Run(ctx, d.engine.Candidates()) })
	logReader := d.events.NewReader("log", d.events.Last()+1)
	g.Go(func() error { return events.RunLog(ctx, logReader, d.log) })
	for _, l := range d.listeners {
		g.Go(func() error { return l.Run(ctx) })
	}
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
	g.Go(func() error { return d.rules.Watch(ctx, d.cfg.Rules.PollInterval.Duration) })
	g.Go(func() error { return d.mit.run(ctx) })
	if d.demo {
		g.Go(func() error { return runDemo(ctx, d.log, d.cfg.Ingest.SFlow.Listen) })
	}
	d.log.Info("kapkan started", "version", version, "dry_run", d.cfg.DryRun, "api", d.httpLn.Addr().String())
	err := g.Wait()
	st := d.engine.Stats()
	d.log.Info("kapkan stopped", "records", st.Records, "active_attacks", st.Attacks)
	return err
}

// handleSignals reloads the configuration (and with it the rules) on
// SIGHUP, and keeps SIGHUP from killing the process.
func (d *daemon) handleSignals(ctx context.Context) error {
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
				continue
			}
			_ = d.reloadConfig("SIGHUP") // the outcome is an event (and so a log line)
		}
	}
}
