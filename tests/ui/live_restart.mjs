// Driven by tests/integration_live_wall.py (not part of the shared browser
// suite: it restarts its vigild): a one-tile live wall plays over WebRTC;
// after "restart" on stdin (vigild was stopped and started again) the tile
// must get a new WHEP session and play again by itself, with no reload.
// Prints "PLAYING <session>" and then "RECONNECTED <session>".
import { createInterface } from 'node:readline';
import { launch, as, go, BASE } from './helpers.js';

const tile = 'main figure.tile';
async function playing(page) {
  await page.waitForFunction((sel) => {
    const el = document.querySelector(sel);
    const v = el && el.querySelector('video');
    if (!v || !el.dataset.session || !(v.currentTime > 0) || v.videoWidth === 0) return false;
    el.dataset.t0 ??= String(v.currentTime);
    return v.currentTime - Number(el.dataset.t0) > 1;
  }, tile, { timeout: 60000, polling: 250 });
  return page.getAttribute(tile, 'data-session');
}

const rl = createInterface({ input: process.stdin });
const lines = rl[Symbol.asyncIterator]();
const browser = await launch();
try {
  const page = await as(browser, 'guard');
  const put = await page.request.put(BASE + '/api/v1/me/prefs/live.layout', {
    headers: { 'X-Requested-With': 'vigil', 'Content-Type': 'application/json' },
    data: Buffer.from(JSON.stringify({ tiles: 1, sources: ['hall-1'] })) });
  if (put.status() !== 200) throw new Error('layout: ' + put.status());
  await go(page, '/live');
  const first = await playing(page);
  if ((await page.getAttribute(tile, 'data-transport')) !== 'webrtc') throw new Error('not WebRTC');
  console.log('PLAYING ' + first);
  if ((await lines.next()).value !== 'restart') throw new Error('no restart');
  await page.waitForFunction(([sel, old]) => {
    const el = document.querySelector(sel);
    if (el.dataset.session && el.dataset.session !== old) {
      delete el.dataset.t0;
      return true;
    }
    return false;
  }, [tile, first], { timeout: 60000, polling: 250 });
  const second = await playing(page);
  console.log('RECONNECTED ' + second);
} finally {
  rl.close();
  await browser.close();
}
