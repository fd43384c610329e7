// Small helpers to build the page: every text goes in through textContent,
// never as HTML, so nothing a flow record carries can become markup.

// h builds an element: h('a', {href: '#/'}, 'text', child, [more]).
// Attributes starting with "on" are event handlers; false/null are left out.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v == null) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// table builds a table in a scrolling wrapper: cols are [heading, cell(row),
// class] triples; empty says what an empty table means. On a narrow screen
// each row becomes a card of "heading: value" lines, unless keep says the
// table reads better as columns (a few short numbers).
export function table(caption, cols, rows, empty, keep = false) {
  if (!rows.length) return h('p', {class: 'muted empty'}, empty);
  return h('div', {class: 'scroll'}, h('table', {class: keep ? '' : 'stack'},
    caption ? h('caption', {class: 'sr'}, caption) : null,
    h('thead', {}, h('tr', {}, cols.map(([name, , cls]) => h('th', {scope: 'col', class: cls}, name)))),
    h('tbody', {}, rows.map(r => h('tr', {}, cols.map(([name, cell, cls]) => h('td', {class: cls, 'data-label': name}, cell(r))))))));
}

export function section(title, ...body) {
  return h('section', {class: 'card'}, h('h2', {}, title), body);
}

export function chips(labels, cls = 'chip') {
  if (!labels || !labels.length) return h('span', {class: 'muted'}, 'unlabelled');
  return h('span', {class: 'chips'}, labels.map(l => h('span', {class: cls}, l)));
}

// Numbers with an SI suffix: 1234567 → "1.23 M".
export function si(v, digits = 3) {
  if (v == null || !isFinite(v)) return '–';
  const a = Math.abs(v);
  for (const [n, s] of [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']]) {
    if (a >= n) return (v / n).toPrecision(digits) + ' ' + s;
  }
  return a >= 100 || a === 0 ? String(Math.round(v)) : v.toPrecision(digits);
}

export const rate = {
  pps: v => si(v) + ' pps',
  mbps: v => (v >= 1000 ? (v / 1000).toPrecision(3) + ' Gbps' : si(v) + ' Mbps'),
  fps: v => si(v) + ' flows/s',
};

export function fmtRate(metric, v) {
  return (rate[metric] || (x => si(x) + ' ' + metric))(v);
}

const pad = n => String(n).padStart(2, '0');

// Times are shown in the browser's zone; a zero Go time is "–".
export function when(t) {
  const d = typeof t === 'string' ? new Date(t) : t;
  if (!d || isNaN(d) || d.getFullYear() < 2) return '–';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(d)}`;
}

export function clock(d) {
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function duration(seconds) {
  seconds = Math.max(0, Math.round(seconds));
  const d = Math.floor(seconds / 86400), hr = Math.floor(seconds % 86400 / 3600);
  const m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
  if (d) return `${d}d ${hr}h`;
  if (hr) return `${hr}h ${pad(m)}m`;
  if (m) return `${m}m ${pad(s)}s`;
  return `${s}s`;
}

export function ago(t) {
  const d = new Date(t);
  if (isNaN(d) || d.getFullYear() < 2) return 'never';
  return duration((Date.now() - d) / 1000) + ' ago';
}

export function pct(share) {
  return (share * 100).toFixed(share < 0.1 ? 1 : 0) + '%';
}

export function targetLink(a) {
  return h('a', {href: '#/attacks/' + a.id}, a.target);
}
