// The player pages against the suite's vigild: /sources/{name}?at=T plays
// at T, crosses and seeks over a real gap (the flaky camera was stopped),
// G.711 audio is decoded, a call line plays and seeks, /view keeps its
// sources on one clock (a G.711 camera among them, its sound in its HLS
// media), H.265 is played (natively or transcoded) or explained, and an export made
// from the timeline downloads a zip that `vigilctl verify-export` accepts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launch, as, go, axe, shot, noProblems, narrowFits, BASE, isoS } from './helpers.js';

const GAP = JSON.parse(process.env.VIGIL_GAP || 'null');
const BUILD = process.env.VIGIL_BUILD;
let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

const clock = async (page) => Number(await page.getAttribute('main time.clock', 'data-ms'));

// The media element sel has played at least `secs` seconds since first seen.
async function plays(page, sel, secs = 1) {
  await page.waitForFunction(([s, n]) => {
    const el = document.querySelector(s);
    if (!el || el.paused || !(el.currentTime > 0)) return false;
    el.dataset.t0 ??= String(el.currentTime);
    return el.currentTime - Number(el.dataset.t0) > n;
  }, [sel, secs], { timeout: 30000 });
}

test('/sources/{name}?at=T plays at T: currentTime advances, videoWidth right, the clock shows T', async () => {
  const T = Math.floor((Date.now() - 20000) / 1000) * 1000;
  const page = await as(browser, 'admin');
  const t0 = Date.now();
  await go(page, '/sources/hall-1?at=' + isoS(T));
  await plays(page, 'main video');
  await page.keyboard.press('Space');
  await page.waitForFunction(() => document.querySelector('main video').paused);
  const elapsed = Date.now() - t0;
  const shown = await clock(page);
  assert.ok(shown >= T - 1000 && shown <= T + elapsed + 1000,
    `clock ${new Date(shown).toISOString()} for T ${new Date(T).toISOString()} after ${elapsed} ms`);
  assert.match(await page.textContent('main time.clock'), /GMT\+3/, 'wall clock in the office zone');
  const v = await page.evaluate(() => { const e = document.querySelector('main video'); return [e.videoWidth, e.videoHeight]; });
  assert.deepEqual(v, [320, 240]);
  // frame step: '.' forward by one frame (camsim: 25 fps), ',' back
  const ct = await page.evaluate(() => document.querySelector('main video').currentTime);
  await page.keyboard.press('.');
  await page.waitForFunction((c) => document.querySelector('main video').currentTime > c, ct);
  const step = await page.evaluate((c) => document.querySelector('main video').currentTime - c, ct);
  assert.ok(step > 0.01 && step < 0.1, `frame step ${step}`);
  // the speed control reaches 16x
  await page.selectOption('main select.speed', '16');
  assert.equal(await page.evaluate(() => document.querySelector('main video').playbackRate), 16);
  await axe(page, 'player');
  await shot(page, 'player');
  noProblems(page);
  await page.context().close();
});

test('playback crosses a gap without stalling; a click in the gap jumps to the next recording and says so', async () => {
  assert.ok(GAP, 'the suite made a gap');
  const page = await as(browser, 'admin');
  await go(page, `/sources/${GAP.source}?at=` + isoS(GAP.start * 1000 - 3000));
  await plays(page, 'main video', 0.5);
  await page.waitForFunction((end) => Number(document.querySelector('main time.clock').dataset.ms) > end,
    GAP.end * 1000 + 1000, { timeout: 30000 });
  // click the middle of the gap on the timeline (its slider value range is the view)
  const mid = (GAP.start + GAP.end) / 2 * 1000;
  await page.locator('main .tl-canvas').scrollIntoViewIfNeeded();
  const box = await page.locator('main .tl-canvas').boundingBox();
  const [min, max] = await page.evaluate(() => { const s = document.querySelector('main .tl');
    return [Number(s.getAttribute('aria-valuemin')), Number(s.getAttribute('aria-valuemax'))]; });
  await page.mouse.click(box.x + ((mid / 1000 - min) / (max - min)) * box.width, box.y + box.height - 8);
  await page.waitForFunction(() => /записи нет/.test(document.querySelector('main .msg.info')?.textContent || ''));
  const shown = await clock(page);
  assert.ok(shown >= GAP.end * 1000 - 1000 && shown < GAP.end * 1000 + 5000,
    `landed at ${new Date(shown).toISOString()}, gap ends ${new Date(GAP.end * 1000).toISOString()}`);
  await plays(page, 'main video', 0.5);
  noProblems(page);
  await page.context().close();
});

test('a call line plays and seeks (audio.wav, waveform from peaks)', async () => {
  const page = await as(browser, 'admin');
  await go(page, '/sources/line-1?at=' + isoS(Date.now() - 25000));
  await plays(page, 'main audio');
  const bytes = await page.evaluate(() => document.querySelector('main audio').webkitAudioDecodedByteCount);
  assert.ok(bytes > 0, 'audio decoded');
  const before = await clock(page);
  await page.keyboard.press('ArrowRight');
  await page.waitForFunction((b) => Number(document.querySelector('main time.clock').dataset.ms) > b + 4000, before);
  await plays(page, 'main audio', 0.3);
  await axe(page, 'call line player');
  noProblems(page);
  await page.context().close();
});

test('/view keeps cameras and a call line on one clock (within a frame); a G.711 camera plays with sound', async () => {
  const page = await as(browser, 'admin');
  await go(page, '/view?sources=hall-1,gate-1,line-1&at=' + isoS(Date.now() - 20000));
  await page.waitForFunction(() => {
    const w = [...document.querySelectorAll('main .track video, main .track audio')].map((e) => Number(e.dataset.wall));
    if (w.length !== 3 || w.some((x) => !x)) return false;
    const spread = Math.max(...w) - Math.min(...w);
    window.inSync = spread <= 40 ? (window.inSync || 0) + 1 : 0;
    return window.inSync >= 2;
  }, null, { timeout: 30000, polling: 250 });
  // gate-1 is a G.711 camera: its video plays, and its sound, converted to
  // FLAC inside the HLS media by the server, is decoded from that same
  // stream (no audio.wav beside it)
  await page.waitForFunction(() => [...document.querySelectorAll('main .track')][1]
    .querySelector('video').videoWidth > 0, null, { timeout: 30000 });
  const gate = await page.evaluate(() => { const b = [...document.querySelectorAll('main .track')][1];
    return [b.querySelector('video').videoWidth, b.querySelectorAll('audio').length]; });
  assert.equal(gate[0], 320, 'the G.711 camera\'s video plays');
  assert.equal(gate[1], 0, 'no audio element beside the G.711 camera');
  await page.waitForFunction(() => [...document.querySelectorAll('main .track')][1]
    .querySelector('video').webkitAudioDecodedByteCount > 8000, null, { timeout: 30000 });
  const media = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name)
    .filter((n) => n.includes('/gate-1/')));
  assert.ok(media.some((n) => /\/gate-1\/media\/\d+\?audio=flac&frag=\d+/.test(n)), 'converted fragments loaded');
  assert.ok(!media.some((n) => n.includes('/gate-1/audio.wav')), 'no audio.wav for the camera');
  await axe(page, '/view');
  await shot(page, 'view');
  noProblems(page);
  await page.context().close();
});

test('H.265: played where the browser decodes it, else as the server\'s H.264 transcode', async () => {
  const page = await as(browser, 'admin');
  await go(page, '/sources/hall-2?at=' + isoS(Date.now() - 20000));
  const hevc = await page.evaluate(() => MediaSource.isTypeSupported('video/mp4; codecs="hvc1.1.6.L93.B0"'));
  await plays(page, 'main video');
  if (!hevc) {
    // the suite's vigild has [playback] transcode_hevc = yes: H.264 made on the fly
    const media = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name)
      .filter((n) => n.includes('/hall-2/')));
    assert.ok(media.some((n) => /playlist\.m3u8\?.*video=h264/.test(n)), 'the transcoded playlist asked for');
    assert.ok(media.some((n) => /\/media\/\d+\?video=h264&frag=\d+/.test(n)), 'transcoded fragments loaded');
    assert.deepEqual(await page.evaluate(() => { const e = document.querySelector('main video'); return [e.videoWidth, e.videoHeight]; }), [320, 240]);
  }
  noProblems(page);
  await page.context().close();
});

test('export from the timeline: dialog, progress, a zip that verify-export accepts; /exports lists and deletes it', async () => {
  const page = await as(browser, 'inv');
  await go(page, '/sources/hall-1?at=' + isoS(Date.now() - 20000));
  await plays(page, 'main video', 0.3);
  await page.keyboard.press('Space');
  // shift-drag over 6 s of recording
  await page.locator('main .tl-canvas').scrollIntoViewIfNeeded();
  const box = await page.locator('main .tl-canvas').boundingBox();
  const [min, max] = await page.evaluate(() => { const s = document.querySelector('main .tl');
    return [Number(s.getAttribute('aria-valuemin')), Number(s.getAttribute('aria-valuemax'))]; });
  const x = (ms) => box.x + ((ms / 1000 - min) / (max - min)) * box.width;
  const a = Date.now() - 30000, b = a + 6000;
  await page.keyboard.down('Shift');
  await page.mouse.move(x(a), box.y + box.height - 8);
  await page.mouse.down();
  await page.mouse.move(x(b), box.y + box.height - 8, { steps: 4 });
  await page.mouse.up();
  await page.keyboard.up('Shift');
  await page.click('main .actions.sel button:has-text("Выгрузить")');
  await page.waitForSelector('dialog.dlg[open]');
  await page.fill('dialog input[name=case]', 'C-2026-117');
  await page.fill('dialog textarea[name=reason]', 'жалоба 117');
  await axe(page, 'export dialog');
  await shot(page, 'export-dialog');
  await page.click('dialog button[type=submit]');
  await page.waitForSelector('dialog a.download', { timeout: 60000 });
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('dialog a.download')]);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vigil-ui-export-'));
  try {
    const file = path.join(dir, 'bundle.zip');
    await dl.saveAs(file);
    const out = execFileSync(path.join(BUILD, 'vigilctl'), ['verify-export', file], { encoding: 'utf8' });
    assert.doesNotMatch(out, /FAILED/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  await page.click('dialog button:has-text("Закрыть")');
  // the exports page: listed, ready, deleted after a confirmation
  await go(page, '/exports');
  await page.waitForSelector('main tr:has-text("C-2026-117")');
  assert.equal(await page.locator('nav a[href="/exports"][aria-current=page]').count(), 1, 'in the menu');
  await axe(page, '/exports');
  await shot(page, 'exports');
  const row = page.locator('main tr:has-text("C-2026-117")').first();
  await row.locator('button.danger').click();
  await row.locator('button:has-text("Да, удалить")').click();
  await page.waitForSelector('main .msg.ok');
  noProblems(page);
  await page.context().close();
});

test('a security user sees no call lines and cannot reach their audio (404)', async () => {
  const page = await as(browser, 'guard');
  const res = await page.request.get(`${BASE}/api/v1/sources/line-1/audio.wav?from=${isoS(Date.now() - 20000)}&to=${isoS(Date.now() - 10000)}`);
  assert.equal(res.status(), 404);
  assert.equal(await page.locator('main a[href="/sources/line-1"]').count(), 0);
  assert.equal(await page.locator('nav a[href="/exports"]').count(), 0, 'no export permission, no menu entry');
  await go(page, '/view?sources=hall-1,line-1');
  await page.waitForSelector('main .msg.error');
  assert.equal(await page.locator('main .track').count(), 1);
  await go(page, '/sources/line-1');
  await page.waitForSelector('h1:has-text("Страница не найдена")');
  await page.context().close();
});

test('the player at 390 px: nothing wider than the window', async () => {
  const page = await as(browser, 'admin', { width: 390, height: 844 });
  await go(page, '/sources/hall-1?at=' + isoS(Date.now() - 20000));
  await plays(page, 'main video', 0.3);
  await narrowFits(page);
  await shot(page, 'player-390');
  noProblems(page);
  await page.context().close();
});
