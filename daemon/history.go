package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/store"
	"github.com/kapkan-io/kapkan/store/clickhouse"
	"github.com/kapkan-io/kapkan/store/embedded"
)

// openHistory opens the history store the configuration names: ClickHouse
// when store.clickhouse.dsn is set, else the embedded store in store.path
// (none when it is empty) and the writer that fills it from the event ring and
// the engine's traffic snapshot.
func (d *Daemon) openHistory(cfg *config.Config) error {
	var s store.Store
	switch {
	case cfg.Store.ClickHouse.DSN != "":
		// The writer's back-off decides how long a batch is retried; the
		// store retries a write only briefly itself.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ch, err := clickhouse.Open(ctx, cfg.Store.ClickHouse.DSN, clickhouse.Deps{Logger: d.log.With("component", "clickhouse"),
			Registry: d.registry, Retention: cfg.Store.Retention.Duration, RetryFor: 2 * time.Second})
		if err != nil {
			return fmt.Errorf("store.clickhouse: %w", err)
		}
		s = ch
	case cfg.Store.Path != "":
		e, err := embedded.Open(cfg.Store.Path, embedded.Options{MaxBytes: cfg.Store.MaxBytes})
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		s = e
	default:
		return nil
	}
	d.history = s
	d.writer = store.NewWriter(s, d.events, d.trafficPoints, store.WriterDeps{Logger: d.log.With("component", "store"),
		Registerer: d.registry, Retention: cfg.Store.Retention.Duration})
	return nil
}

// trafficPoints are the hostgroups' totals now, per direction, for the
// history's traffic series.
func (d *Daemon) trafficPoints() []store.TrafficPoint {
	snap := d.engine.Top(1, engine.MetricPPS)
	at := snap.At
	if at.IsZero() {
		return nil // no walk yet
	}
	out := make([]store.TrafficPoint, 0, 2*len(snap.Hostgroups))
	for _, h := range snap.Hostgroups {
		for _, p := range []struct {
			dir string
			r   engine.TrafficRates
		}{{"incoming", h.Incoming}, {"outgoing", h.Outgoing}} {
			out = append(out, store.TrafficPoint{At: at.Truncate(time.Second), Hostgroup: h.Name, Direction: p.dir,
				PPS: float64(p.r.PPS), Mbps: engine.Mbps(p.r.BPS), FPS: float64(p.r.FPS)})
		}
	}
	return out
}

// onSample hands the attacks' raw flow samples to the history when its
// store keeps them (ClickHouse); nil otherwise.
func (d *Daemon) onSample() func(uint64, time.Time, []flow.Record) {
	if d.writer == nil || !d.writer.KeepsSamples() {
		return nil
	}
	return func(id uint64, taken time.Time, recs []flow.Record) {
		d.writer.Sample(store.Sample{AttackID: id, Taken: taken, Records: recs})
	}
}
