// A measurement, not a test (bench/bench_live.py runs it): WHEP joins from
// headless chromium to one server. Per join: the time from the POST of the
// offer to the first decoded video frame (requestVideoFrameCallback), and
// from the RTCPeerConnection's creation; after 3 s of play, the video
// jitter-buffer delay from getStats (jitterBufferDelay / emitted count).
// Prints one JSON line.
//   node bench_live.mjs ORIGIN WHEP-PATH JOINS [USER]
// With USER (and VIGIL_PASSWORD), logs in to vigild first for its cookie.
import { launch } from './helpers.js';

const [origin, whepPath, joinsArg, user] = process.argv.slice(2);
const joins = Number(joinsArg || 20);
const browser = await launch();
const context = await browser.newContext();
const page = await context.newPage();
await page.goto(origin + '/healthz').catch(() => {});
if (user) {
  const ok = await page.evaluate(async ([u, p]) => (await fetch('/api/v1/login', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ user: u, password: p }) })).ok, [user, process.env.VIGIL_PASSWORD]);
  if (!ok) throw new Error('login failed');
}
const rows = [];
for (let i = 0; i < joins; i++) {
  rows.push(await page.evaluate(async (path) => {
    const t0 = performance.now();
    const pc = new RTCPeerConnection();
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const video = document.createElement('video');
    video.muted = true;
    video.autoplay = true;
    document.body.append(video);
    const stream = new MediaStream();
    pc.ontrack = (e) => { stream.addTrack(e.track); video.srcObject = stream; };
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') resolve();
      pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') resolve(); };
      setTimeout(resolve, 3000);
    });
    const tPost = performance.now();
    const res = await fetch(path, { method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/sdp', 'X-Requested-With': 'vigil' }, body: pc.localDescription.sdp });
    if (res.status !== 201) return { error: res.status + ' ' + await res.text() };
    const loc = res.headers.get('Location');
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
    const tFrame = await new Promise((resolve) => {
      video.requestVideoFrameCallback(() => resolve(performance.now()));
      setTimeout(() => resolve(null), 10000);
    });
    await new Promise((r) => setTimeout(r, 3000));
    let jb = null, audio = null, codec = null;
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video' && s.jitterBufferEmittedCount) {
        jb = 1000 * s.jitterBufferDelay / s.jitterBufferEmittedCount;
        codec = s.codecId && stats.get(s.codecId) ? stats.get(s.codecId).mimeType : null;
      }
      if (s.type === 'inbound-rtp' && s.kind === 'audio') audio = s.codecId && stats.get(s.codecId) ? stats.get(s.codecId).mimeType : null;
    });
    pc.close();
    video.remove();
    await fetch(new URL(loc, location.href), { method: 'DELETE', credentials: 'same-origin',
      headers: { 'X-Requested-With': 'vigil' } });
    return { fromPost: tFrame === null ? null : tFrame - tPost, fromStart: tFrame === null ? null : tFrame - t0,
      jitterMs: jb, video: codec, audio, width: video.videoWidth };
  }, whepPath));
  await new Promise((r) => setTimeout(r, 300));
}
await browser.close();
console.log(JSON.stringify(rows));
