// The contact-centre pages against the suite's vigild: calls made through
// the PBX API (a pbx token) on line-1, whose desk (desk-1) has the camera
// hall-1. /calls finds a call by its number written another way, links
// the agent's view and downloads the rows as CSV; the camera's timeline
// marks the calls; /calls/{id} plays the
// call's audio with its waveform and the desk's camera on the audio's
// clock, seeks from the waveform, holds the call; an auditor saves notes and tags; a
// security user has no calls at all.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { launch, as, go, axe, shot, noProblems, narrowFits, apiGet, BASE, isoS } from './helpers.js';

const TOKEN = process.env.VIGIL_PBX_TOKEN;
let browser;
const calls = {};

async function pbx(method, path, body) {
  const res = await fetch(BASE + '/api/v1' + path, { method, body: JSON.stringify(body),
    headers: { Authorization: 'Bearer ' + TOKEN, 'Content-Type': 'application/json' } });
  const data = await res.json();
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${JSON.stringify(data)}`);
  return data;
}

before(async () => {
  assert.ok(TOKEN, 'the suite made a pbx token');
  browser = await launch();
  const now = Date.now();
  calls.aStart = now - 22000;
  // the call the tests open: 14 s of line-1 that are recorded by now
  calls.a = (await pbx('POST', '/calls', { call_id: 'ui-call-a', source: 'line-1', start: isoS(calls.aStart),
    end: isoS(now - 8000), direction: 'in', caller: '8 (912) 345-67-89', callee: '101', agent: 'ivanova',
    queue: 'credit', account: 'A-1001', tags: ['жалоба'] })).id;
  calls.b = (await pbx('POST', '/calls', { call_id: 'ui-call-b', source: 'line-1', start: isoS(now - 40000),
    end: isoS(now - 33000), direction: 'out', caller: '101', callee: '+7 495 000-11-22', agent: 'petrov',
    queue: 'sales' })).id;
  assert.ok(calls.a && calls.b && calls.a !== calls.b, JSON.stringify(calls));
});
after(async () => { await browser.close(); });

// The media element sel has played at least `secs` seconds since first seen.
async function plays(page, sel, secs = 1) {
  await page.waitForFunction(([s, n]) => {
    const el = document.querySelector(s);
    if (!el || el.paused || !(el.currentTime > 0)) return false;
    el.dataset.t0 ??= String(el.currentTime);
    return el.currentTime - Number(el.dataset.t0) > n;
  }, [sel, secs], { timeout: 30000 });
}

// The camera shows the audio's moment within ms, twice in a row.
async function inSync(page, ms) {
  await page.waitForFunction((lim) => {
    const a = Number(document.querySelector('main audio').dataset.wall);
    const v = Number(document.querySelector('main .views video').dataset.wall);
    if (!a || !v) return false;
    window.syncOk = Math.abs(a - v) <= lim ? (window.syncOk || 0) + 1 : 0;
    return window.syncOk >= 2;
  }, ms, { timeout: 30000, polling: 250 });
}

test('/calls: search by a number written another way finds the call; agent view; CSV; sorting', async () => {
  const page = await as(browser, 'inv');
  await go(page, '/calls');
  await page.waitForSelector(`main a[href="/calls/${calls.a}"]`);
  assert.equal(await page.locator('nav a[href="/calls"][aria-current=page]').count(), 1, 'in the menu');
  assert.match(await page.textContent('main tbody'), /GMT\+3/, 'times in the office zone with offset');
  await axe(page, '/calls');
  await shot(page, 'calls');
  // sorting by duration: the 14 s call above the 7 s one, then the other way
  await page.click('main th button[data-sort=duration]');
  assert.equal(await page.getAttribute('main th:has(button[data-sort=duration])', 'aria-sort'), 'descending');
  const order = () => page.$$eval('main tbody tr td:first-child a', (as) => as.map((a) => a.getAttribute('href')));
  let hrefs = await order();
  assert.ok(hrefs.indexOf(`/calls/${calls.a}`) < hrefs.indexOf(`/calls/${calls.b}`), hrefs.join(' '));
  await page.click('main th button[data-sort=duration]');
  hrefs = await order();
  assert.ok(hrefs.indexOf(`/calls/${calls.a}`) > hrefs.indexOf(`/calls/${calls.b}`), hrefs.join(' '));
  // the number as a customer would say it
  await page.fill('main input[name=number]', '9123456789');
  await page.click('main form button[type=submit]');
  await page.waitForFunction((b) => !document.querySelector(`main a[href="/calls/${b}"]`), calls.b);
  assert.equal(await page.locator(`main a[href="/calls/${calls.a}"]`).count(), 1);
  assert.match(await page.textContent('main tbody'), /\+79123456789/);
  assert.match(page.url(), /number=9123456789/, 'the search is in the URL');
  // the rows as CSV, built from what was fetched
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('main button:has-text("Скачать CSV")')]);
  const csv = readFileSync(await dl.path(), 'utf8');
  assert.match(csv, /^\ufeffid,call_id,source,start/);
  assert.match(csv, /ui-call-a,line-1,.*,14,in,\+79123456789,101,ivanova,credit,A-1001/);
  assert.doesNotMatch(csv, /ui-call-b/);
  // the agent's view: linked from the agent cell, with its summary
  await page.click('main tbody a:has-text("ivanova")');
  await page.waitForSelector('h1:has-text("ivanova")');
  await page.waitForSelector('main .summary .card');
  assert.match(await page.textContent('main .summary'), /Звонков\s*1/);
  assert.match(await page.textContent('main .summary'), /0:14/);
  await page.setViewportSize({ width: 390, height: 844 });
  await narrowFits(page);
  await page.setViewportSize({ width: 1440, height: 900 });
  // the desk's camera marks the calls on its timeline
  await go(page, '/sources/hall-1?at=' + isoS(calls.aStart));
  await page.waitForFunction(() => Number(document.querySelector('main .tl')?.dataset.calls) >= 2);
  noProblems(page);
  await page.context().close();
});

test('/calls/{id}: audio plays with its waveform, the desk camera follows it, seek from the waveform', async () => {
  const page = await as(browser, 'inv');
  await go(page, '/calls/' + calls.a);
  await page.waitForSelector('h1:has-text("+79123456789")');
  // wavesurfer drew the peaks in its shadow root
  await page.waitForFunction(() => {
    const host = document.querySelector('main .call-wave > div');
    return host && host.shadowRoot && host.shadowRoot.querySelectorAll('canvas').length > 0;
  });
  assert.match(await page.textContent('main h2:has-text("desk-1")'), /desk-1/);
  await page.click('main button.play');
  await plays(page, 'main audio', 1);
  assert.ok(await page.evaluate(() => document.querySelector('main audio').webkitAudioDecodedByteCount > 0), 'audio decoded');
  await plays(page, 'main .views video', 1);
  await inSync(page, 80);
  // a click at 3/4 of the waveform: the audio goes there and the video follows
  const box = await page.locator('main .call-wave').boundingBox();
  await page.mouse.click(box.x + box.width * 0.75, box.y + box.height / 2);
  await page.waitForFunction(() => Math.abs(document.querySelector('main audio').currentTime - 10.5) < 1.5);
  await inSync(page, 80);
  await page.selectOption('main select.speed', '2');
  assert.equal(await page.evaluate(() => document.querySelector('main audio').playbackRate), 2);
  // an investigator may not annotate: notes are shown, not editable
  assert.equal(await page.locator('main textarea[name=notes]').count(), 0);
  assert.equal(await page.locator('main .call-actions button').count(), 2, 'hold and export');
  await page.click('main button.play');
  await axe(page, '/calls/{id}');
  await shot(page, 'call');
  // hold the call: its hold lists it on /holds
  await page.click('main .call-actions button:has-text("удержание")');
  await page.waitForSelector('dialog.dlg[open]');
  await page.fill('dialog input[name=case]', 'C-CALL-1');
  await page.fill('dialog textarea[name=reason]', 'жалоба клиента');
  await page.click('dialog button[type=submit]');
  await page.waitForSelector('dialog .msg.ok:not(:empty)');
  await page.click('dialog button:has-text("Закрыть")');
  await go(page, '/holds');
  await page.waitForSelector(`main tr:has-text("C-CALL-1") a[href="/calls/${calls.a}"]`);
  noProblems(page);
  await page.context().close();
});

test('an auditor saves notes and tags; they are found by text', async () => {
  const page = await as(browser, 'aud');
  await go(page, '/calls/' + calls.a);
  await page.waitForSelector('main textarea[name=notes]');
  assert.equal(await page.locator('main .call-actions').count(), 0, 'no hold or export permission');
  await page.fill('main textarea[name=notes]', 'клиент недоволен ставкой');
  await page.fill('main input[name=tags]', 'жалоба, кредит');
  await page.click('main form.annotate button[type=submit]');
  await page.waitForSelector('main form.annotate .msg.ok');
  const c = await apiGet(page, '/calls/' + calls.a);
  assert.equal(c.notes, 'клиент недоволен ставкой');
  assert.deepEqual(c.tags, ['жалоба', 'кредит']);
  const found = await apiGet(page, '/calls?text=' + encodeURIComponent('ставкой'));
  assert.deepEqual(found.calls.map((x) => x.id), [calls.a]);
  await page.setViewportSize({ width: 390, height: 844 });
  await narrowFits(page);
  noProblems(page);
  await page.context().close();
});

test('a security user has no calls: no menu entry, the pages say not found, the API refuses', async () => {
  const page = await as(browser, 'guard');
  assert.equal(await page.locator('nav a[href="/calls"]').count(), 0);
  for (const p of ['/calls', '/calls/' + calls.a]) {
    await go(page, p);
    await page.waitForSelector('h1:has-text("Страница не найдена")');
  }
  assert.equal((await page.request.get(BASE + '/api/v1/calls')).status(), 403);
  const one = (await page.request.get(BASE + '/api/v1/calls/' + calls.a)).status();
  assert.ok(one === 404 || one === 403, `a call: ${one}`);
  await page.context().close();
});
