package daemon

import (
	"context"
	"time"

	"github.com/kapkan-io/kapkan/api"
	"github.com/kapkan-io/kapkan/engine"
	"github.com/kapkan-io/kapkan/ingest"
	"github.com/kapkan-io/kapkan/mitigate/bgp"
)

// apiTraffic is the engine's traffic snapshot as the API shows it.
type apiTraffic struct{ e *engine.Engine }

var byMetric = map[string]engine.Metric{"pps": engine.MetricPPS, "mbps": engine.MetricBPS, "fps": engine.MetricFPS}

func (t apiTraffic) Traffic(limit int, by string) api.TrafficView {
	s := t.e.Top(limit, byMetric[by])
	v := api.TrafficView{At: s.At, WindowSeconds: s.WindowSeconds,
		Top:        api.TopView{Incoming: targetViews(s.Incoming), Outgoing: targetViews(s.Outgoing)},
		Hostgroups: make([]api.HostgroupView, 0, len(s.Hostgroups))}
	for _, h := range s.Hostgroups {
		v.Hostgroups = append(v.Hostgroups, api.HostgroupView{Name: h.Name, Incoming: ratesView(h.Incoming), Outgoing: ratesView(h.Outgoing)})
	}
	return v
}

func targetViews(ts []engine.TopTarget) []api.TargetView {
	out := make([]api.TargetView, 0, len(ts))
	for _, t := range ts {
		r := ratesView(t.Rates)
		out = append(out, api.TargetView{Target: t.Target.String(), Hostgroup: t.Hostgroup, PPS: r.PPS, Mbps: r.Mbps, FPS: r.FPS})
	}
	return out
}

func ratesView(r engine.TrafficRates) api.RatesView {
	return api.RatesView{PPS: float64(r.PPS), Mbps: engine.Mbps(r.BPS), FPS: float64(r.FPS)}
}

// apiExporters is the decoder's per-exporter self-check.
type apiExporters struct{ d *ingest.Decoder }

func (x apiExporters) Exporters() []api.ExporterView {
	infos := x.d.Exporters()
	out := make([]api.ExporterView, 0, len(infos))
	for _, e := range infos {
		v := api.ExporterView{Address: e.Address.String(), Formats: make([]string, 0, len(e.Formats)),
			RecordsPerSecond: float64(e.RecordsPerSecond), DatagramsTotal: e.DatagramsTotal, RecordsTotal: e.RecordsTotal,
			Sampling: make([]api.SamplingView, 0, len(e.Sampling)), SequenceGaps: e.SequenceGaps, DecodeErrors: e.DecodeErrors,
			ActiveTimeoutWarning: e.ActiveTimeoutWarning, LastSeen: e.LastSeen}
		for _, f := range e.Formats {
			v.Formats = append(v.Formats, f.String())
		}
		for _, s := range e.Sampling {
			v.Sampling = append(v.Sampling, api.SamplingView{Rate: s.Rate, Source: s.Source.String()})
		}
		out = append(out, v)
	}
	return out
}

// apiBGP is the speaker's sessions (none without peers); a speaker that
// does not answer within a second shows no session rather than hold the
// request.
type apiBGP struct{ s *bgp.Speaker }

func (b apiBGP) Sessions() []api.SessionView {
	if b.s == nil {
		return []api.SessionView{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	ss, err := b.s.Sessions(ctx)
	out := make([]api.SessionView, 0, len(ss))
	if err != nil {
		return out
	}
	for _, s := range ss {
		sent := s.Sent
		if sent == nil {
			sent = []string{}
		}
		out = append(out, api.SessionView{Peer: s.Peer, State: s.State, Since: s.Since, RoutesSent: int(s.RoutesSent), Sent: sent})
	}
	return out
}
