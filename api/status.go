package api

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	dto "github.com/prometheus/client_model/go"
)

// StatusView is GET /api/v1/status: what the daemon is, what the caller
// may do, and the health of its ingest, in one answer (the dashboard's
// header and banner).
type StatusView struct {
	Version string    `json:"version"`
	Started time.Time `json:"started"`
	DryRun  bool      `json:"dry_run"`
	// Access is what the request's credentials allow.
	Access AccessView `json:"access"`
	// History says whether history queries can be answered (a store is
	// configured).
	History bool       `json:"history"`
	Ingest  IngestView `json:"ingest"`
}

// AccessView is the caller's scope: "open" (no token, reads open),
// "read" or "operate", and the token's name when one was given.
type AccessView struct {
	Scope string `json:"scope"`
	Token string `json:"token,omitempty"`
}

// IngestView sums the ingest counters since the start, from the
// daemon's metrics: datagrams and records decoded, datagrams that failed
// to decode, units missing by exporter sequence numbers, datagrams the
// kernel dropped or cut, and records the engine dropped.
type IngestView struct {
	Exporters     int    `json:"exporters"`
	Datagrams     uint64 `json:"datagrams"`
	Records       uint64 `json:"records"`
	DecodeErrors  uint64 `json:"decode_errors"`
	SequenceGaps  uint64 `json:"sequence_gaps"`
	SocketDrops   uint64 `json:"socket_drops"`
	Truncated     uint64 `json:"truncated"`
	EngineDropped uint64 `json:"engine_dropped"`
}

// ingestCounters maps the metrics summed into IngestView.
var ingestCounters = map[string]func(*IngestView) *uint64{
	"kapkan_ingest_datagrams_total":           func(v *IngestView) *uint64 { return &v.Datagrams },
	"kapkan_ingest_records_total":             func(v *IngestView) *uint64 { return &v.Records },
	"kapkan_ingest_sequence_gaps_total":       func(v *IngestView) *uint64 { return &v.SequenceGaps },
	"kapkan_ingest_socket_drops_total":        func(v *IngestView) *uint64 { return &v.SocketDrops },
	"kapkan_ingest_truncated_datagrams_total": func(v *IngestView) *uint64 { return &v.Truncated },
	"kapkan_engine_dropped_records_total":     func(v *IngestView) *uint64 { return &v.EngineDropped },
}

func (s *Server) status(c *gin.Context) {
	v := StatusView{Version: s.deps.Version, Started: s.deps.Started.UTC(), DryRun: s.deps.DryRun,
		Access: AccessView{Scope: "open"}, History: s.deps.History != nil}
	if name := c.GetString(tokenName); name != "" {
		v.Access = AccessView{Scope: "read", Token: name}
		if c.GetBool(tokenOperate) {
			v.Access.Scope = "operate"
		}
	}
	if s.deps.Exporters != nil {
		xs := s.deps.Exporters.Exporters()
		v.Ingest.Exporters = len(xs)
		for _, x := range xs {
			v.Ingest.DecodeErrors += x.DecodeErrors
		}
	}
	if s.deps.Registry != nil {
		mfs, err := s.deps.Registry.Gather()
		if err != nil {
			s.log.Warn("gather metrics for the status", "err", err)
		}
		for _, mf := range mfs {
			if field, ok := ingestCounters[mf.GetName()]; ok {
				*field(&v.Ingest) += sumCounter(mf)
			}
		}
	}
	c.PureJSON(http.StatusOK, v)
}

// sumCounter adds up a counter family over its labels.
func sumCounter(mf *dto.MetricFamily) uint64 {
	var sum float64
	for _, m := range mf.GetMetric() {
		if ct := m.GetCounter(); ct != nil {
			sum += ct.GetValue()
		}
	}
	return uint64(sum)
}
