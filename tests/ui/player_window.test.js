// The player's playlist window and the H.265 words, against the suite's
// vigild: a window grows ahead of playback in the same MediaSource (no
// reopen where the first one ended, the clock still on the wall time), and
// an H.265 camera left out of the transcode ([source] transcode = no) in a
// browser that cannot decode H.265 gets words, the clip and the RTSP link.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, as, ready, noProblems, BASE, isoS } from './helpers.js';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

test('the playlist window grows in the same MediaSource: playback goes past its first end without a reopen', async () => {
  const page = await as(browser, 'admin');
  await page.goto(BASE + '/sources/hall-1?at=' + isoS(Date.now() - 10000));
  await ready(page);
  await page.waitForFunction(() => { const v = document.querySelector('main video');
    return v && !v.paused && v.currentTime > 0.5 && v.src.startsWith('blob:'); }, null, { timeout: 30000 });
  const first = await page.evaluate(() => {
    const v = document.querySelector('main video');
    window.emptied = 0;
    v.addEventListener('emptied', () => { window.emptied++; });
    const pl = performance.getEntriesByType('resource').map((e) => new URL(e.name))
      .filter((u) => u.pathname.endsWith('/hall-1/playlist.m3u8'));
    return { src: v.src, ct: v.currentTime, clock: Number(document.querySelector('main time.clock').dataset.ms),
      from: pl[0].searchParams.get('from'), to: Date.parse(pl[0].searchParams.get('to')) };
  });
  // played on 3 s past the end of the first window's playlist
  await page.waitForFunction((end) => Number(document.querySelector('main time.clock').dataset.ms) > end,
    first.to + 3000, { timeout: 60000 });
  const now = await page.evaluate(() => {
    const v = document.querySelector('main video');
    const pl = performance.getEntriesByType('resource').map((e) => new URL(e.name))
      .filter((u) => u.pathname.endsWith('/hall-1/playlist.m3u8'));
    return { src: v.src, ct: v.currentTime, emptied: window.emptied, clock: Number(document.querySelector('main time.clock').dataset.ms),
      asked: pl.map((u) => [u.searchParams.get('from'), Date.parse(u.searchParams.get('to'))]) };
  });
  assert.equal(now.src, first.src, 'the same MediaSource');
  assert.equal(now.emptied, 0, 'the element was never emptied (no reopen)');
  assert.ok(now.asked.length >= 2, JSON.stringify(now.asked));
  // grown: the same start, a later end each time
  for (let i = 1; i < now.asked.length; i++) {
    assert.equal(now.asked[i][0], first.from);
    assert.ok(now.asked[i][1] >= now.asked[i - 1][1], JSON.stringify(now.asked));
  }
  // the wall clock moved with the media (hall-1 records without a gap)
  const wallMoved = now.clock - first.clock, mediaMoved = (now.ct - first.ct) * 1000;
  assert.ok(Math.abs(wallMoved - mediaMoved) < 1500, `clock moved ${wallMoved} ms, media ${mediaMoved} ms`);
  noProblems(page);
  await page.context().close();
});

test('H.265 the browser cannot decode, on a camera left out of the transcode: words, the clip and the RTSP link', async () => {
  const page = await as(browser, 'admin');
  // "cannot decode", decided by the player's own capability check (this
  // Chromium may or may not decode H.265 itself)
  await page.addInitScript(() => {
    const hevc = (t) => /hvc1|hev1/i.test(String(t));
    const mse = MediaSource.isTypeSupported.bind(MediaSource);
    MediaSource.isTypeSupported = (t) => !hevc(t) && mse(t);
    const can = HTMLMediaElement.prototype.canPlayType;
    HTMLMediaElement.prototype.canPlayType = function (t) { return hevc(t) ? '' : can.call(this, t); };
  });
  const src = await (await page.request.get(BASE + '/api/v1/sources/hall-3')).json();
  assert.equal(src.transcode, false, 'the server offers no transcode of hall-3');
  assert.match(src.codec || '', /hevc|h265/i);
  const refused = await page.request.get(BASE + '/api/v1/sources/hall-3/playlist.m3u8?video=h264');
  assert.equal(refused.status(), 403);
  assert.equal((await refused.json()).error.code, 'transcode_disabled');
  const ui = await (await page.request.get(BASE + '/api/v1/ui')).json();
  assert.ok(ui.transcode_hevc && ui.rtsp, 'the suite transcodes other cameras and runs the relay');

  const T = Math.floor((Date.now() - 20000) / 1000) * 1000;
  await page.goto(BASE + '/sources/hall-3?at=' + isoS(T));
  await ready(page);
  const msg = page.locator('main .track-msg.hevc');
  await msg.waitFor({ timeout: 20000 });
  assert.match(await msg.textContent(), /H\.265 \(HEVC\), этот браузер его не декодирует/);
  assert.equal(await page.locator('main .track video').isHidden(), true, 'no black video box');
  // the clip: 5 minutes from T, served as MP4
  const clip = new URL(await msg.locator('a[download]').getAttribute('href'), BASE);
  assert.equal(clip.pathname, '/api/v1/sources/hall-3/clip.mp4');
  assert.equal(Date.parse(clip.searchParams.get('from')), T);
  const got = await page.request.get(clip.href, { headers: { Range: 'bytes=0-1023' } });
  assert.ok([200, 206].includes(got.status()), String(got.status()));
  assert.match(got.headers()['content-type'], /video\/mp4/);
  assert.equal((await got.body()).subarray(4, 8).toString(), 'ftyp');
  // the relay's RTSP URL of the camera, on the host the browser uses
  const rtsp = await msg.locator('a:not([download])').getAttribute('href');
  assert.equal(rtsp, `${ui.rtsp.scheme}://127.0.0.1:${ui.rtsp.port}/hall-3`);
  // neither played nor transcoded: no playlist asked for
  const asked = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name)
    .filter((n) => n.includes('/hall-3/playlist')));
  assert.deepEqual(asked, []);
  noProblems(page);
  await page.context().close();
});
