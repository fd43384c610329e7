package ingest

import (
	"errors"

	"github.com/netsampler/goflow2/v2/decoders/netflow"
)

// maxTemplatesPerExporter bounds template memory per exporter.
const maxTemplatesPerExporter = 4096

var errTemplateLimit = errors.New("too many templates from one exporter")

type templateKey struct {
	version  uint16
	domain   uint32
	template uint16
}

// templateStore is the goflow2 template system of one exporter. It is only
// used under the exporter's lock, so it needs none of its own. It refuses
// templates that would make the data-set decoder loop without consuming
// input (no field with a length), treating them as withdrawals.
type templateStore struct {
	m     map[templateKey]any
	added []templateKey // templates added while decoding the current datagram
}

var _ netflow.NetFlowTemplateSystem = (*templateStore)(nil)

func (t *templateStore) init() { t.m = make(map[templateKey]any) }

// AddTemplate implements netflow.NetFlowTemplateSystem.
func (t *templateStore) AddTemplate(version uint16, domain uint32, id uint16, tpl any) error {
	k := templateKey{version, domain, id}
	if !templateConsumes(tpl) {
		delete(t.m, k)
		return nil
	}
	if _, ok := t.m[k]; !ok && len(t.m) >= maxTemplatesPerExporter {
		return errTemplateLimit
	}
	t.m[k] = tpl
	t.added = append(t.added, k)
	return nil
}

// GetTemplate implements netflow.NetFlowTemplateSystem.
func (t *templateStore) GetTemplate(version uint16, domain uint32, id uint16) (any, error) {
	if tpl, ok := t.m[templateKey{version, domain, id}]; ok {
		return tpl, nil
	}
	return nil, netflow.ErrorTemplateNotFound
}

// RemoveTemplate implements netflow.NetFlowTemplateSystem.
func (t *templateStore) RemoveTemplate(version uint16, domain uint32, id uint16) (any, error) {
	k := templateKey{version, domain, id}
	tpl, ok := t.m[k]
	if !ok {
		return nil, netflow.ErrorTemplateNotFound
	}
	delete(t.m, k)
	return tpl, nil
}

// GetTemplates implements netflow.NetFlowTemplateSystem.
func (t *templateStore) GetTemplates() netflow.FlowBaseTemplateSet {
	out := make(netflow.FlowBaseTemplateSet, len(t.m))
	for k, v := range t.m {
		out[uint64(k.version)<<48|uint64(k.domain)<<16|uint64(k.template)] = v
	}
	return out
}

// templateConsumes reports whether decoding one record of tpl consumes at
// least one byte: a fixed-length field longer than zero, or a
// variable-length field (which reads at least its length byte).
func templateConsumes(tpl any) bool {
	var lists [][]netflow.Field
	switch t := tpl.(type) {
	case netflow.TemplateRecord:
		lists = [][]netflow.Field{t.Fields}
	case netflow.NFv9OptionsTemplateRecord:
		lists = [][]netflow.Field{t.Scopes, t.Options}
	case netflow.IPFIXOptionsTemplateRecord:
		lists = [][]netflow.Field{t.Scopes, t.Options}
	default:
		return false
	}
	for _, l := range lists {
		for _, f := range l {
			if f.Length > 0 {
				return true
			}
		}
	}
	return false
}
