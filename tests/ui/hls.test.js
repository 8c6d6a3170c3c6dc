// HLS playback in Chromium with the vendored hls.js, over vigild's
// playlist and media routes. The page is served on vigild's own origin
// (page.route answers two test-only URLs with vigild's own headers, CSP
// included), so cookies and the policy are the real ones.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, as, noProblems, BASE } from './helpers.js';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

const HTML = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>hls</title></head>
<body><video id="v" muted playsinline width="320"></video>
<script type="module" src="/__hls-test.js"></script></body></html>`;

// The playlist of the last 30 s of hall-1 (recorded as H.264 by the suite).
const SCRIPT = `import Hls from '/vendor/hls.js/hls.light.min.mjs';
const v = document.getElementById('v');
const to = new Date(Date.now() - 1000).toISOString();
const from = new Date(Date.now() - 30000).toISOString();
const url = '/api/v1/sources/hall-1/playlist.m3u8?from=' + from + '&to=' + to;
window.hlsErrors = [];
if (!Hls.isSupported()) {
  window.hlsErrors.push('MSE not supported');
} else {
  const hls = new Hls({ enableWorker: false });
  hls.on(Hls.Events.ERROR, (e, d) => { if (d.fatal) window.hlsErrors.push(d.type + ':' + d.details); });
  hls.loadSource(url);
  hls.attachMedia(v);
  hls.on(Hls.Events.MANIFEST_PARSED, () => { v.play().catch((e) => window.hlsErrors.push(String(e))); });
}
`;

test('hls.js plays a source playlist from vigild (currentTime advances, videoWidth right)', async () => {
  const page = await as(browser, 'admin');
  // answered with the headers vigild gives its own pages (CSP, no-store)
  await page.route(BASE + '/__hls-test.html', async (route) => {
    const real = await route.fetch({ url: BASE + '/' });
    await route.fulfill({ response: real, body: HTML,
      headers: { ...real.headers(), 'content-type': 'text/html; charset=utf-8' } });
  });
  await page.route(BASE + '/__hls-test.js', async (route) => {
    const real = await route.fetch({ url: BASE + '/' });
    await route.fulfill({ response: real, body: SCRIPT,
      headers: { ...real.headers(), 'content-type': 'text/javascript; charset=utf-8' } });
  });
  await page.goto(BASE + '/__hls-test.html');
  const csp = await page.evaluate(async () => (await fetch('/__hls-test.html')).headers.get('content-security-policy'));
  assert.match(csp || '', /media-src 'self' blob:/, 'the page runs under vigild\'s CSP');
  await page.waitForFunction(() => window.hlsErrors && (window.hlsErrors.length > 0 ||
    document.getElementById('v').currentTime > 1.0), null, { timeout: 30000 });
  const state = await page.evaluate(() => ({ errors: window.hlsErrors, t: document.getElementById('v').currentTime,
    w: document.getElementById('v').videoWidth, h: document.getElementById('v').videoHeight }));
  assert.deepEqual(state.errors, []);
  assert.ok(state.t > 1.0, `currentTime ${state.t}`);
  // camsim's H.264 test picture is 320x240
  assert.equal(state.w, 320);
  assert.equal(state.h, 240);
  noProblems(page);
  await page.context().close();
});
