// Attacks: the ones in progress and the last that ended, and the page of
// one attack: what it is, its rates over time, its flow sample and what
// was done about it.

import {h, section, table, chips, fmtRate, si, when, duration, pct, targetLink, clock} from '../lib/dom.js';
import {get} from '../lib/api.js';
import {lineChart, legend, bars} from '../lib/chart.js';

// attackTable is the list shared by this page and History.
export function attackTable(caption, list, empty) {
  return table(caption, [
    ['ID', a => h('a', {href: '#/attacks/' + a.id}, '#' + a.id)],
    ['Target', a => targetLink(a)],
    ['Hostgroup', a => a.hostgroup || '–'],
    ['Labels', a => chips(a.labels)],
    ['Trigger', a => `${a.trigger} ${si(a.rate)} / ${si(a.threshold)}`],
    ['Started', a => when(a.started)],
    ['Duration', a => duration(((a.ended && !a.ended.startsWith('0001') ? Date.parse(a.ended) : Date.now()) - Date.parse(a.started)) / 1000)],
    ['Action', a => actionText(a)],
  ], list, empty);
}

function actionText(a) {
  if (a.action) return a.action;
  const m = (a.mitigations || []).at(-1);
  if (m && m.kind === 'mitigation_none') return 'none';
  return '–';
}

export function attacksPage() {
  return {
    title: 'Attacks',
    every: 10000,
    wants: e => e.kind && (e.kind.startsWith('attack_') || e.kind.startsWith('mitigation_')),
    async render() {
      const {active, recent} = await get('/api/v1/attacks');
      return h('div', {class: 'page'},
        h('h1', {}, 'Attacks'),
        section(`In progress (${active.length})`, attackTable('Attacks in progress', active, 'No attack in progress.')),
        section(`Recently ended (${recent.length})`, attackTable('Attacks recently ended', recent, 'None ended since the daemon started. Older attacks are in History.')));
    },
  };
}

const kindText = {
  mitigation_announced: 'announced', mitigation_withdrawn: 'withdrawn', mitigation_renewed: 'renewed',
  mitigation_refused: 'refused by the safety guard', mitigation_failed: 'failed', mitigation_none: 'no action',
};

export function attackPage(id) {
  return {
    title: 'Attack #' + id,
    wants: e => (e.attack && String(e.attack.id) === id) || (e.mitigation && String(e.mitigation.attack_id) === id),
    async render() {
      const a = await get('/api/v1/attacks/' + id);
      const ended = a.ended && !a.ended.startsWith('0001');
      const end = ended ? Date.parse(a.ended) : Date.now();
      const facts = [
        ['Status', a.active ? 'in progress' : 'ended'],
        ['Hostgroup', a.hostgroup || '–'], ['Direction', a.direction], ['Scope', a.scope],
        ['Started', when(a.started)], [ended ? 'Ended' : 'For', ended ? when(a.ended) + ' (' + duration((end - Date.parse(a.started)) / 1000) + ')' : duration((end - Date.parse(a.started)) / 1000)],
        ['Trigger', `${a.trigger}: ${fmtRate(a.trigger, a.rate)} over a threshold of ${fmtRate(a.trigger, a.threshold)}`],
        ['Rates now', Object.entries(a.rates || {}).sort().map(([k, v]) => `${k} ${si(v)}`).join(', ') || '–'],
        ['Peak', Object.entries(a.peak || {}).sort().map(([k, v]) => `${k} ${si(v)}`).join(', ') || (a.active ? 'when it ends' : '–')],
        ['Rules matched', (a.rules || []).join(', ') || 'none'],
        ['Decided by', a.decider || '–'],
        ['Vector', vectorText(a.vector)],
        ['Action now', a.action || 'none'],
        ['Flow sample', `${a.sample_records} records`],
      ];
      if (a.skipped && a.skipped.length) facts.push(['Modules that did not answer', a.skipped.join(', ')]);
      const node = h('div', {class: 'page'},
        h('p', {class: 'crumbs'}, h('a', {href: '#/attacks'}, 'Attacks'), ' / #' + a.id),
        h('h1', {}, a.target, ' ', chips(a.labels, 'chip big')),
        h('div', {class: 'cols'},
          section('What', h('dl', {class: 'facts'}, facts.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]))),
          section('Mitigation timeline', timeline(a))),
        ratesCard(a),
        sampleCard(a.sample));
      return node;
    },
  };
}

function vectorText(v) {
  if (!v || !Object.keys(v).length) return 'all traffic to the target';
  const parts = [];
  if (v.protocol) parts.push(v.protocol);
  if (v.src_ports) parts.push('from port ' + v.src_ports.join(','));
  if (v.dst_ports) parts.push('to port ' + v.dst_ports.join(','));
  if (v.packet_length) parts.push('length ' + v.packet_length);
  if (v.tcp_flags) parts.push('flags ' + v.tcp_flags);
  if (v.fragment) parts.push('fragment ' + v.fragment);
  return parts.join(' ');
}

function timeline(a) {
  const ms = a.mitigations || [];
  if (!ms.length) return h('p', {class: 'muted'}, a.active ? 'Nothing yet.' : 'Nothing was done.');
  return h('ol', {class: 'timeline'}, ms.map(m => {
    const dry = m.dry_run && m.kind === 'mitigation_announced';
    return h('li', {class: 'tl-' + m.kind},
      h('time', {datetime: m.at}, clock(new Date(m.at))), ' ',
      h('strong', {}, dry ? 'would have been announced (dry-run)' : kindText[m.kind] || m.kind), ' ',
      m.action ? h('span', {class: 'chip'}, m.action) : null,
      m.ladder ? ` ${m.ladder} step ${m.step}` : '',
      m.match && Object.keys(m.match).length ? h('div', {class: 'small'}, vectorText(m.match)) : null,
      m.expires ? h('div', {class: 'small muted'}, 'until ' + when(m.expires)) : null,
      m.reason ? h('div', {class: 'small'}, m.reason) : null,
      m.error ? h('div', {class: 'small error'}, m.error) : null);
  }));
}

function ratesCard(a) {
  const pts = a.series || [];
  if (!pts.length) {
    return section('Rates over time', h('p', {class: 'muted'}, 'Only the live index keeps an attack\'s rates over time; this one is from the history. Its peak is above.'));
  }
  const box = h('div', {class: 'chartbox'});
  const draw = () => {
    const w = box.clientWidth || 640;
    // Flows per second only where the telemetry has flows (not sFlow).
    const packets = [{name: 'pps', points: pts.map(p => [Date.parse(p.at), p.pps])}];
    if (pts.some(p => p.fps > 0)) packets.push({name: 'flows/s', points: pts.map(p => [Date.parse(p.at), p.fps])});
    box.replaceChildren(
      h('h3', {}, packets.length > 1 ? 'Packets and flows per second' : 'Packets per second'),
      lineChart({series: packets, format: v => si(v), width: w, height: 180, label: 'attack packets per second'}),
      legend(packets.map(p => p.name)),
      h('h3', {}, 'Megabits per second'),
      lineChart({series: [{name: 'Mbps', points: pts.map(p => [Date.parse(p.at), p.mbps])}],
        format: v => fmtRate('mbps', v), width: w, height: 160, label: 'attack megabits per second'}));
  };
  requestAnimationFrame(draw);
  return h('section', {class: 'card wide'}, h('h2', {}, 'Rates over time'), box);
}

function sampleCard(s) {
  if (!s) return section('Flow sample', h('p', {class: 'muted'}, 'No flow sample was kept for this attack.'));
  const list = (title, items) => h('div', {}, h('h3', {}, title), items && items.length ? bars(items, pct) : h('p', {class: 'muted'}, '–'));
  return h('section', {class: 'card wide'}, h('h2', {}, 'Flow sample'),
    h('p', {class: 'small muted'}, `Shares of the sampled packets. ${s.sources} distinct sources.`),
    h('div', {class: 'cols3'},
      list('Top sources', s.top_sources),
      list('Top source ports', s.top_src_ports),
      list('Top destination ports', s.top_dst_ports)),
    h('h3', {}, 'Packet sizes'),
    h('p', {}, `mean ${Math.round(s.mean_packet_size)} B · p10 ${Math.round(s.p10_packet_size)} B · median ${Math.round(s.p50_packet_size)} B · p90 ${Math.round(s.p90_packet_size)} B`));
}
