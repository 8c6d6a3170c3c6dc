// A measurement, not a test (bench/bench_seek.py runs it): in headless
// chromium, /sources/{name}?at=T over a day of recording, then N seeks to
// arbitrary moments of that day through the player's "go to" field; for
// each, the time from the seek to the first new frame shown
// (requestVideoFrameCallback), and where it went (playlist, the page's own
// work, the first media byte, the frame). Prints one JSON line.
//
// usage: node bench_seek.mjs SOURCE DAY_FROM_MS DAY_TO_MS [N]
import { launch, as, go, isoS } from './helpers.js';

const [source, dayFrom, dayTo] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const n = Number(process.argv[5] || 50);

// Seeded, so every run seeks to the same moments.
let seed = 20261202;
const rand = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };

const browser = await launch();
const page = await as(browser, 'admin');
if (process.env.BENCH_SEEK_DEBUG) page.on('console', (m) => console.error('console:', m.type(), m.text()));
const start = dayFrom + 3600e3;
await go(page, `/sources/${encodeURIComponent(source)}?at=${isoS(start)}`);
await page.waitForFunction(() => { const v = document.querySelector('main video');
  return v && !v.paused && v.currentTime > 0.5; }, null, { timeout: 60000 });

const runs = [];
for (let i = 0; i < n; i++) {
  // a whole minute (the field's step) at least a minute inside the day
  const T = Math.floor((dayFrom + 60e3 + rand() * (dayTo - dayFrom - 180e3)) / 60e3) * 60e3;
  const r = await page.evaluate(async ([T, timeoutMs]) => {
    const v = document.querySelector('main video');
    const form = document.querySelector('main form.jump');
    const picker = form.querySelector('input[type=datetime-local]');
    const clock = document.querySelector('main time.clock');
    // the field shows the office's wall time, converted by the page's own
    // module (the same instance: the same URL app.js imports it by)
    const zoned = await import(document.querySelector('script[type=module]').src.replace(/app\.js$/, 'i18n.js'))
      .then((m) => m.utcToZoned);
    picker.value = zoned(T);
    // every seek's own requests (the buffer holds 250 by default)
    performance.clearResourceTimings();
    performance.setResourceTimingBufferSize(1000);
    return await new Promise((resolve) => {
      let done = false;
      const t0 = performance.now();
      // What was fetched meanwhile ([path, start, duration] from the seek)
      // and where the time went: the playlist answered (0 when the window
      // held T), the page's own work until its first media request, that
      // request's first byte, then until the frame was shown.
      const breakdown = (shown) => {
        const es = performance.getEntriesByType('resource').filter((e) => e.startTime >= t0);
        const net = es.map((e) => [e.name.replace(location.origin, '').replace(/\?.*/, '').slice(-40),
          Math.round(e.startTime - t0), Math.round(e.duration)]);
        const pl = es.find((e) => e.name.includes('/playlist.m3u8'));
        const media = es.find((e) => /\/media\/\d+/.test(e.name));
        const plEnd = pl ? pl.responseEnd - t0 : 0;
        if (!media) return { net };
        const mStart = media.startTime - t0, mByte = (media.responseStart || media.responseEnd) - t0;
        return { net, playlist_ms: plEnd, page_ms: mStart - plEnd, first_byte_ms: mByte - mStart,
          frame_ms: shown - mByte };
      };
      const give = (what) => { if (!done) { done = true; resolve(what); } };
      setTimeout(() => give({ ms: null, why: 'timeout', clock: Number(clock.dataset.ms), ct: v.currentTime,
        state: [v.readyState, v.paused, v.seeking, [...Array(v.buffered.length).keys()].map((i) => [v.buffered.start(i), v.buffered.end(i)])],
        net: breakdown(0).net,
        said: document.querySelector('main .player .msg')?.textContent || '' }), timeoutMs);
      // The first frame presented once the player has moved to T (its clock
      // says T: set when the seek was issued) at the position asked for.
      const cb = (now, meta) => {
        if (done) return;
        const shown = Number(clock.dataset.ms);
        if (now >= t0 && !v.seeking && Math.abs(shown - T) < 3000 &&
            Math.abs(meta.mediaTime - v.currentTime) < 0.25) {
          give({ ms: now - t0, clock: shown, mediaTime: meta.mediaTime, ...breakdown(now - t0) });
          return;
        }
        v.requestVideoFrameCallback(cb);
      };
      v.requestVideoFrameCallback(cb);
      form.requestSubmit();
    });
  }, [T, 20000]);
  r.T = T;
  runs.push(r);
}
await page.context().close();
await browser.close();
const ok = runs.filter((r) => r.ms !== null).map((r) => r.ms).sort((a, b) => a - b);
const pct = (p) => (ok.length ? ok[Math.min(ok.length - 1, Math.floor(ok.length * p))] : null);
// the median of each part, over the seeks that opened a new window (asked
// for a playlist) and over those the window held
const median = (xs) => { const a = xs.slice().sort((x, y) => x - y); return a.length ? a[Math.floor(a.length / 2)] : null; };
const parts = (rs) => Object.fromEntries(['ms', 'playlist_ms', 'page_ms', 'first_byte_ms', 'frame_ms']
  .map((k) => [k, median(rs.filter((r) => typeof r[k] === 'number').map((r) => r[k]))]).concat([['n', rs.length]]));
const shown = runs.filter((r) => r.ms !== null);
if (process.env.BENCH_SEEK_DEBUG) for (const r of runs) console.error(JSON.stringify(r));
console.log(JSON.stringify({ seeks: n, shown: ok.length, p50_ms: pct(0.5), p90_ms: pct(0.9),
  max_ms: ok.length ? ok[ok.length - 1] : null,
  opened: parts(shown.filter((r) => r.playlist_ms > 0)), held: parts(shown.filter((r) => !(r.playlist_ms > 0))),
  failed: runs.filter((r) => r.ms === null) }));
