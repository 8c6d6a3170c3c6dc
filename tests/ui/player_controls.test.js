// The player's controls that playback.test.js leaves alone, against the
// suite's vigild: the J/K/L keys, the zoom buttons and wheel, the hover
// thumbnail (a real snapshot.jpg), the date-time picker (office zone,
// Europe/Moscow), "copy link to this moment" and the link itself, and the
// hold dialog of a range selected on the timeline with shift-drag.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, as, go, axe, noProblems, apiGet, auditRows, BASE, isoS } from './helpers.js';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

const clock = async (page) => Number(await page.getAttribute('main time.clock', 'data-ms'));
const rate = (page) => page.evaluate(() => document.querySelector('main video').playbackRate);
const paused = (page) => page.evaluate(() => document.querySelector('main video').paused);
// The timeline's visible span in seconds (its slider's aria bounds).
const span = (page) => page.evaluate(() => {
  const s = document.querySelector('main .tl[role=slider]');
  return Number(s.getAttribute('aria-valuemax')) - Number(s.getAttribute('aria-valuemin'));
});

async function playing(page) {
  await page.waitForFunction(() => {
    const el = document.querySelector('main video');
    if (!el || el.paused || !(el.currentTime > 0)) return false;
    el.dataset.t0 ??= String(el.currentTime);
    return el.currentTime - Number(el.dataset.t0) > 0.5;
  }, null, { timeout: 30000 });
}

// The x (page pixels) of wall time ms on the timeline, from its aria bounds.
async function xOf(page, ms) {
  return page.evaluate((t) => {
    const s = document.querySelector('main .tl[role=slider]');
    const c = s.querySelector('canvas').getBoundingClientRect();
    const from = Number(s.getAttribute('aria-valuemin')) * 1000;
    const to = Number(s.getAttribute('aria-valuemax')) * 1000;
    return { x: c.left + ((t - from) / (to - from)) * c.width, y: c.top + c.height - 12 };
  }, ms);
}

// The first recorded instant of a source (its oldest segment's start).
async function firstRecorded(page, name) {
  const { segments } = await apiGet(page, `/sources/${name}/segments?from=${isoS(Date.now() - 3600e3)}&to=${isoS(Date.now())}`);
  assert.ok(segments.length > 0, `${name} has segments`);
  return Math.min(...segments.map((s) => Date.parse(s.start)));
}

test('J/K/L, zoom, hover thumbnail, the date-time picker and copy link', async () => {
  const page = await as(browser, 'admin');
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
  const T = Math.floor((Date.now() - 15000) / 1000) * 1000;
  await go(page, '/sources/hall-1?at=' + isoS(T));
  await playing(page);

  // L: faster while playing (1 -> 2 -> 4), J: slower (4 -> 2 -> 1), K: pause
  await page.keyboard.press('l');
  assert.equal(await rate(page), 2);
  await page.keyboard.press('l');
  assert.equal(await rate(page), 4);
  assert.equal(await page.inputValue('main select.speed'), '4');
  await page.keyboard.press('j');
  await page.keyboard.press('j');
  assert.equal(await rate(page), 1);
  await page.keyboard.press('k');
  await page.waitForFunction(() => document.querySelector('main video').paused);
  // J at 1x: back 10 s (still paused)
  const before10 = await clock(page);
  await page.keyboard.press('j');
  await page.waitForFunction((c) => {
    const ms = Number(document.querySelector('main time.clock').dataset.ms);
    return Math.abs(ms - (c - 10000)) < 1500;
  }, before10, { timeout: 15000 });
  assert.equal(await paused(page), true, 'J while paused keeps it paused');
  // L while paused: plays at 1x
  await page.keyboard.press('l');
  await page.waitForFunction(() => !document.querySelector('main video').paused);
  assert.equal(await rate(page), 1);

  // zoom: "+" narrows the visible span, the wheel widens it
  const s0 = await span(page);
  await page.click('main .tl-bar button[aria-label="Крупнее"]');
  await page.waitForFunction((s) => {
    const e = document.querySelector('main .tl[role=slider]');
    return Number(e.getAttribute('aria-valuemax')) - Number(e.getAttribute('aria-valuemin')) < s;
  }, s0);
  const s1 = await span(page);
  // over the middle of the bar (the playhead may have left the narrowed view)
  const mid = await page.evaluate(() => {
    const c = document.querySelector('main .tl[role=slider] canvas').getBoundingClientRect();
    return { x: c.left + c.width / 2, y: c.top + c.height - 12 };
  });
  await page.mouse.move(mid.x, mid.y);
  await page.mouse.wheel(0, 300);
  await page.waitForFunction((s) => {
    const e = document.querySelector('main .tl[role=slider]');
    return Number(e.getAttribute('aria-valuemax')) - Number(e.getAttribute('aria-valuemin')) > s;
  }, s1);

  // hover over recorded time: a 160 px wide thumbnail from snapshot.jpg
  const over = await xOf(page, (await clock(page)) - 3000);
  await page.mouse.move(over.x - 2, over.y);
  await page.mouse.move(over.x, over.y);
  await page.waitForFunction(() => {
    const img = document.querySelector('main img.tl-thumb');
    return img && !img.hidden && img.complete && img.naturalWidth === 160 && /snapshot\.jpg/.test(img.src);
  }, null, { timeout: 30000 });
  assert.match(await page.textContent('main .tl-thumb-time'), /\d\d:\d\d:\d\d/);
  await page.mouse.move(5, 5);

  // the date-time picker takes the office zone's time (UTC+3) to the
  // minute; a minute before the recording began lands on its first frame
  const first = await firstRecorded(page, 'hall-1');
  const minute = Math.floor((Date.now() - 5000) / 60e3) * 60e3;
  const expect = Math.max(minute, first);
  const zoned = new Date(minute + 3 * 3600e3).toISOString().slice(0, 16);
  await page.fill('main form.jump input[type=datetime-local]', zoned);
  await page.click('main form.jump button[type=submit]');
  await page.waitForFunction((m) => {
    const ms = Number(document.querySelector('main time.clock').dataset.ms);
    return ms >= m - 1000 && ms < m + 15000;
  }, expect, { timeout: 20000 });

  // copy link: the clipboard holds this page's URL at the moment shown
  await page.keyboard.press('k');
  await page.waitForFunction(() => document.querySelector('main video').paused);
  const shown = await clock(page);
  await page.click('main form.jump button:has-text("Скопировать ссылку")');
  await page.waitForSelector('main .msg:has-text("скопирована")');
  const link = await page.evaluate(() => navigator.clipboard.readText());
  const u = new URL(link);
  assert.equal(u.origin, new URL(BASE).origin);
  assert.equal(u.pathname, '/sources/hall-1');
  const at = /^\d+(\.\d+)?$/.test(u.searchParams.get('at')) ? Number(u.searchParams.get('at')) * 1000
    : Date.parse(u.searchParams.get('at'));
  assert.ok(Math.abs(at - shown) < 1500, `link at ${u.searchParams.get('at')} for the clock ${new Date(shown).toISOString()}`);
  // the link opens the player at that moment
  await page.goto(link);
  await page.waitForFunction((m) => {
    const c = document.querySelector('main time.clock');
    return c && Math.abs(Number(c.dataset.ms) - m) < 5000;
  }, at, { timeout: 20000 });
  noProblems(page);
  await page.context().close();
});

test('hold dialog: a range selected with shift-drag is put on hold, audited and drawn', async () => {
  const page = await as(browser, 'admin');
  const T = Math.floor((Date.now() - 30000) / 1000) * 1000;
  await go(page, '/sources/hall-1?at=' + isoS(T));
  await playing(page);
  await page.keyboard.press('k');
  const ph = await clock(page);
  const a = await xOf(page, ph - 20000), b = await xOf(page, ph);
  await page.keyboard.down('Shift');
  await page.mouse.move(a.x, a.y);
  await page.mouse.down();
  await page.mouse.move((a.x + b.x) / 2, a.y);
  await page.mouse.move(b.x, b.y);
  await page.mouse.up();
  await page.keyboard.up('Shift');
  await page.waitForSelector('main .actions.sel:not([hidden])');
  assert.match(await page.textContent('main .tl-range'), /·/, 'the selection is written beside the span');
  await page.click('main .actions.sel button:has-text("удержание")');
  await page.waitForSelector('dialog.dlg[open]');
  // required fields: nothing is sent while they are empty
  await page.click('dialog.dlg button[type=submit]');
  assert.equal(await page.isVisible('dialog.dlg .msg.ok:not(:empty)'), false);
  const caseNo = 'UI-HOLD-' + Date.now();
  await page.fill('dialog.dlg input[name=case]', caseNo);
  await page.fill('dialog.dlg textarea[name=reason]', 'жалоба клиента');
  await page.click('dialog.dlg button[type=submit]');
  await page.waitForSelector('dialog.dlg .msg.ok:has-text("удержание")');
  await axe(page, 'hold dialog');
  await page.keyboard.press('Escape');
  await page.waitForSelector('dialog.dlg', { state: 'detached' });

  const { holds } = await apiGet(page, '/holds');
  const hd = holds.find((x) => x.case === caseNo);
  assert.ok(hd, 'the hold is listed');
  assert.deepEqual(hd.sources, ['hall-1']);
  const len = Date.parse(hd.to) - Date.parse(hd.from);
  assert.ok(len >= 15000 && len <= 25000, `held ${len} ms for a 20 s drag`);
  const rows = await auditRows(page, 'hold.create');
  assert.ok(rows.some((r) => r.detail.includes(caseNo)), 'hold.create audited with the case');
  // the timeline draws it from /timeline's holds
  const tl = await apiGet(page, `/timeline?from=${hd.from}&to=${hd.to}&sources=hall-1`);
  assert.ok(tl.sources[0].holds.length >= 1, 'the timeline API returns the hold');
  noProblems(page);
  await page.context().close();
});
