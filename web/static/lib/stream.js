// The live event stream (GET /api/v1/events, server-sent events) read
// through fetch, so the token goes in a header (EventSource cannot send
// one). It reconnects on its own, resuming after the last event seen
// (Last-Event-ID), with a growing pause while the daemon is away.

import {headers} from './api.js';

export function connect(onEvent, onState) {
  let last = '', stopped = false, ctrl = null, pause = 1000;

  function dispatch(block) {
    let id = '', kind = 'message', data = '';
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue; // keepalive
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (field === 'id') id = value;
      else if (field === 'event') kind = value;
      else if (field === 'data') data += (data ? '\n' : '') + value;
    }
    if (!data) return;
    if (kind === 'lost') {
      last = ''; // fell behind: start again from now, and re-read the views
      onEvent({kind: 'lost'});
      return;
    }
    if (id) last = id;
    try { onEvent(JSON.parse(data)); } catch { /* a broken event is skipped */ }
  }

  async function run() {
    while (!stopped) {
      try {
        ctrl = new AbortController();
        const hs = headers({Accept: 'text/event-stream'});
        if (last) hs['Last-Event-ID'] = last;
        const res = await fetch('/api/v1/events', {headers: hs, signal: ctrl.signal, cache: 'no-store'});
        if (res.status === 401) { onState('unauthorized'); return; }
        if (!res.ok || !res.body) throw new Error('status ' + res.status);
        onState('live');
        pause = 1000;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const {value, done} = await reader.read();
          if (done) break;
          buf += value.replace(/\r\n?/g, '\n');
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            dispatch(buf.slice(0, i));
            buf = buf.slice(i + 2);
          }
        }
      } catch { /* reconnect below */ }
      if (stopped) return;
      onState('reconnecting');
      await new Promise(r => setTimeout(r, pause));
      pause = Math.min(pause * 2, 15000);
    }
  }
  run();
  return () => { stopped = true; if (ctrl) ctrl.abort(); };
}
