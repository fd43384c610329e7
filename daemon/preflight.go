package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/mitigate"
	"github.com/kapkan-io/kapkan/notify"
)

// preflight checks a validated configuration for everything `kapkan run`
// needs short of opening sockets: that the rule directories exist and their
// rules compile, that the state file can be read and written, that the
// engine and the BGP speaker accept their settings, and the safety guard
// its own. It builds the same components newDaemon builds, with the same
// constructors, and throws them away; `kapkan check` calls it, and newDaemon
// calls the checks that its constructors do not make (writable), so
// the two refuse the same files. TestCheckAgreesWithRun holds them to it.
//
// Problems are returned as config.Errors, positioned in the file where the
// key that causes them is; warnings are what run logs and accepts.
func Preflight(cfg *config.Config) (warnings config.Errors, err error) {
	var errs config.Errors
	quiet := slog.New(slog.DiscardHandler)

	if _, err := engine.New(EngineConfig(cfg), engine.Deps{Logger: quiet, Pool: flow.DefaultPool}); err != nil {
		errs = append(errs, cfg.ErrorAt("detection", "%v", err))
	}
	dirsOK := true
	for i, d := range cfg.Rules.Dirs {
		path := fmt.Sprintf("rules.dirs[%d]", i)
		switch st, err := os.Stat(d); {
		case errors.Is(err, fs.ErrNotExist):
			errs, dirsOK = append(errs, cfg.ErrorAt(path, "%q does not exist (want a directory of rule files)", d)), false
		case err != nil:
			errs, dirsOK = append(errs, cfg.ErrorAt(path, "%v (want a readable directory of rule files)", err)), false
		case !st.IsDir():
			errs, dirsOK = append(errs, cfg.ErrorAt(path, "%q is not a directory (want a directory of rule files)", d)), false
		}
	}
	if dirsOK {
		// Rule files carry their own positions.
		if _, err := newRuleRuntime(cfg.Rules.Dirs, quiet, nil); err != nil {
			errs = append(errs, cfg.ErrorAt("rules.dirs", "rules: %v", err))
		}
	}
	if len(cfg.Mitigation.BGP.Peers) > 0 {
		pw, err := cfg.PeerPasswords()
		var perrs config.Errors
		if errors.As(err, &perrs) {
			errs = append(errs, perrs...)
		}
		if _, err := BGPConfig(cfg.Mitigation.BGP, pw); err != nil {
			errs = append(errs, cfg.ErrorAt("mitigation.bgp", "%v", err))
		}
	}
	if err := notify.Check(cfg.Notify, notify.Deps{}); err != nil {
		errs = append(errs, cfg.ErrorAt("notify", "%v", err))
	}
	if cfg.Store.Path != "" {
		if err := writable(filepath.Join(cfg.Store.Path, "history.db"), `store.path: "" to keep no history`); err != nil {
			errs = append(errs, cfg.ErrorAt("store.path", "%v", err))
		}
	}
	stateOK := true
	if err := writable(cfg.Mitigation.StateFile, `state_file: "" to keep no state`); err != nil {
		errs, stateOK = append(errs, cfg.ErrorAt("mitigation.state_file", "%v", err)), false
	}
	// The manager checks the safety settings and reads the state file as
	// run does (with no announcer, it announces nothing).
	mgr, err := mitigate.NewManager(mitigate.ManagerConfig{Safety: SafetyConfig(cfg), StateFile: cfg.Mitigation.StateFile, Log: quiet})
	if err != nil {
		errs = append(errs, cfg.ErrorAt("mitigation", "%v", err))
	} else {
		if _, err := mgr.Restore(time.Now()); err != nil && stateOK {
			errs = append(errs, cfg.ErrorAt("mitigation.state_file", "%v", err))
		}
		mgr.Close()
	}
	if len(errs) > 0 {
		return cfg.Warnings(), errs
	}
	return cfg.Warnings(), nil
}

// writable checks that a file (the state file, the history) can be saved: its directory,
// or the nearest one that exists (the daemon creates the rest), takes a new
// file. A daemon that cannot save its state would forget the actions in
// force at the next restart, so it does not start.
func writable(name, orElse string) error {
	if name == "" {
		return nil
	}
	dir := filepath.Dir(name)
	for {
		st, err := os.Stat(dir)
		if err == nil {
			if !st.IsDir() {
				return fmt.Errorf("%s cannot be written: %s is not a directory", name, dir)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s cannot be written: %w", name, err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	f, err := os.CreateTemp(dir, ".kapkan-write-check-*")
	if err != nil {
		return fmt.Errorf("%s cannot be written: %w (want a directory kapkan may write to, or %s)", name, err, orElse)
	}
	f.Close()
	return os.Remove(f.Name())
}
