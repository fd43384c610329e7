// Browser test of the dashboard, run by TestDashboardInBrowser (web/
// browser_test.go) against a real daemon: Debian's chromium driven by
// playwright-core. Each step throws on a failure; the Go test reads the
// exit code, the step lines and the final RESULT line.
//
// Environment: KAPKAN_URL, KAPKAN_READ_TOKEN, KAPKAN_OPERATE_TOKEN,
// KAPKAN_RULES_DIR (a rule directory of the daemon), KAPKAN_SHOTS (where
// screenshots go), KAPKAN_TARGET and KAPKAN_LABELS (the attack the
// capture holds). Protocol on stdio: the script prints READY once signed
// in and waiting on the attacks page; the test sends the capture and
// writes GO.

import {chromium} from 'playwright-core';
import {writeFileSync, mkdirSync} from 'node:fs';
import {createInterface} from 'node:readline';

const env = k => { const v = process.env[k]; if (!v) throw new Error(k + ' is not set'); return v; };
const base = env('KAPKAN_URL'), readToken = env('KAPKAN_READ_TOKEN'), operateToken = env('KAPKAN_OPERATE_TOKEN');
const rulesDir = env('KAPKAN_RULES_DIR'), shots = env('KAPKAN_SHOTS'), target = env('KAPKAN_TARGET');
const labels = env('KAPKAN_LABELS').split(',');
mkdirSync(shots, {recursive: true});

const lines = createInterface({input: process.stdin});
const nextLine = () => new Promise(resolve => lines.once('line', resolve));
const step = name => console.log('STEP ' + name);
function expect(cond, what) { if (!cond) throw new Error('expected ' + what); }

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
    '--no-first-run', '--disable-component-update', '--disable-sync'],
});
const errors = [];
const result = {};
try {
  const ctx = await browser.newContext({viewport: {width: 1440, height: 900}});
  ctx.setDefaultTimeout(20000);
  const page = await ctx.newPage();
  page.on('pageerror', e => errors.push('page error: ' + e.message));
  page.on('console', m => { if (m.type() === 'error' && !/401|422|Failed to load resource/.test(m.text())) errors.push('console: ' + m.text()); });

  // The event stream's first connection is cut: the page must say so and
  // come back on its own.
  let cut = true;
  await page.route('**/api/v1/events', route => {
    if (cut) { cut = false; return route.abort('connectionreset'); }
    return route.continue();
  });

  step('sign-in page, first render and weight');
  await page.goto(base + '/', {waitUntil: 'load'});
  await page.waitForSelector('#token');
  Object.assign(result, await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const res = performance.getEntriesByType('resource');
    const fcp = performance.getEntriesByName('first-contentful-paint')[0];
    return {
      first_contentful_paint_ms: fcp ? Math.round(fcp.startTime) : -1,
      transfer_bytes: nav.transferSize + res.reduce((n, r) => n + r.transferSize, 0),
      decoded_bytes: nav.decodedBodySize + res.reduce((n, r) => n + r.decodedBodySize, 0),
      files: 1 + res.length,
    };
  }));
  await page.screenshot({path: `${shots}/signin-1440.png`});

  step('a wrong token is refused');
  await page.fill('#token', 'not-a-token');
  await page.click('form.signin button[type=submit]');
  await page.waitForSelector('text=That token was not accepted');

  step('the read token signs in and shows its scope');
  await page.fill('#token', readToken);
  await page.click('form.signin button[type=submit]');
  await page.waitForSelector('#who .scope-read');
  expect((await page.textContent('#who')).includes('read'), 'the scope in the header');
  // Time to the first page with data, token in the session: a reload.
  await page.reload({waitUntil: 'load'});
  await page.waitForSelector('main .tiles');
  await page.waitForFunction(() => performance.getEntriesByName('kapkan-first-page').length > 0);
  Object.assign(result, await page.evaluate(() => ({
    overview_first_paint_ms: Math.round(performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1),
    overview_rendered_ms: Math.round(performance.getEntriesByName('kapkan-first-page')[0].startTime),
  })));

  step('the dry-run banner shows');
  expect(await page.isVisible('#dry-run-banner'), 'a dry-run banner');
  expect((await page.textContent('#dry-run-banner')).includes('Dry-run'), 'the banner to say dry-run');

  step('the event stream reconnects after a cut');
  await page.waitForSelector('#live.live-live', {timeout: 15000});

  step('the attack appears live with its labels');
  await page.goto(base + '/#/attacks');
  await page.waitForSelector('h1:has-text("Attacks")');
  console.log('READY');
  expect((await nextLine()) === 'GO', 'GO from the test');
  const sent = Date.now();
  const row = page.locator('tr', {has: page.locator(`a:text-is("${target}/32")`)}).first();
  await row.waitFor({timeout: 30000});
  result.attack_shown_after_send_ms = Date.now() - sent;
  const chipsText = await row.locator('.chip').allTextContents();
  for (const l of labels) expect(chipsText.includes(l), `label ${l} on the attack row (have ${chipsText})`);

  step('the attack page: labels, rates, sample, timeline');
  await row.locator(`a:text-is("${target}/32")`).click();
  await page.waitForSelector('h2:has-text("Mitigation timeline")');
  const h1 = await page.textContent('h1');
  for (const l of labels) expect(h1.includes(l), `label ${l} on the attack page`);
  await page.waitForSelector('.timeline li');
  expect((await page.textContent('.timeline')).includes('would have been announced (dry-run)'), 'a dry-run step in the timeline');
  await page.waitForSelector('h2:has-text("Flow sample")');
  expect(await page.locator('.bars li').count() > 0, 'the sample summary bars');
  await page.waitForSelector('svg.chart path.line');
  const attackURL = page.url();

  step('a read token gets no ban or withdraw button');
  await page.goto(base + '/#/mitigations');
  await page.waitForSelector('h1:has-text("Mitigations")');
  await page.waitForSelector('#read-only-note');
  expect(await page.locator('#ban-form').count() === 0, 'no ban form for a read token');
  expect(await page.locator('button:has-text("Withdraw")').count() === 0, 'no withdraw button for a read token');
  await page.goto(base + '/#/rules');
  await page.waitForSelector('#last-reload');
  expect(await page.locator('#reload-rules').count() === 0, 'no reload button for a read token');

  step('screenshots of every page (read token)');
  const pages = [['overview', '/'], ['attacks', '/attacks'], ['attack', attackURL.split('#')[1]], ['mitigations', '/mitigations'],
    ['rules', '/rules'], ['exporters', '/exporters'], ['history', '/history']];
  const mobile = await ctx.newPage();
  await mobile.setViewportSize({width: 390, height: 844});
  mobile.on('pageerror', e => errors.push('page error (390): ' + e.message));
  await mobile.goto(base + '/'); // a tab of its own: it signs in too
  await mobile.waitForSelector('#token');
  await mobile.screenshot({path: `${shots}/signin-390.png`});
  await mobile.fill('#token', readToken);
  await mobile.click('form.signin button[type=submit]');
  await mobile.waitForSelector('#who .scope-read');
  for (const [name, path] of pages) {
    for (const [p, w] of [[page, 1440], [mobile, 390]]) {
      await p.goto(base + '/#' + path);
      await p.waitForSelector('main h1, main .page');
      await p.waitForTimeout(700); // data, then charts drawn on the next frame
      await p.screenshot({path: `${shots}/${name}-${w}.png`, fullPage: true});
      // Nothing may be wider than the screen but the scrolling tables.
      const over = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(over <= 1, `${name} at ${w} px to fit the width (over by ${over} px)`);
    }
  }

  step('the exporter and the history show the capture');
  await page.goto(base + '/#/exporters');
  await page.waitForSelector('td:has-text("netflow9")');
  // The capture's rate comes from NetFlow v9 options data: said in words.
  await page.waitForSelector('td:has-text("1:512 from options data")');
  await page.goto(base + '/#/history');
  await page.click('#h-search');
  await page.waitForSelector(`table a:text-is("${target}/32")`);

  step('keyboard: the skip link, then the navigation');
  await page.goto(base + '/#/');
  await page.reload();
  await page.waitForSelector('main .page');
  await page.keyboard.press('Tab');
  expect(await page.evaluate(() => document.activeElement.className) === 'skip', 'the skip link first');
  await page.keyboard.press('Tab'); // brand
  await page.keyboard.press('Tab'); // Overview
  await page.keyboard.press('Tab'); // Attacks
  expect(await page.evaluate(() => document.activeElement.textContent) === 'Attacks', 'Tab to reach the Attacks link');
  await page.keyboard.press('Enter');
  await page.waitForSelector('h1:has-text("Attacks")');

  step('sign out, sign in with the operate token');
  await page.click('#sign-out');
  await page.waitForSelector('#token');
  await page.fill('#token', operateToken);
  await page.click('form.signin button[type=submit]');
  await page.waitForSelector('#who .scope-operate');

  step('a manual ban: confirmed, answered, listed');
  await page.goto(base + '/#/mitigations');
  await page.waitForSelector('#ban-form');
  await page.fill('#ban-target', '203.0.113.77');
  await page.fill('#ban-ttl', '15m');
  await page.click('#ban-submit');
  await page.waitForSelector('dialog.confirm[open]');
  expect((await page.textContent('dialog.confirm')).includes('Dry-run'), 'the confirmation to say dry-run');
  await page.screenshot({path: `${shots}/ban-confirm-1440.png`});
  await page.keyboard.press('Escape'); // cancelled: nothing happens
  await page.waitForSelector('dialog.confirm', {state: 'detached'});
  expect(await page.locator('#mitigation-list td:text-is("203.0.113.77/32")').count() === 0, 'a cancelled ban to do nothing');
  await page.click('#ban-submit');
  await page.click('#confirm-ok');
  await page.waitForSelector('#ban-answer .answer.ok');
  await page.waitForSelector('#mitigation-list td:text-is("203.0.113.77/32")');
  expect(await page.locator('#mitigation-list .ttl').first().textContent() !== '', 'a TTL countdown');

  step('the safety guard\'s answer to a ban it refuses');
  await page.fill('#ban-target', '198.51.100.1');
  await page.click('#ban-submit');
  await page.click('#confirm-ok');
  await page.waitForSelector('#ban-answer .answer.error');
  const refusal = await page.textContent('#ban-answer');
  expect(refusal.includes('safety guard refused'), 'the refusal named as the guard\'s: ' + refusal);
  await page.screenshot({path: `${shots}/ban-refused-1440.png`, fullPage: true});

  step('withdraw the manual ban');
  await page.click('#unban-blackhole_203\\.0\\.113\\.77_32');
  await page.click('#confirm-ok');
  await page.waitForSelector('#ban-answer .answer.ok');
  await page.waitForSelector('#mitigation-list td:text-is("203.0.113.77/32")', {state: 'detached'});

  step('a reload with a broken rule file shows its error, the rules keep running');
  await page.goto(base + '/#/rules');
  await page.waitForSelector('#reload-rules');
  const before = await page.locator('ul.names').first().textContent();
  writeFileSync(rulesDir + '/broken.yaml', 'kapkan_rules: 1\nrules:\n  - name: broken\n    match: udp_share >\n');
  await page.click('#reload-rules');
  await page.waitForSelector('#reload-errors');
  const errText = await page.textContent('#reload-errors');
  expect(errText.includes('broken.yaml:4'), 'the error to name broken.yaml line 4: ' + errText);
  await page.waitForSelector('#last-reload.error');
  expect(await page.locator('ul.names').first().textContent() === before, 'the running rules unchanged');
  await page.screenshot({path: `${shots}/rules-reload-error-1440.png`, fullPage: true});

  await mobile.close();
  expect(errors.length === 0, 'no script errors: ' + errors.join('; '));
  console.log('RESULT ' + JSON.stringify(result));
} finally {
  await browser.close();
  lines.close();
}
