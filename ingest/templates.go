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
	budget  *budget // shared over every exporter; nil: no shared bound
	m       map[templateKey]any
	layouts map[templateKey]*layout // flow templates of fixed-length fields only
	added   []templateKey           // templates added while decoding the current datagram
}

// layout is a flow template whose fields all have a fixed length: where
// each field of a record is, for the NetFlow/IPFIX fast path.
type layout struct {
	size   int
	fields []layoutField
}

type layoutField struct {
	ie       uint16
	off, len int
}

// newLayout returns the layout of a flow template, or nil when a field has
// a variable length (or the record would be empty).
func newLayout(t netflow.TemplateRecord) *layout {
	l := &layout{}
	for _, f := range t.Fields {
		if f.Length == 0xffff {
			return nil
		}
		if !f.PenProvided { // enterprise fields are skipped, as the slow path does
			l.fields = append(l.fields, layoutField{ie: f.Type, off: l.size, len: int(f.Length)})
		}
		l.size += int(f.Length)
	}
	if l.size == 0 {
		return nil
	}
	return l
}

var _ netflow.NetFlowTemplateSystem = (*templateStore)(nil)

func (t *templateStore) init() {
	t.m = make(map[templateKey]any)
	t.layouts = make(map[templateKey]*layout)
}

// AddTemplate implements netflow.NetFlowTemplateSystem.
func (t *templateStore) AddTemplate(version uint16, domain uint32, id uint16, tpl any) error {
	k := templateKey{version, domain, id}
	delete(t.layouts, k)
	_, had := t.m[k]
	if !templateConsumes(tpl) {
		if had {
			delete(t.m, k)
			t.budget.give(1)
		}
		return nil
	}
	if templateFields(tpl) > maxTemplateFields {
		// Refused like a withdrawal: the old template of that id, if any,
		// no longer describes what the exporter sends.
		if had {
			delete(t.m, k)
			t.budget.give(1)
		}
		t.budget.refuse()
		return errTemplateLimit
	}
	if !had {
		if len(t.m) >= maxTemplatesPerExporter {
			t.budget.refuse()
			return errTemplateLimit
		}
		if !t.budget.take(1) {
			return errTemplateLimit
		}
	}
	t.m[k] = tpl
	if tr, ok := tpl.(netflow.TemplateRecord); ok {
		if l := newLayout(tr); l != nil {
			t.layouts[k] = l
		}
	}
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
	delete(t.layouts, k)
	t.budget.give(1)
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

// templateFields counts the fields of a template, scopes included.
func templateFields(tpl any) int {
	switch t := tpl.(type) {
	case netflow.TemplateRecord:
		return len(t.Fields)
	case netflow.NFv9OptionsTemplateRecord:
		return len(t.Scopes) + len(t.Options)
	case netflow.IPFIXOptionsTemplateRecord:
		return len(t.Scopes) + len(t.Options)
	}
	return 0
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
