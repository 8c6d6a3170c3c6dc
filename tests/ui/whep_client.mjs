// A WHEP client in Debian's chromium for tests/integration_live.py (not a
// node test file: the Python suite runs it and checks what it prints). One
// page (about:blank) per run makes a recvonly offer, node POSTs it to vigild
// as the suite says, the page takes the answer, and the browser's own stats
// say what arrived. Prints one JSON line.
//
//   node whep_client.mjs '{"base":"http://127.0.0.1:P","source":"gate",
//     "auth":{"Authorization":"Bearer ..."}, "audio":true, "seconds":4,
//     "delete":true}'
import { chromium } from 'playwright-core';

const cfg = JSON.parse(process.argv[2]);
const out = { steps: [] };
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--mute-audio',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required'],
});
try {
  const page = await (await browser.newContext()).newPage();
  if (cfg.debug) await page.evaluate(() => { globalThis.DEBUG_STATS = 1; });
  const offer = await page.evaluate(async (audio) => {
    const pc = new RTCPeerConnection();
    window.pc = pc;
    pc.addTransceiver('video', { direction: 'recvonly' });
    if (audio) pc.addTransceiver('audio', { direction: 'recvonly' });
    window.firstFrameAt = 0;
    pc.ontrack = (ev) => {
      if (ev.track.kind === 'audio') {
        // played (chromium runs with --mute-audio): stats count samples only
        // of audio that is played out
        const a = document.createElement('audio');
        a.autoplay = true;
        a.srcObject = new MediaStream([ev.track]);
        document.body.appendChild(a);
        return;
      }
      if (ev.track.kind !== 'video') return;
      const v = document.createElement('video');
      v.muted = true;
      v.autoplay = true;
      v.srcObject = new MediaStream([ev.track]);
      document.body.appendChild(v);
      const tick = () => {
        if (v.videoWidth > 0 && !window.firstFrameAt) window.firstFrameAt = performance.now();
        else if (!window.firstFrameAt) v.requestVideoFrameCallback(tick);
      };
      v.requestVideoFrameCallback(tick);
    };
    const o = await pc.createOffer();
    await pc.setLocalDescription(o);
    // non-trickle on our side too: vigild gets every candidate in the offer
    await new Promise((res) => {
      if (pc.iceGatheringState === 'complete') return res();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && res();
      setTimeout(res, 2000);
    });
    return pc.localDescription.sdp;
  }, !!cfg.audio);
  out.offer = offer;
  const t0 = Date.now();
  const postedAt = await page.evaluate(() => performance.now());
  const r = await fetch(`${cfg.base}/api/v1/sources/${encodeURIComponent(cfg.source)}/whep`, {
    method: 'POST', headers: { 'Content-Type': 'application/sdp', ...cfg.auth }, body: offer,
  });
  out.status = r.status;
  out.location = r.headers.get('location');
  out.content_type = r.headers.get('content-type');
  const text = await r.text();
  out.answer_ms = Date.now() - t0;
  if (r.status !== 201) {
    out.body = text;
  } else {
    out.answer = text;
    await page.evaluate((sdp) => window.pc.setRemoteDescription({ type: 'answer', sdp }), text);
    const deadline = Date.now() + (cfg.seconds || 4) * 1000 + 8000;
    let connectedAt = 0;
    while (Date.now() < deadline) {
      const st = await page.evaluate(async () => {
        const s = { state: window.pc.connectionState, first: window.firstFrameAt };
        (await window.pc.getStats()).forEach((x) => {
          if (x.type === 'inbound-rtp' && x.kind === 'video') {
            s.framesDecoded = x.framesDecoded || 0;
            s.frameWidth = x.frameWidth || 0;
            s.frameHeight = x.frameHeight || 0;
            s.jitterBufferDelay = x.jitterBufferDelay;
            s.jitterBufferEmittedCount = x.jitterBufferEmittedCount;
            s.videoCodecId = x.codecId;
          }
          if (x.type === 'transport') s.transportBytes = x.bytesReceived;
          if (globalThis.DEBUG_STATS) (s.all = s.all || []).push(x);
          if (x.type === 'inbound-rtp' && x.kind === 'audio') {
            s.totalSamplesReceived = x.totalSamplesReceived || 0;
            s.audioCodecId = x.codecId;
          }
        });
        const stats = await window.pc.getStats();
        if (s.audioCodecId && stats.get(s.audioCodecId)) s.audioMime = stats.get(s.audioCodecId).mimeType;
        if (s.videoCodecId && stats.get(s.videoCodecId)) s.videoMime = stats.get(s.videoCodecId).mimeType;
        return s;
      });
      out.steps.push(st);
      if (st.state === 'connected' && !connectedAt) connectedAt = Date.now();
      if (st.state === 'failed' || st.state === 'closed') break;
      if (connectedAt && Date.now() - connectedAt > (cfg.seconds || 4) * 1000) break;
      await new Promise((res) => setTimeout(res, 250));
    }
    const last = out.steps[out.steps.length - 1] || {};
    // from the POST to the first decoded frame shown (logged by the suite,
    // never asserted: timings are for bench/)
    if (last.first) out.first_frame_ms = Math.round(last.first - postedAt);
    if (cfg.delete && out.location) {
      const d = await fetch(cfg.base + out.location, { method: 'DELETE', headers: cfg.auth });
      out.delete_status = d.status;
    }
  }
} catch (e) {
  out.error = String(e && e.stack || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
