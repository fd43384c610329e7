// Mitigations: the blackholes and FlowSpec rules in force with their time
// left, and, for an operate token, a manual ban and unban, each confirmed
// first and answered with what the safety guard said.

import {h, section, table, fmtRate, when, duration} from '../lib/dom.js';
import {get, post, del, ApiError} from '../lib/api.js';

export default function mitigations() {
  let ticker = null, result = null, ctxRef = null;
  const answer = h('div', {id: 'ban-answer', role: 'status', 'aria-live': 'polite'});
  const form = banForm();

  // confirm asks in a modal dialog (keyboard: Tab between the buttons,
  // Escape cancels) and resolves to true when the operator confirms.
  function confirm(title, lines, verb) {
    return new Promise(resolve => {
      const dlg = h('dialog', {class: 'confirm', 'aria-labelledby': 'confirm-title'},
        h('h2', {id: 'confirm-title'}, title), lines.map(l => h('p', {}, l)),
        h('div', {class: 'buttons'},
          h('button', {type: 'button', id: 'confirm-cancel', onclick: () => dlg.close('cancel')}, 'Cancel'),
          h('button', {type: 'button', id: 'confirm-ok', class: 'danger', onclick: () => dlg.close('ok')}, verb)));
      dlg.addEventListener('close', () => { dlg.remove(); resolve(dlg.returnValue === 'ok'); });
      document.body.append(dlg);
      dlg.showModal();
      document.getElementById('confirm-cancel').focus();
    });
  }

  function say(ok, text, detail) {
    result = {ok, text, detail};
    answer.replaceChildren(h('div', {class: 'answer ' + (ok ? 'ok' : 'error')}, h('strong', {}, text), detail ? h('p', {}, detail) : null));
  }

  function banForm() {
    const target = h('input', {id: 'ban-target', name: 'target', required: true, placeholder: '203.0.113.9 or 203.0.113.0/28', spellcheck: 'false', autocomplete: 'off'});
    const action = h('select', {id: 'ban-action', name: 'action'},
      h('option', {value: 'blackhole'}, 'Blackhole (RTBH)'),
      h('option', {value: 'flowspec-discard'}, 'FlowSpec discard'),
      h('option', {value: 'flowspec-ratelimit'}, 'FlowSpec rate limit'));
    const ttl = h('input', {id: 'ban-ttl', name: 'ttl', placeholder: 'default', size: 8, spellcheck: 'false'});
    const rateIn = h('input', {id: 'ban-rate', name: 'rate_mbps', type: 'number', min: '0', step: 'any', size: 8});
    const proto = h('select', {id: 'ban-protocol', name: 'protocol'}, ['', 'udp', 'tcp', 'icmp'].map(p => h('option', {value: p}, p || 'any')));
    const ports = h('input', {id: 'ban-src-ports', name: 'src_ports', placeholder: 'e.g. 53,123', size: 10, spellcheck: 'false'});
    const reason = h('input', {id: 'ban-reason', name: 'reason', placeholder: 'why (kept with the action)', size: 24});
    const rateRow = h('label', {class: 'field', hidden: true}, 'Rate limit (Mbps)', rateIn);
    const matchRows = [h('label', {class: 'field', hidden: true}, 'Protocol', proto), h('label', {class: 'field', hidden: true}, 'Source ports', ports)];
    action.addEventListener('change', () => {
      rateRow.hidden = action.value !== 'flowspec-ratelimit';
      for (const r of matchRows) r.hidden = action.value === 'blackhole';
    });
    return h('form', {id: 'ban-form', class: 'ban', onsubmit: async ev => {
      ev.preventDefault();
      const body = {target: target.value.trim(), action: action.value, reason: reason.value.trim() || 'manual ban from the dashboard'};
      if (ttl.value.trim()) body.ttl = ttl.value.trim();
      if (action.value === 'flowspec-ratelimit') body.rate_mbps = Number(rateIn.value);
      if (action.value !== 'blackhole' && (proto.value || ports.value.trim())) {
        body.match = {};
        if (proto.value) body.match.protocol = proto.value;
        if (ports.value.trim()) body.match.src_ports = ports.value.split(',').map(p => p.trim()).filter(Boolean);
      }
      const dry = ctxRef.status.dry_run;
      const ok = await confirm(`${action.selectedOptions[0].textContent} on ${body.target}?`, [
        dry ? 'Dry-run: nothing reaches a router; the action is recorded as it would have been announced.'
          : 'This is announced to every BGP peer now: traffic to this target is dropped at the routers.',
        `For ${body.ttl || 'the configured TTL'}. The safety guard checks it first (protected prefixes, allow-list, caps).`], 'Ban');
      if (!ok) return;
      try {
        const a = await post('/api/v1/mitigations', body);
        say(true, `In force: ${a.id}`, `${a.kind} on ${a.target} until ${when(a.expires)}${a.dry_run ? ' (dry-run: would have been announced)' : ''}.`);
        target.value = '';
      } catch (e) {
        say(false, e.code === 'refused' ? 'The safety guard refused it' : 'Not done', e.message + (e.reason ? ` (${e.reason})` : ''));
      }
      ctxRef.refresh();
    }},
    h('h2', {}, 'Manual ban'),
    h('div', {class: 'fields'},
      h('label', {class: 'field'}, 'Target', target), h('label', {class: 'field'}, 'Action', action),
      h('label', {class: 'field'}, 'TTL', ttl), rateRow, matchRows, h('label', {class: 'field grow'}, 'Reason', reason),
      h('button', {type: 'submit', class: 'primary', id: 'ban-submit'}, 'Ban…')));
  }

  async function unban(a) {
    const ok = await confirm(`Withdraw ${a.kind} on ${a.target}?`, [
      ctxRef.status.dry_run ? 'Dry-run: nothing was announced; the action is dropped from the list.' : 'The route is withdrawn from every BGP peer now.',
      a.attacks && a.attacks.length ? `It was put in place for attack ${a.attacks.map(id => '#' + id).join(', ')}; if the attack goes on, the ladder may act again.` : 'It was put in place by hand.'], 'Withdraw');
    if (!ok) return;
    try {
      const r = await del('/api/v1/mitigations/' + encodeURIComponent(a.id));
      say(true, `Withdrawn: ${a.id}`, `${r.withdrawn} route${r.withdrawn === 1 ? '' : 's'} withdrawn.`);
    } catch (e) {
      say(false, 'Not withdrawn', e instanceof ApiError ? e.message : String(e));
    }
    ctxRef.refresh();
  }

  function tick() {
    for (const el of document.querySelectorAll('[data-expires]')) {
      const left = (Date.parse(el.dataset.expires) - Date.now()) / 1000;
      el.textContent = left > 0 ? duration(left) : 'expiring';
    }
  }

  return {
    title: 'Mitigations',
    every: 5000,
    wants: e => e.kind && e.kind.startsWith('mitigation_'),
    dispose() { clearInterval(ticker); },
    async render(ctx) {
      ctxRef = ctx;
      const {mitigations: list} = await get('/api/v1/mitigations');
      clearInterval(ticker);
      ticker = setInterval(tick, 1000);
      const cols = [
        ['Action', a => h('span', {class: 'chip'}, a.kind)],
        ['Target', a => a.target],
        ['Match', a => matchText(a)],
        ['Reason', a => a.reason || '–'],
        // An action a ladder put in place outlives its attack until its
        // TTL runs out; only a manual one has no ladder.
        ['Attacks', a => (a.attacks || []).length ? a.attacks.map(id => h('a', {href: '#/attacks/' + id}, '#' + id + ' '))
          : a.ladder ? h('span', {class: 'muted'}, 'ended') : 'manual'],
        ['Expires', a => when(a.expires)],
        ['Time left', a => h('span', {'data-expires': a.expires, class: 'ttl'}, duration(a.ttl_left_seconds))],
      ];
      if (ctx.canOperate) cols.push(['', a => h('button', {type: 'button', class: 'small-btn', id: 'unban-' + a.id, 'aria-label': `Withdraw ${a.kind} on ${a.target}`, onclick: () => unban(a)}, 'Withdraw…')]);
      if (result === null) answer.replaceChildren();
      return h('div', {class: 'page'},
        h('h1', {}, 'Mitigations'),
        section(`In force (${list.length})`, h('div', {id: 'mitigation-list'}, table('Mitigations in force', cols, list, 'No blackhole or FlowSpec rule in force.'))),
        ctx.canOperate ? h('section', {class: 'card'}, form, answer)
          : h('p', {class: 'muted', id: 'read-only-note'}, ctx.status.access.scope === 'open'
            ? 'Reads are open without a token: sign in with an operate token to ban and withdraw.'
            : 'Your token can read only: banning and withdrawing need an operate token.'));
    },
  };
}

function matchText(a) {
  const m = a.match;
  const parts = [];
  if (m) {
    if (m.protocol) parts.push(m.protocol);
    if (m.src_ports) parts.push('src ' + m.src_ports.join(','));
    if (m.dst_ports) parts.push('dst ' + m.dst_ports.join(','));
    if (m.packet_length) parts.push('len ' + m.packet_length);
    if (m.tcp_flags) parts.push('flags ' + m.tcp_flags);
    if (m.fragment) parts.push('frag ' + m.fragment);
  }
  if (a.rate_mbps) parts.push('≤ ' + fmtRate('mbps', a.rate_mbps));
  return parts.join(' ') || (a.kind === 'blackhole' ? 'all traffic' : '–');
}
