// The dashboard: signs in when reads need a token, routes between the
// pages (#/…), keeps the live event stream open and tells the page shown
// what happened.

import {h} from './lib/dom.js';
import {auth, get, whenUnauthorized, ApiError} from './lib/api.js';
import {connect} from './lib/stream.js';
import overview from './views/overview.js';
import {attacksPage, attackPage} from './views/attacks.js';
import mitigations from './views/mitigations.js';
import rules from './views/rules.js';
import exporters from './views/exporters.js';
import history from './views/history.js';

const routes = [
  [/^\/?$/, overview],
  [/^\/attacks\/?$/, attacksPage],
  [/^\/attacks\/(\d+)$/, attackPage],
  [/^\/mitigations\/?$/, mitigations],
  [/^\/rules\/?$/, rules],
  [/^\/exporters\/?$/, exporters],
  [/^\/history\/?$/, history],
];

// ctx is what every page gets: the status (scope, dry-run, ...) and a way
// to ask for a fresh render.
const ctx = {status: null, canOperate: false, live: 'connecting', refresh: () => refresh(false)};
let page = null, stopStream = null, refreshTimer = null;
const main = () => document.getElementById('main');

function signIn(message) {
  if (stopStream) { stopStream(); stopStream = null; }
  ctx.status = null;
  page = null;
  document.getElementById('who').replaceChildren();
  document.getElementById('banner').replaceChildren();
  const input = h('input', {id: 'token', type: 'password', autocomplete: 'current-password', required: true, spellcheck: 'false'});
  const err = h('p', {class: 'error', role: 'alert'}, message || '');
  const form = h('form', {class: 'card signin', onsubmit: async ev => {
    ev.preventDefault();
    auth.set(input.value.trim());
    try {
      await start();
    } catch (e) {
      auth.set('');
      err.textContent = e.status === 401 ? 'That token was not accepted.' : e.message;
      input.focus();
    }
  }},
  h('h1', {}, 'Sign in'),
  h('p', {}, 'This daemon needs an API token to show its data. The token is kept for this browser session only.'),
  h('label', {for: 'token'}, 'API token'), input,
  h('button', {type: 'submit', class: 'primary'}, 'Sign in'), err);
  main().replaceChildren(form);
  input.focus();
}

function renderWho() {
  const st = ctx.status;
  const scope = st.access.scope;
  const allows = scope === 'operate' ? 'can view, ban, unban and reload' : 'can view; cannot ban, unban or reload';
  const who = document.getElementById('who');
  who.replaceChildren(...[
    h('span', {class: 'scope scope-' + scope, title: allows},
      scope === 'open' ? 'open read' : `${st.access.token} · ${scope}`),
    h('span', {class: 'sr'}, ' (' + allows + ')'),
    scope === 'open' ? h('button', {type: 'button', class: 'link', id: 'sign-in', onclick: () => signIn('Reads are open; sign in with an operate token to ban, unban and reload.')}, 'Sign in') : null,
    auth.token ? h('button', {type: 'button', class: 'link', id: 'sign-out', onclick: () => { auth.set(''); location.hash = '#/'; signIn('Signed out.'); }}, 'Sign out') : null,
  ].filter(Boolean));
  document.getElementById('version').textContent = 'Kapkan ' + (st.version || '');
}

function renderBanner() {
  const b = document.getElementById('banner');
  if (ctx.status.dry_run) {
    b.replaceChildren(h('div', {class: 'banner dry', id: 'dry-run-banner'},
      h('strong', {}, 'Dry-run: '), 'nothing is announced to routers. Mitigations shown are what would have been announced.'));
  } else {
    b.replaceChildren();
  }
}

function setLive(state) {
  ctx.live = state;
  const el = document.getElementById('live');
  el.className = 'live live-' + state;
  el.textContent = {live: 'Live', reconnecting: 'Reconnecting…', connecting: 'Connecting…', unauthorized: 'Signed out'}[state] || state;
  if (state === 'unauthorized') signIn('The token is no longer accepted.');
}

// show renders the page the hash names.
// moved says the operator went to another page (focus then goes to the
// page's content, for screen readers); not on the first load.
async function show(moved) {
  const path = location.hash.replace(/^#/, '') || '/';
  let view = null, args = [];
  for (const [re, v] of routes) {
    const m = path.match(re);
    if (m) { view = v; args = m.slice(1); break; }
  }
  for (const a of document.querySelectorAll('nav a')) {
    const here = a.getAttribute('href') === '#' + path || (a.getAttribute('href') !== '#/' && path.startsWith(a.getAttribute('href').slice(1)));
    a.toggleAttribute('aria-current', here);
    if (here) a.setAttribute('aria-current', 'page');
  }
  if (page && page.dispose) page.dispose();
  clearInterval(refreshTimer);
  if (!view) {
    page = null;
    main().replaceChildren(h('section', {class: 'card'}, h('h1', {}, 'Not found'), h('p', {}, 'No page here. '), h('a', {href: '#/'}, 'Back to the overview')));
    return;
  }
  page = view(...args);
  document.title = page.title + ' · Kapkan';
  await refresh(moved);
  if (page && page.every) refreshTimer = setInterval(() => refresh(false), page.every);
}

// refresh asks the page for its content and puts it in place; errors are
// shown where the page would be.
async function refresh(moved) {
  const p = page;
  if (!p) return;
  try {
    const node = await p.render(ctx);
    if (p !== page) return; // navigated away meanwhile
    const m = main();
    const focus = document.activeElement && m.contains(document.activeElement) ? document.activeElement.id : '';
    m.replaceChildren(node);
    if (!performance.getEntriesByName('kapkan-first-page').length) performance.mark('kapkan-first-page');
    if (focus && document.getElementById(focus)) document.getElementById(focus).focus();
    else if (moved) m.focus({preventScroll: true});
  } catch (e) {
    if (p !== page) return;
    if (e instanceof ApiError && e.status === 401) return; // signIn is showing
    main().replaceChildren(h('section', {class: 'card'}, h('h1', {}, p.title), h('p', {class: 'error', role: 'alert'}, e.message)));
  }
}

let pending = null;
// onEvent passes a live event to the page; a page that wants to redraw
// says so, and redraws are gathered (at most one every half second).
function onEvent(e) {
  if (!page || !page.wants) return;
  if (e.kind !== 'lost' && !page.wants(e)) return;
  if (pending) return;
  pending = setTimeout(() => { pending = null; refresh(false); }, 500);
}

async function start() {
  ctx.status = await get('/api/v1/status');
  ctx.canOperate = ctx.status.access.scope === 'operate';
  renderWho();
  renderBanner();
  if (stopStream) stopStream();
  setLive('connecting');
  stopStream = connect(onEvent, setLive);
  await show();
}

// A 401 while signed in: the token was revoked (a config reload) or the
// daemon restarted with other tokens.
whenUnauthorized(() => { if (ctx.status) signIn('The token is no longer accepted.'); });
window.addEventListener('hashchange', () => { if (ctx.status) show(true); });
let resizeTimer = null;
window.addEventListener('resize', () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(() => refresh(false), 200); });

start().catch(e => {
  if (e instanceof ApiError && e.status === 401) signIn(auth.token ? 'That token was not accepted.' : '');
  else main().replaceChildren(h('p', {class: 'error', role: 'alert'}, 'The daemon did not answer: ' + e.message));
});
