// Rules: the rule set running, its last reload, and reload buttons for an
// operate token; a failed reload shows its errors (file, line, what was
// expected) while the last good set keeps running.

import {h, section, when} from '../lib/dom.js';
import {get, post} from '../lib/api.js';

export default function rules() {
  let outcome = null, ctxRef = null;
  const answer = h('div', {id: 'reload-answer', role: 'status', 'aria-live': 'polite'});

  function show(o) {
    outcome = o;
    answer.replaceChildren(h('div', {class: 'answer ' + (o.ok ? 'ok' : 'error')},
      h('strong', {}, o.title),
      o.errors && o.errors.length ? h('pre', {class: 'errors'}, o.errors.join('\n')) : null));
  }

  async function reload(what) {
    const path = what === 'rules' ? '/api/v1/rules/reload' : '/api/v1/config/reload';
    try {
      await post(path, {});
      show({ok: true, title: `${what === 'rules' ? 'Rules' : 'Configuration'} reloaded.`, errors: []});
    } catch (e) {
      // A rules reload's errors show under Last reload; a configuration
      // reload's here.
      const errs = what === 'rules' ? [] : e.errors && e.errors.length ? e.errors : [e.message];
      show({ok: false, title: what === 'rules' ? 'Rules not reloaded: the running rule set stays in place (the errors are above).'
        : 'Configuration not reloaded: the running configuration stays in place.', errors: errs});
    }
    ctxRef.refresh();
  }

  const list = (title, items, empty) => section(`${title} (${items.length})`,
    items.length ? h('ul', {class: 'names'}, items.map(n => h('li', {}, n))) : h('p', {class: 'muted'}, empty));

  return {
    title: 'Rules',
    wants: e => e.kind === 'rules_reloaded' || e.kind === 'config_reloaded',
    async render(ctx) {
      ctxRef = ctx;
      const r = await get('/api/v1/rules');
      const lr = r.last_reload;
      if (!outcome) answer.replaceChildren();
      return h('div', {class: 'page'},
        h('h1', {}, 'Rules'),
        h('div', {class: 'cols'},
          section('Rule set',
            h('dl', {class: 'facts'},
              h('dt', {}, 'Built-in set version'), h('dd', {}, r.version),
              h('dt', {}, 'Rules'), h('dd', {}, String(r.rules.length)),
              h('dt', {}, 'Ladders'), h('dd', {}, String(r.ladders.length)),
              h('dt', {}, 'WASM modules'), h('dd', {}, String(r.modules.length)))),
          section('Last reload',
            h('p', {id: 'last-reload', class: lr.ok ? 'ok' : 'error'}, lr.ok ? 'Worked' : 'Failed', ` · ${when(lr.at)} · ${lr.trigger || '–'}`),
            lr.errors.length ? h('pre', {class: 'errors', id: 'reload-errors'}, lr.errors.join('\n')) : null,
            ctx.canOperate ? h('div', {class: 'buttons'},
              h('button', {type: 'button', class: 'primary', id: 'reload-rules', onclick: () => reload('rules')}, 'Reload rules'),
              h('button', {type: 'button', id: 'reload-config', onclick: () => reload('config')}, 'Reload configuration'))
              : h('p', {class: 'muted', id: 'read-only-note'}, 'Reloading needs an operate token.'),
            answer)),
        h('div', {class: 'cols'},
          list('Rules', r.rules, 'No rule loaded.'),
          list('Ladders', r.ladders, 'No ladder.'),
          list('WASM modules', r.modules, 'No module loaded.'),
          list('Disabled', r.disabled, 'Nothing disabled.')));
    },
  };
}
