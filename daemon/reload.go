package daemon

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/events"
)

// reloadMetrics say how the last reload of something (the rules, the
// configuration) went: kapkan_<subsystem>_last_reload_successful,
// _last_reload_success_timestamp_seconds and _reloads_total{result}.
type reloadMetrics struct {
	lastOK   prometheus.Gauge
	lastTime prometheus.Gauge
	reloads  *prometheus.CounterVec
}

// newReloadMetrics makes the metrics of subsystem's reloads (what is
// reloaded, in words) as loaded now, and registers them with reg (nil:
// not registered).
func newReloadMetrics(reg prometheus.Registerer, subsystem, what string) *reloadMetrics {
	m := &reloadMetrics{
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kapkan_" + subsystem + "_last_reload_successful",
			Help: "1 when the last " + what + " reload succeeded (or none was asked for), 0 when the running " + what + " is older than its files (see the log).",
		}),
		lastTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kapkan_" + subsystem + "_last_reload_success_timestamp_seconds",
			Help: "When the running " + what + " was loaded.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kapkan_" + subsystem + "_reloads_total",
			Help: "Reloads of the " + what + ", by result (success, failure).",
		}, []string{"result"}),
	}
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	m.lastOK.Set(1)
	m.lastTime.SetToCurrentTime()
	if reg != nil {
		reg.MustRegister(m.lastOK, m.lastTime, m.reloads)
	}
	return m
}

func (m *reloadMetrics) succeeded() {
	m.reloads.WithLabelValues("success").Inc()
	m.lastOK.Set(1)
	m.lastTime.SetToCurrentTime()
}

func (m *reloadMetrics) failed() {
	m.reloads.WithLabelValues("failure").Inc()
	m.lastOK.Set(0)
}

// reloadConfig reads the configuration file again and applies what can
// change live: hostgroups, thresholds and ignore lists (the engine keeps
// the windows of addresses that stay protected), the allow-list, caps and
// TTLs of the safety model, the rule directories and the log level. The
// new rules are compiled first; if the file or the rules have an error,
// nothing is applied and the running configuration goes on. Settings that
// need a restart are named, compared with the configuration the daemon
// started with, until it restarts.
func (d *Daemon) reloadConfig(trigger string) error {
	d.reloadMu.Lock() // SIGHUP and the API may ask at once
	defer d.reloadMu.Unlock()
	ev := &events.Reload{What: "config", Trigger: trigger}
	fail := func(err error) error {
		d.reloadMetrics.failed()
		ev.Err = err.Error()
		var ce config.Errors
		if errors.As(err, &ce) {
			for _, e := range ce {
				ev.Errors = append(ev.Errors, e.Error())
			}
		} else {
			ev.Errors = strings.Split(err.Error(), "\n")
		}
		d.events.Publish(events.Event{Kind: events.ConfigReloaded, Reload: ev})
		return err
	}
	if d.configPath == "" {
		return fail(errors.New("the daemon runs on the embedded defaults: there is no file to reload (start it with --config)"))
	}
	next, _, err := config.Reload(d.Config(), d.configPath)
	if err != nil {
		return fail(err)
	}
	if d.demo {
		AddDemoHostgroup(next)
	}
	// The peers' password files are read again: one that went missing or
	// empty fails the reload, as it would fail the next start.
	passwords, err := next.PeerPasswords()
	if err != nil {
		return fail(err)
	}
	// Rules first: they are the part most likely to fail, and compiling
	// them changes nothing that runs.
	// The shadow set first: swapping it in changes nothing that acts.
	if err := d.shadow.reloadDirs(next.Rules.ShadowDirs, trigger); err != nil {
		return fail(fmt.Errorf("shadow: %w", err))
	}
	if err := d.rules.reloadDirs(next.Rules.Dirs, trigger); err != nil {
		return fail(err)
	}
	if _, err := d.engine.Reconfigure(EngineConfig(next)); err != nil {
		return fail(err)
	}
	if err := d.mit.mgr.Reconfigure(SafetyConfig(next), time.Now()); err != nil {
		return fail(err)
	}
	if err := d.pipeline.ReconfigureShadow(SafetyConfig(next), time.Now()); err != nil {
		return fail(err)
	}
	d.level.Set(ParseLevel(next.Log.Level))
	ev.Applied = config.Diff(d.Config(), next).Live
	ev.NeedsRestart = append(config.Diff(d.started, next).Restart, d.mit.passwordsChanged(passwords)...)
	ev.OK = true
	d.cfgMu.Lock()
	d.cfg = next
	d.cfgMu.Unlock()
	d.reloadMetrics.succeeded()
	d.events.Publish(events.Event{Kind: events.ConfigReloaded, Reload: ev})
	return nil
}
