package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/daemon"
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (embedded defaults when omitted)")
	logFormat := fs.String("log-format", "", "log format: text or json (overrides log.format)")
	logLevel := fs.String("log-level", "", "log level: debug, info, warn, error (overrides log.level)")
	demoMode := fs.Bool("demo", false, "protect documentation prefixes and send demo sFlow to the sFlow listener on loopback: an attack of every kind (IPv4 and IPv6) and a carpet bomb, one every 12 s")
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
		daemon.AddDemoHostgroup(cfg)
		if *configPath == "" {
			cfg.Mitigation.StateFile = "" // the demo's dry-run actions need not outlive it
			// Its history outlives it, where any user may write.
			cfg.Store.Path = filepath.Join(os.TempDir(), "kapkan-demo")
			// The demo is for looking: reads are open (the API stays on
			// loopback by default); writes still need a token.
			cfg.API.OpenRead = true
		}
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "kapkan run: %v\n", err)
		return 2
	}
	level := new(slog.LevelVar)
	level.Set(daemon.ParseLevel(cfg.Log.Level))
	log := newLoggerVar(stderr, level, cfg.Log.Format)
	slog.SetDefault(log)
	d, err := daemon.New(cfg, daemon.Deps{Logger: log, Level: level, ConfigPath: *configPath, Demo: *demoMode, Version: version,
		ExitKeepsRoutes: true})
	if err != nil {
		log.Error("start failed", "err", err)
		return 1
	}
	if err := d.Run(ctx); err != nil {
		log.Error("stopped with an error", "err", err)
		return 1
	}
	return 0
}

// loadConfig loads path, or the embedded defaults when path is empty.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.Load(path)
}
