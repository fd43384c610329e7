// Exporters and BGP: the telemetry self-check per exporter (formats,
// rates, sampling and where it came from, sequence gaps, errors) and the
// BGP sessions with what was sent to each peer.

import {h, section, table, si, when, ago} from '../lib/dom.js';
import {get} from '../lib/api.js';

// Where a sampling rate came from (flow.SamplingSource).
const sourceText = {
  sample: 'from the sFlow samples', header: 'from the datagram header', options: 'from options data',
  record: 'in the records', override: 'set in the config', default: 'default: none was exported',
};

export default function exporters() {
  return {
    title: 'Exporters & BGP',
    every: 5000,
    wants: e => e.kind && e.kind.startsWith('bgp_'),
    async render() {
      const [{exporters: xs}, {sessions}] = await Promise.all([get('/api/v1/exporters'), get('/api/v1/bgp')]);
      return h('div', {class: 'page'},
        h('h1', {}, 'Exporters & BGP'),
        section(`Exporters (${xs.length})`, table('Flow exporters', [
          ['Exporter', x => x.address],
          ['Formats', x => x.formats.join(', ')],
          ['Records/s', x => si(x.records_per_second), 'num'],
          ['Datagrams', x => si(x.datagrams_total), 'num'],
          ['Records', x => si(x.records_total), 'num'],
          ['Sampling', x => x.sampling.length ? x.sampling.map(s => h('div', {class: s.source === 'default' ? 'warn' : ''}, `1:${s.rate} ${sourceText[s.source] || s.source}`)) : '–'],
          ['Sequence gaps', x => h('span', {class: x.sequence_gaps ? 'warn' : ''}, si(x.sequence_gaps)), 'num'],
          ['Decode errors', x => h('span', {class: x.decode_errors ? 'warn' : ''}, si(x.decode_errors)), 'num'],
          ['Checks', x => x.active_timeout_warning ? h('span', {class: 'warn'}, 'active timeout too long for detection') : 'ok'],
          ['Last seen', x => h('span', {title: when(x.last_seen)}, ago(x.last_seen))],
        ], xs, 'No exporter has sent a datagram yet. Point a router\'s sFlow, NetFlow or IPFIX export at this host.')),
        section(`BGP sessions (${sessions.length})`, table('BGP sessions', [
          ['Peer', s => s.peer],
          ['State', s => h('span', {class: s.state === 'established' ? 'ok' : 'warn'}, s.state)],
          ['Since', s => when(s.since)],
          ['Routes sent', s => String(s.routes_sent), 'num'],
          ['What was sent', s => sentList(s)],
        ], sessions, 'No BGP peer is configured: mitigations stay in this daemon (see mitigation.bgp in the configuration).')),
        sessions.length ? h('p', {class: 'small muted'}, 'What was sent is the peer\'s Adj-RIB-Out as the BGP speaker holds it now: the mitigations in force (',
          h('a', {href: '#/mitigations'}, 'see them'), ') in the families the peer takes.') : null);
    },
  };
}

// sentList shows the routes advertised to a peer: the first few, the rest
// behind a disclosure.
function sentList(s) {
  const sent = s.sent || [];
  if (!sent.length) return h('span', {class: 'muted'}, s.state === 'established' ? 'nothing' : '–');
  const li = r => h('li', {}, h('code', {}, r));
  const first = sent.slice(0, 5);
  return h('div', {}, h('ul', {class: 'sent'}, first.map(li)),
    sent.length > first.length ? h('details', {}, h('summary', {}, `${sent.length - first.length} more`), h('ul', {class: 'sent'}, sent.slice(5).map(li))) : null,
    s.routes_sent > sent.length ? h('p', {class: 'small muted'}, `${s.routes_sent - sent.length} more not listed`) : null);
}
