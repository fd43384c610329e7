// A line chart drawn as SVG by hand: time on x, one line per series,
// a few round ticks, a legend, and a readout of the values under the
// pointer. Small on purpose (docs/74-dashboard.md says why no library).

const NS = 'http://www.w3.org/2000/svg';

// Colours that stay apart for the common colour-vision deficiencies
// (Okabe and Ito), readable on the dark and the light theme.
export const palette = ['#56b4e9', '#e69f00', '#009e73', '#cc79a7', '#f0e442', '#0072b2', '#d55e00'];

function s(tag, attrs, ...kids) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const k of kids) if (k != null) el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return el;
}

// niceStep is a round step (1, 2 or 5 × 10^n) giving about n ticks up to max.
function niceStep(max, n) {
  const raw = max / n, p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

const two = n => String(n).padStart(2, '0');
const hhmm = t => { const d = new Date(t); return two(d.getHours()) + ':' + two(d.getMinutes()); };
const hhmmss = t => hhmm(t) + ':' + two(new Date(t).getSeconds());

// lineChart returns an <svg>: series are [{name, points: [[ms, value], ...]}],
// format renders a value with its unit, width is the drawing's width in
// pixels (its container's), label names the chart for screen readers.
export function lineChart({series, format, width = 600, height = 200, label, from, to}) {
  const pad = {l: 64, r: 12, t: 10, b: 24};
  const w = Math.max(width, 240), iw = w - pad.l - pad.r, ih = height - pad.t - pad.b;
  const all = series.flatMap(x => x.points);
  const t0 = from ?? Math.min(...all.map(p => p[0])), t1 = to ?? Math.max(...all.map(p => p[0]));
  const vmax = Math.max(0, ...all.map(p => p[1]));
  const step = vmax > 0 ? niceStep(vmax, 4) : 1;
  const top = vmax > 0 ? Math.ceil(vmax / step) * step : 4;
  const x = t => pad.l + (t1 > t0 ? (t - t0) / (t1 - t0) : 1) * iw;
  const y = v => pad.t + ih - (v / top) * ih;
  const latest = series.map(x => x.name + ' ' + (x.points.length ? format(x.points[x.points.length - 1][1]) : 'no data')).join(', ');
  const svg = s('svg', {class: 'chart', width: w, height, viewBox: `0 0 ${w} ${height}`, role: 'img',
    'aria-label': `${label}: ${all.length ? 'now ' + latest : 'no data yet'}`});
  for (let v = 0; v <= top + step / 2; v += step) {
    svg.append(s('line', {class: 'grid', x1: pad.l, x2: w - pad.r, y1: y(v), y2: y(v)}),
      s('text', {class: 'tick', x: pad.l - 6, y: y(v) + 4, 'text-anchor': 'end'}, format(v)));
  }
  if (t1 > t0) {
    const n = Math.max(2, Math.floor(iw / 110));
    const label = t1 - t0 < 15 * 60e3 ? hhmmss : hhmm;
    for (let i = 0; i <= n; i++) {
      const t = t0 + (t1 - t0) * i / n;
      svg.append(s('text', {class: 'tick', x: x(t), y: height - 6, 'text-anchor': i === 0 ? 'start' : i === n ? 'end' : 'middle'}, label(t)));
    }
  }
  if (!all.length) {
    svg.append(s('text', {class: 'tick', x: pad.l + iw / 2, y: pad.t + ih / 2, 'text-anchor': 'middle'}, 'no data yet'));
    return svg;
  }
  series.forEach((ser, i) => {
    if (!ser.points.length) return;
    const d = ser.points.map((p, j) => (j ? 'L' : 'M') + x(p[0]).toFixed(1) + ' ' + y(p[1]).toFixed(1)).join('');
    svg.append(s('path', {class: 'line', d, stroke: palette[i % palette.length]}));
  });
  // The readout: a rule at the pointer and the values of each series there.
  const rule = s('line', {class: 'rule', y1: pad.t, y2: pad.t + ih, visibility: 'hidden'});
  const box = s('text', {class: 'readout', y: pad.t + 12, visibility: 'hidden'});
  svg.append(rule, box);
  svg.addEventListener('pointermove', ev => {
    const r = svg.getBoundingClientRect();
    const px = (ev.clientX - r.left) * (w / r.width);
    const t = t0 + (px - pad.l) / iw * (t1 - t0);
    const parts = [hhmmss(t)];
    for (const ser of series) {
      let best = null;
      for (const p of ser.points) if (!best || Math.abs(p[0] - t) < Math.abs(best[0] - t)) best = p;
      if (best) parts.push(ser.name + ' ' + format(best[1]));
    }
    rule.setAttribute('x1', px); rule.setAttribute('x2', px); rule.setAttribute('visibility', 'visible');
    box.textContent = parts.join('  ·  ');
    box.setAttribute('x', px > w / 2 ? px - 8 : px + 8);
    box.setAttribute('text-anchor', px > w / 2 ? 'end' : 'start');
    box.setAttribute('visibility', 'visible');
  });
  svg.addEventListener('pointerleave', () => { rule.setAttribute('visibility', 'hidden'); box.setAttribute('visibility', 'hidden'); });
  return svg;
}

// legend names the series in their colours.
export function legend(names) {
  const ul = document.createElement('ul');
  ul.className = 'legend';
  names.forEach((n, i) => {
    const li = document.createElement('li');
    const sw = document.createElement('span');
    sw.className = 'swatch';
    sw.style.background = palette[i % palette.length];
    li.append(sw, n);
    ul.append(li);
  });
  return ul;
}

// bars shows shares (0..1) as horizontal bars with their values.
export function bars(items, fmt) {
  const ul = document.createElement('ul');
  ul.className = 'bars';
  for (const it of items) {
    const li = document.createElement('li');
    const name = document.createElement('span');
    name.className = 'bar-name';
    name.textContent = it.value;
    const track = document.createElement('span');
    track.className = 'bar-track';
    const fill = document.createElement('span');
    fill.className = 'bar-fill';
    fill.style.width = (Math.max(0, Math.min(1, it.share)) * 100).toFixed(1) + '%';
    track.append(fill);
    const v = document.createElement('span');
    v.className = 'bar-value';
    v.textContent = fmt(it.share);
    li.append(name, track, v);
    ul.append(li);
  }
  return ul;
}
