// History: attacks from the store in a chosen time range, filtered by
// target, label and hostgroup; each opens the attack's page.

import {h, section} from '../lib/dom.js';
import {get, query, headers} from '../lib/api.js';
import {attackTable} from './attacks.js';

const pad = n => String(n).padStart(2, '0');
const local = d => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;

export default function history() {
  const now = new Date();
  const f = {
    from: h('input', {id: 'h-from', type: 'datetime-local', value: local(new Date(now - 24 * 3600e3))}),
    to: h('input', {id: 'h-to', type: 'datetime-local', value: ''}),
    target: h('input', {id: 'h-target', placeholder: 'address or prefix', spellcheck: 'false', size: 18}),
    label: h('input', {id: 'h-label', placeholder: 'e.g. dns-amplification', spellcheck: 'false', size: 18}),
    hostgroup: h('input', {id: 'h-hostgroup', spellcheck: 'false', size: 12}),
  };
  let params = null, ctxRef = null;
  const msg = h('p', {class: 'small muted', role: 'status'});

  function read() {
    const iso = el => el.value ? new Date(el.value).toISOString() : '';
    return {from: iso(f.from) || '24h', to: iso(f.to), target: f.target.value.trim(), label: f.label.value.trim(), hostgroup: f.hostgroup.value.trim(), limit: 500};
  }

  async function download() {
    const res = await fetch('/api/v1/attacks/export' + query(Object.assign({}, read(), {format: 'csv', limit: 10000})), {headers: headers()});
    if (!res.ok) { msg.textContent = 'Export failed: ' + res.status; return; }
    const url = URL.createObjectURL(await res.blob());
    const a = h('a', {href: url, download: 'kapkan-attacks.csv'});
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  const form = h('form', {id: 'history-form', class: 'ban', onsubmit: ev => { ev.preventDefault(); params = read(); ctxRef.refresh(); }},
    h('div', {class: 'fields'},
      h('label', {class: 'field'}, 'From', f.from), h('label', {class: 'field'}, 'To (empty: now)', f.to),
      h('label', {class: 'field'}, 'Target', f.target), h('label', {class: 'field'}, 'Label', f.label),
      h('label', {class: 'field'}, 'Hostgroup', f.hostgroup),
      h('button', {type: 'submit', class: 'primary', id: 'h-search'}, 'Search'),
      h('button', {type: 'button', id: 'h-export', onclick: download}, 'Download CSV')));

  return {
    title: 'History',
    async render(ctx) {
      ctxRef = ctx;
      if (!params) params = read();
      let body;
      if (!ctx.status.history) {
        body = h('p', {class: 'muted'}, 'No history store is configured (store.path is empty): only the attacks since the start are kept, under Attacks.');
      } else {
        const {attacks} = await get('/api/v1/attacks' + query(params));
        msg.textContent = `${attacks.length} attack${attacks.length === 1 ? '' : 's'}${attacks.length >= params.limit ? ' (the newest ' + params.limit + ')' : ''}.`;
        body = h('div', {}, msg, attackTable('Attacks in the history', attacks, 'No attack in this range matches.'));
      }
      return h('div', {class: 'page'}, h('h1', {}, 'History'), h('section', {class: 'card'}, form), section('Attacks', body));
    },
  };
}
