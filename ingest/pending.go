package ingest

import (
	"bytes"
	"time"

	"github.com/netsampler/goflow2/v2/decoders/netflow"
)

// Limits on data sets kept while their template is unknown.
const (
	maxPendingSets  = 256
	maxPendingBytes = 1 << 20
	pendingTTL      = 2 * time.Minute
)

// pendingSet is a data set that arrived before its template.
type pendingSet struct {
	ctx      nfContext
	template uint16
	data     []byte
}

// pendingSets is a bounded FIFO of data sets per exporter.
type pendingSets struct {
	budget *budget // shared over every exporter; nil: no shared bound
	sets   []pendingSet
	bytes  int
}

func (p *pendingSets) len() int { return len(p.sets) }

// keepPending stores a copy of a data set whose template is unknown. When
// the buffer is full the oldest set is dropped and counted.
func (d *Decoder) keepPending(st *exporterState, ctx *nfContext, template uint16, data []byte) {
	p := &st.pending
	d.expirePending(st, ctx.now)
	for len(p.sets) > 0 && (len(p.sets) >= maxPendingSets || p.bytes+len(data) > maxPendingBytes) {
		d.metrics.pending(st.label, p.sets[0].ctx.format, "dropped", 1)
		d.decodeError(st, p.sets[0].ctx.format, reasonPendingDrop)
		d.dropPendingBytes(st, len(p.sets[0].data))
		p.sets[0] = pendingSet{}
		p.sets = p.sets[1:]
	}
	if len(data) > maxPendingBytes || !p.budget.take(int64(len(data)+pendingSetOverhead)) {
		if len(data) > maxPendingBytes {
			p.budget.refuse()
		}
		d.metrics.pending(st.label, ctx.format, "dropped", 1)
		d.decodeError(st, ctx.format, reasonPendingDrop)
		return
	}
	p.sets = append(p.sets, pendingSet{ctx: *ctx, template: template, data: bytes.Clone(data)})
	p.bytes += len(data)
	d.metrics.pending(st.label, ctx.format, "buffered", 1)
}

// dropPendingBytes accounts for a kept set of n bytes leaving st's buffer.
func (d *Decoder) dropPendingBytes(st *exporterState, n int) {
	st.pending.bytes -= n
	st.pending.budget.give(int64(n + pendingSetOverhead))
}

// expirePending drops sets older than pendingTTL (in receive time, so replay
// behaves like a live daemon).
func (d *Decoder) expirePending(st *exporterState, now int64) {
	p := &st.pending
	i := 0
	for i < len(p.sets) && now-p.sets[i].ctx.now > int64(pendingTTL) {
		d.metrics.pending(st.label, p.sets[i].ctx.format, "expired", 1)
		d.decodeError(st, p.sets[i].ctx.format, reasonPendingStale)
		d.dropPendingBytes(st, len(p.sets[i].data))
		p.sets[i] = pendingSet{}
		i++
	}
	p.sets = p.sets[i:]
}

// drainPending decodes every kept set whose template is now known, oldest
// first: options data sets when options is true, flow data sets otherwise.
// It returns the flow and options records decoded.
func (d *Decoder) drainPending(st *exporterState, out *Batcher, now int64, options bool) (records, optionRecords int) {
	d.expirePending(st, now)
	p := &st.pending
	kept := p.sets[:0]
	for _, ps := range p.sets {
		tpl, err := st.templates.GetTemplate(ps.ctx.version, ps.ctx.domain, ps.template)
		if err != nil {
			kept = append(kept, ps)
			continue
		}
		var scopes, opts, fields []netflow.Field
		isOptions := false
		switch t := tpl.(type) {
		case netflow.TemplateRecord:
			fields = t.Fields
		case netflow.NFv9OptionsTemplateRecord:
			scopes, opts, isOptions = t.Scopes, t.Options, true
		case netflow.IPFIXOptionsTemplateRecord:
			scopes, opts, isOptions = t.Scopes, t.Options, true
		}
		if isOptions != options {
			kept = append(kept, ps)
			continue
		}
		ctx := ps.ctx
		if isOptions {
			recs, _ := netflow.DecodeOptionsDataSet(ctx.version, bytes.NewBuffer(ps.data), scopes, opts)
			for i := range recs {
				d.applyOptions(st, &ctx, &recs[i])
			}
			optionRecords += len(recs)
		} else {
			recs, _ := netflow.DecodeDataSet(ctx.version, bytes.NewBuffer(ps.data), fields)
			for i := range recs {
				d.emitDataRecord(st, &ctx, recs[i].Values, out)
			}
			records += len(recs)
		}
		d.dropPendingBytes(st, len(ps.data))
		d.metrics.pending(st.label, ctx.format, "decoded", 1)
	}
	for i := len(kept); i < len(p.sets); i++ {
		p.sets[i] = pendingSet{}
	}
	p.sets = kept
	return records, optionRecords
}
