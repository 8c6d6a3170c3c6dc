// The live wall (/live) against the suite's vigild: four tiles play (an
// H.264 camera over WebRTC, the H.265 one over MSE or with the "cannot
// decode" message), one tile's sound at a time, the layout kept on the
// server across a reload, a tile reconnecting by itself after its WHEP
// session is cut, sessions ended when the page is left; and the
// preferences API with hostile input.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, as, go, ready, axe, shot, noProblems, BASE } from './helpers.js';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

const WALL = ['hall-1', 'gate-1', 'hall-2', 'yard-1'];
const CSRF = { 'X-Requested-With': 'vigil' };

async function putLayout(page, value) {
  const res = await page.request.put(BASE + '/api/v1/me/prefs/live.layout',
    { headers: { ...CSRF, 'Content-Type': 'application/json' }, data: Buffer.from(JSON.stringify(value)) });
  assert.equal(res.status(), 200, await res.text());
}

const tile = (name) => `main figure.tile:has(option[value="${name}"]:checked)`;

// The tile's video has played at least `secs` seconds since first seen here.
async function tilePlays(page, name, secs = 1) {
  await page.waitForFunction(([sel, n]) => {
    const v = document.querySelector(sel + ' video');
    if (!v || !(v.currentTime > 0) || v.videoWidth === 0) return false;
    const key = 't0' + (v.srcObject ? 'rtc' : 'mse');
    v.dataset[key] ??= String(v.currentTime);
    return v.currentTime - Number(v.dataset[key]) > n;
  }, [tile(name), secs], { timeout: 45000, polling: 250 });
}

async function liveViewers(page, name) {
  const res = await page.request.get(BASE + '/api/v1/sources/' + name);
  const s = await res.json();
  return s.live ? s.live.viewers : null;
}

test('the wall with 4 tiles plays: WebRTC for H.264, MSE or words for H.265, one tile\u2019s sound at a time', async () => {
  const page = await as(browser, 'guard');
  await putLayout(page, { tiles: 4, sources: WALL });
  await go(page, '/live');
  assert.equal(await page.locator('main figure.tile').count(), 4);
  assert.ok(await page.locator('header nav a[href="/live"][aria-current="page"]').count(), 'menu entry');
  for (const name of ['hall-1', 'gate-1', 'yard-1']) await tilePlays(page, name);
  assert.equal(await page.getAttribute(tile('hall-1'), 'data-transport'), 'webrtc');
  assert.equal(await page.textContent(tile('hall-1') + ' .transport'), 'WebRTC');
  // H.265: either this Chromium decodes it through MSE, or the tile says so
  await page.waitForFunction((sel) => {
    const el = document.querySelector(sel);
    return el.dataset.state === 'unsupported' || (el.dataset.transport === 'mse' && el.querySelector('video').currentTime > 1);
  }, tile('hall-2'), { timeout: 45000 });
  const hevc = await page.evaluate((sel) => {
    const el = document.querySelector(sel);
    return { state: el.dataset.state, transport: el.dataset.transport, text: el.querySelector('.tile-msg').textContent,
      rtsp: el.querySelector('.tile-msg a')?.href || null };
  }, tile('hall-2'));
  if (hevc.state === 'unsupported') {
    assert.match(hevc.text, /H\.265/);
    assert.ok(hevc.rtsp ? /^rtsps?:\/\/.+\/hall-2$/.test(hevc.rtsp) : /RTSP/.test(hevc.text), JSON.stringify(hevc));
  } else {
    assert.equal(hevc.transport, 'mse');
  }
  // sound: off everywhere, then on for one tile at a time
  const muted = () => page.evaluate(() => [...document.querySelectorAll('main figure.tile video')].map((v) => v.muted));
  assert.deepEqual(await muted(), [true, true, true, true]);
  await page.click(tile('hall-1') + ' button[aria-pressed]');
  assert.deepEqual(await muted(), [false, true, true, true]);
  await page.click(tile('gate-1') + ' button[aria-pressed]');
  assert.deepEqual(await muted(), [true, false, true, true]);
  assert.equal(await page.getAttribute(tile('gate-1') + ' button[aria-pressed]', 'aria-pressed'), 'true');
  // "replay the last 30 s" points at the player 30 s back
  const href = await page.getAttribute(tile('hall-1') + ' a.replay', 'href');
  const at = Date.parse(decodeURIComponent(href.split('at=')[1]));
  assert.ok(href.startsWith('/sources/hall-1?at=') && Math.abs(Date.now() - 30e3 - at) < 5000, href);
  await axe(page, 'live wall');
  await shot(page, 'live-wall');
  // leaving the page ends every session of the wall
  const viewers = await liveViewers(page, 'hall-1');
  if (viewers !== null) assert.ok(viewers >= 1, 'hall-1 has a viewer while the wall shows it');
  await go(page, '/');
  if (viewers !== null) {
    await page.waitForFunction(async () => {
      const r = await fetch('/api/v1/sources/hall-1');
      return (await r.json()).live.viewers === 0;
    }, null, { timeout: 15000, polling: 500 });
  }
  noProblems(page);
  await page.context().close();
});

test('a tile reconnects by itself after its WebRTC session is cut', async () => {
  const page = await as(browser, 'guard');
  await putLayout(page, { tiles: 1, sources: ['hall-1'] });
  await go(page, '/live');
  await tilePlays(page, 'hall-1');
  const first = await page.getAttribute(tile('hall-1'), 'data-session');
  assert.ok(first, 'a WHEP session');
  const res = await page.request.delete(BASE + first, { headers: CSRF });
  assert.ok([200, 204].includes(res.status()), String(res.status()));
  // a new session, and the picture moving again on it
  await page.waitForFunction(([sel, old]) => {
    const s = document.querySelector(sel).dataset.session;
    return s && s !== old;
  }, [tile('hall-1'), first], { timeout: 45000, polling: 250 });
  await page.evaluate((sel) => { delete document.querySelector(sel + ' video').dataset.t0rtc; }, tile('hall-1'));
  await tilePlays(page, 'hall-1');
  noProblems(page);
  await page.context().close();
});

test('the layout is kept for the account: 9 tiles and a changed source survive a reload', async () => {
  const page = await as(browser, 'guard');
  await putLayout(page, { tiles: 4, sources: WALL });
  await go(page, '/live');
  const saved = () => page.waitForResponse((r) => r.url().endsWith('/api/v1/me/prefs/live.layout') &&
    r.request().method() === 'PUT' && r.status() === 200);
  let wait = saved();
  await page.check('main input[name=tiles][value="9"]');
  await wait;
  assert.equal(await page.locator('main figure.tile').count(), 9);
  wait = saved();
  await page.selectOption('main figure.tile >> nth=4 >> select', 'hall-2');
  await wait;
  await page.reload();
  await ready(page);
  assert.equal(await page.locator('main figure.tile').count(), 9);
  assert.ok(await page.isChecked('main input[name=tiles][value="9"]'));
  assert.equal(await page.inputValue('main figure.tile >> nth=4 >> select'), 'hall-2');
  assert.equal(await page.inputValue('main figure.tile >> nth=0 >> select'), 'hall-1');
  const { value } = await (await page.request.get(BASE + '/api/v1/me/prefs/live.layout')).json();
  assert.equal(value.tiles, 9);
  assert.deepEqual(value.sources.slice(0, 5), [...WALL, 'hall-2']);
  await putLayout(page, { tiles: 4, sources: WALL });
  noProblems(page);
  await page.context().close();
});

test('preferences API: bad key, too big, not JSON, wrong type, no CSRF, no session, too many keys', async () => {
  const page = await as(browser, 'inv');
  const put = (key, body, headers = { ...CSRF, 'Content-Type': 'application/json' }) =>
    page.request.put(BASE + '/api/v1/me/prefs/' + key, { headers, data: Buffer.from(body) });
  const code = async (res) => (await res.json()).error.code;
  let r = await page.request.get(BASE + '/api/v1/me/prefs/nothing.here');
  assert.deepEqual([r.status(), await r.json()], [200, { key: 'nothing.here', value: null }]);
  for (const key of ['Live', 'a b', 'x'.repeat(33), '%C3%A9t%C3%A9', 'a%2Fb', 'a%00']) {
    r = await put(key, '1');
    assert.ok([400, 404].includes(r.status()), `${key}: ${r.status()}`);
    if (r.status() === 400 && !key.includes('%2F') && !key.includes('%00')) assert.equal(await code(r), 'invalid_key');
  }
  r = await put('big', JSON.stringify({ s: 'x'.repeat(5000) }));
  assert.equal(r.status(), 413);
  r = await put('bad', '{"tiles": 4');
  assert.deepEqual([r.status(), await code(r)], [400, 'invalid_json']);
  r = await put('bad', '{"a":1,"a":2}');
  assert.equal(r.status(), 400);
  r = await put('bad', '1', { ...CSRF, 'Content-Type': 'text/plain' });
  assert.equal(r.status(), 415);
  r = await put('bad', '1', { 'Content-Type': 'application/json' });
  assert.equal(r.status(), 403);
  const anon = await browser.newContext();
  r = await anon.request.get(BASE + '/api/v1/me/prefs/live.layout');
  assert.equal(r.status(), 401);
  await anon.close();
  // any JSON value round-trips, compact; a key is the account's own
  r = await put('x.1', ' [1, "\u00e9", {"b": null}] ');
  assert.deepEqual(await r.json(), { key: 'x.1', value: [1, '\u00e9', { b: null }] });
  r = await page.request.get(BASE + '/api/v1/me/prefs/x.1');
  assert.deepEqual((await r.json()).value, [1, '\u00e9', { b: null }]);
  // at most 32 keys per account; replacing one at the cap still works
  for (let i = 2; i <= 32; i++) assert.equal((await put('x.' + i, String(i))).status(), 200);
  r = await put('x.33', '33');
  assert.deepEqual([r.status(), await code(r)], [409, 'too_many_prefs']);
  assert.equal((await put('x.32', '0')).status(), 200);
  noProblems(page);
  await page.context().close();
});
