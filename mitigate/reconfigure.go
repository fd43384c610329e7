package mitigate

import (
	"fmt"
	"time"
)

// Reconfigure applies a new safety configuration (a configuration reload)
// at now: protected prefixes, allow-list, caps, TTLs and flap damping.
// The actions in force, the recent ones and the flap history carry over.
// An action whose target the new configuration no longer lets through
// (allow-listed now, or outside every protected prefix) is withdrawn at
// once. Dry-run is kept as it is: it changes only at a restart, so a reload
// can never make actions decided in dry-run live.
func (m *Manager) Reconfigure(cfg Config, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cfg.DryRun = m.guard.cfg.DryRun
	g, err := NewGuard(cfg)
	if err != nil {
		return fmt.Errorf("mitigation: %w", err)
	}
	g.active, g.recent, g.history = m.guard.active, m.guard.recent, m.guard.history
	m.guard = g
	for k, e := range m.entries {
		if err := g.allowed(k.kind, k.target); err != nil {
			m.withdraw(k, e, now, "configuration reloaded: "+err.Error())
		}
	}
	m.save()
	return nil
}
