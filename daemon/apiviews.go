package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/kapkan-io/kapkan/api"
	"github.com/kapkan-io/kapkan/builtin"
	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/incident"
	"github.com/kapkan-io/kapkan/mitigate/bgp"
	"github.com/kapkan-io/kapkan/web"
)

// apiDeps are the parts of the daemon the API reads.
func (d *Daemon) apiDeps() api.Deps {
	return api.Deps{
		Log:         d.log.With("component", "api"),
		Registry:    d.registry,
		Events:      d.events,
		Mitigations: d.mit.mgr,
		DryRun:      d.started.DryRun,
		CheckMatch: func(t netip.Prefix, m flowspec.Match) error {
			_, err := bgp.FlowSpecComponents(t, m)
			return err
		},
		Rules:     apiRules{d},
		Config:    apiConfig{d},
		Ready:     d.ready,
		Traffic:   apiTraffic{d.engine},
		Exporters: apiExporters{d.decoder},
		BGP:       apiBGP{d.mit.speaker},
		History:   d.apiHistory(),
		Incidents: d.apiIncidents(),
		Dashboard: web.Files(),
		Version:   d.version,
		Started:   d.startedAt,
	}
}

// apiHistory is the store for the API's history queries (nil without one,
// and the routes answer 503).
func (d *Daemon) apiHistory() api.History {
	if d.history == nil {
		return nil
	}
	return d.history
}

// apiRules shows the running rule set and reloads it.
type apiRules struct{ d *Daemon }

func (r apiRules) RulesView() api.RulesView {
	set := r.d.rules.Set()
	v := api.RulesView{Version: builtin.Version, Rules: set.Rules(), Ladders: set.Ladders(), Modules: set.Modules(),
		Disabled: set.Disabled()}
	if v.Disabled == nil {
		v.Disabled = []string{}
	}
	if p := r.d.rules.last.Load(); p != nil {
		v.LastReload = *p
	}
	if v.LastReload.Errors == nil {
		v.LastReload.Errors = []string{}
	}
	return v
}

func (r apiRules) ReloadRules(trigger string) error { return r.d.rules.Reload(trigger) }

// apiConfig shows the running configuration and reloads it. What is
// shown is config.Redacted's copy: every value tagged secret:"redact" in
// the schema (URLs that may carry a key, the ClickHouse DSN) is replaced;
// the files and variables that hold secrets are named, never read.
type apiConfig struct{ d *Daemon }

func (c apiConfig) Redacted() any { return c.d.Config().Redacted() }

func (c apiConfig) ReloadConfig(trigger string) error {
	if c.d.configPath == "" {
		return fmt.Errorf("the daemon runs on the embedded defaults: there is no file to reload")
	}
	return c.d.reloadConfig(trigger)
}

// ready: the listeners are bound by New; the rules are loaded unless the
// last reload failed (the running set still classifies, so it says so
// without being unready); BGP is ready when every peer's session is up.
func (d *Daemon) ready() api.ReadyView {
	v := api.ReadyView{Ready: true, Checks: map[string]string{"listeners": "ok", "rules": "ok", "bgp": "n/a"}}
	if err := d.rules.LastError(); err != nil {
		v.Checks["rules"] = "ok (the last reload failed; the previous set runs)"
	}
	if sp := d.mit.speaker; sp != nil {
		peers := len(d.started.Mitigation.BGP.Peers)
		if up := len(sp.Up()); up < peers {
			v.Ready = false
			v.Checks["bgp"] = fmt.Sprintf("down: %d of %d sessions up", up, peers)
		} else {
			v.Checks["bgp"] = "ok"
		}
	}
	return v
}

// apiIncidents serves the flight recorder's incidents (nil without one,
// and the route answers 503).
func (d *Daemon) apiIncidents() api.Incidents {
	if d.incidents == nil {
		return nil
	}
	return apiIncidents{d.incidents}
}

// apiIncidents renders an incident as the API's tar.
type apiIncidents struct{ r *incident.Recorder }

func (a apiIncidents) IncidentTar(id uint64) ([]byte, error) {
	in, err := a.r.Incident(id, time.Now())
	if errors.Is(err, incident.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", api.ErrNotFound, err)
	}
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := in.WriteTar(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
