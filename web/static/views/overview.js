// Overview: traffic now and over the last hour per hostgroup, the busiest
// targets, the attacks in progress and the health of ingest.

import {h, section, table, chips, fmtRate, si, targetLink, duration, ago} from '../lib/dom.js';
import {get, query} from '../lib/api.js';
import {lineChart, legend} from '../lib/chart.js';

const HOUR = 3600e3;
const metrics = [['pps', 'Packets/s'], ['mbps', 'Mbps'], ['fps', 'Flows/s']];

export default function overview() {
  // The chart's series per hostgroup and direction: filled from the
  // history once, then from each poll of the live snapshot.
  const series = new Map(); // "hostgroup/direction" → [[ms, {pps, mbps, fps}]]
  let loaded = false, historyNote = '';
  const choice = {metric: 'mbps', direction: 'incoming', by: 'pps'};
  let ctrls = null;

  function add(key, t, r) {
    let pts = series.get(key);
    if (!pts) series.set(key, pts = []);
    if (pts.length && pts[pts.length - 1][0] >= t) return;
    pts.push([t, r]);
    while (pts.length && pts[0][0] < Date.now() - HOUR) pts.shift();
  }

  async function loadHistory(ctx, hostgroups) {
    loaded = true;
    if (!ctx.status.history) { historyNote = 'No history store: the chart starts when this page was opened.'; return; }
    await Promise.all(hostgroups.map(async name => {
      try {
        const s = await get('/api/v1/traffic' + query({hostgroup: name, from: '1h', step: '15s'}));
        for (const dir of ['incoming', 'outgoing']) {
          for (const p of s[dir] || []) add(name + '/' + dir, Date.parse(p.at), p);
        }
      } catch (e) {
        historyNote = 'History unavailable (' + e.message + '): the chart starts when this page was opened.';
      }
    }));
  }

  function select(name, label, options, key) {
    return h('label', {class: 'inline'}, label + ' ',
      h('select', {id: 'ov-' + key, onchange: ev => { choice[key] = ev.target.value; ctrls.redraw(); }},
        options.map(([v, text]) => h('option', {value: v, selected: choice[key] === v}, text))));
  }

  const chartBox = h('div', {class: 'chartbox'});
  ctrls = {
    node: h('div', {class: 'controls'},
      select('metric', 'Show', metrics, 'metric'),
      select('direction', 'Direction', [['incoming', 'Incoming'], ['outgoing', 'Outgoing']], 'direction')),
    redraw() {
      const names = [...new Set([...series.keys()].map(k => k.split('/')[0]))].sort();
      const now = Date.now();
      const ser = names.map(n => ({name: n, points: (series.get(n + '/' + choice.direction) || []).map(([t, r]) => [t, r[choice.metric] || 0])}));
      chartBox.replaceChildren(
        lineChart({series: ser, format: v => fmtRate(choice.metric, v), width: chartBox.clientWidth || 640, height: 220,
          label: `${choice.direction} ${choice.metric} per hostgroup, last hour`, from: now - HOUR, to: now}),
        legend(names));
    },
  };

  return {
    title: 'Overview',
    every: 5000,
    wants: e => e.kind && e.kind.startsWith('attack_'),
    async render(ctx) {
      const [traffic, attacks, status, exps] = await Promise.all([
        get('/api/v1/traffic' + query({limit: 10, by: choice.by})), get('/api/v1/attacks'),
        get('/api/v1/status'), get('/api/v1/exporters')]);
      ctx.status = Object.assign(ctx.status, {ingest: status.ingest});
      if (!loaded) await loadHistory(ctx, traffic.hostgroups.map(g => g.name));
      const t = Date.parse(traffic.at) || Date.now();
      const total = {incoming: {pps: 0, mbps: 0, fps: 0}, outgoing: {pps: 0, mbps: 0, fps: 0}};
      for (const g of traffic.hostgroups) {
        for (const dir of ['incoming', 'outgoing']) {
          add(g.name + '/' + dir, t, g[dir]);
          for (const [m] of metrics) total[dir][m] += g[dir][m];
        }
      }
      const node = h('div', {class: 'page'},
        h('h1', {class: 'sr'}, 'Overview'),
        h('div', {class: 'tiles'},
          ['incoming', 'outgoing'].flatMap(dir => metrics.map(([m, name]) =>
            h('div', {class: 'tile'}, h('span', {class: 'tile-label'}, (dir === 'incoming' ? 'In · ' : 'Out · ') + name),
              h('span', {class: 'tile-value', id: `total-${dir}-${m}`}, fmtRate(m, total[dir][m])))))),
        h('section', {class: 'card wide'}, h('h2', {}, 'Traffic, last hour'), ctrls.node, chartBox,
          historyNote ? h('p', {class: 'muted small'}, historyNote) : null,
          h('p', {class: 'muted small'}, `Rates over the last ${traffic.window_seconds} s window, sampling-corrected.`)),
        h('div', {class: 'cols'},
        section('Attacks in progress',
          table('Attacks in progress', [
            ['Target', a => targetLink(a)],
            ['Labels', a => chips(a.labels)],
            ['Rate', a => fmtRate(a.trigger === 'mbps' ? 'mbps' : a.trigger, a.rate)],
            ['For', a => duration((Date.now() - Date.parse(a.started)) / 1000)],
          ], attacks.active, 'None. Traffic is within every threshold.')),
        section('Top targets',
          h('div', {class: 'controls'}, h('label', {class: 'inline'}, 'By ', h('select', {id: 'ov-by', onchange: ev => { choice.by = ev.target.value; ctx.refresh(); }},
            metrics.map(([v, text]) => h('option', {value: v, selected: choice.by === v}, text))))),
          table('Top incoming targets', [
            ['Target', r => r.target], ['Hostgroup', r => r.hostgroup, 'wide-only'],
            ['pps', r => si(r.pps), 'num'], ['Mbps', r => si(r.mbps), 'num'], ['flows/s', r => si(r.fps), 'num'],
          ], traffic.top.incoming, 'No traffic to a protected address yet.', true))),
        ingestCard(status.ingest, exps.exporters));
      requestAnimationFrame(() => ctrls.redraw());
      return node;
    },
  };
}

function ingestCard(ing, exps) {
  const formats = [...new Set(exps.flatMap(e => e.formats))].sort();
  const rates = [...new Set(exps.flatMap(e => e.sampling.map(s => s.rate)))].sort((a, b) => a - b);
  const quiet = exps.filter(e => Date.now() - Date.parse(e.last_seen) > 60e3).length;
  const bad = ing.decode_errors + ing.socket_drops + ing.truncated + ing.engine_dropped;
  return section('Ingest health',
    h('dl', {class: 'facts facts-wide'},
      h('dt', {}, 'Exporters'), h('dd', {}, ing.exporters + (quiet ? ` (${quiet} quiet for over a minute)` : '')),
      h('dt', {}, 'Formats'), h('dd', {}, formats.join(', ') || '–'),
      h('dt', {}, 'Sampling rates'), h('dd', {}, rates.map(r => '1:' + r).join(', ') || '–'),
      h('dt', {}, 'Datagrams'), h('dd', {}, si(ing.datagrams)),
      h('dt', {}, 'Records'), h('dd', {}, si(ing.records)),
      h('dt', {}, 'Decode errors'), h('dd', {class: ing.decode_errors ? 'warn' : ''}, si(ing.decode_errors)),
      h('dt', {}, 'Sequence gaps'), h('dd', {class: ing.sequence_gaps ? 'warn' : ''}, si(ing.sequence_gaps)),
      h('dt', {}, 'Dropped'), h('dd', {class: ing.socket_drops + ing.engine_dropped ? 'warn' : ''},
        `${si(ing.socket_drops)} by the kernel, ${si(ing.truncated)} cut, ${si(ing.engine_dropped)} by the engine`)),
    h('p', {class: 'small ' + (bad ? 'warn' : 'ok')}, bad ? 'Some telemetry was lost or unreadable: see Exporters.' : 'All telemetry received was read.'),
    exps.length ? h('p', {class: 'small muted'}, 'Last datagram ' + ago(exps.map(e => e.last_seen).sort().at(-1))) : null,
    h('a', {href: '#/exporters'}, 'Exporters and BGP sessions'));
}
