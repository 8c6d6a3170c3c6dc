// One source's media element on the wall clock. A video source plays an
// HLS window of the archive ([at - 5 s, at + 1 h], reopened when playback
// or a seek leaves it) with the vendored hls.js, or the browser's own HLS
// where there is no MediaSource; its fragments carry their wall time
// (EXT-X-PROGRAM-DATE-TIME), which maps media time to wall time and back.
// A camera's G.711 sound is in the playlist's media (converted to FLAC by
// the server). An audio source plays audio.wav of the window: wall-clock
// true, so wall time is the window's start plus currentTime.
import { iso } from './timeline.js';
import { withReasonParam } from '../reason.js';

// Windows start just before the moment asked: hls.js places fragments by
// the playlist's rounded EXTINF durations until it has parsed them, so
// the fewer fragments before the target, the closer the first seek lands.
const BEFORE = 5e3;
const AFTER = 60 * 60e3;
let Hls = null;

async function hlsLib() {
  if (!Hls) Hls = (await import('../../vendor/hls.js/hls.light.min.mjs')).default;
  return Hls;
}

export class NoRecording extends Error {}

// with the access reason given on this page, if any ([server] require_access_reason)
function url(name, what) { return withReasonParam(`/api/v1/sources/${encodeURIComponent(name)}/${what}`); }

export class VideoTrack {
  constructor(name, el) {
    this.name = name;
    this.el = el;
    this.frags = [];
    this.win = null;
    this.target = null;
    this.frameDur = 0.04;
    this.measureFrames();
  }

  // requestVideoFrameCallback gives the media time of each frame shown; the
  // smallest step seen is the frame duration used by frame stepping.
  measureFrames() {
    if (!this.el.requestVideoFrameCallback) return;
    let last = null;
    const cb = (now, meta) => {
      if (last !== null && this.el.playbackRate === 1) {
        const d = meta.mediaTime - last;
        if (d > 0.005 && d < 0.5 && (this.measured === undefined || d < this.measured)) {
          this.measured = d;
          this.frameDur = d;
        }
      }
      last = meta.mediaTime;
      if (!this.closed) this.el.requestVideoFrameCallback(cb);
    };
    this.el.requestVideoFrameCallback(cb);
  }

  async open(atMs) {
    this.closeHls();
    const from = atMs - BEFORE, to = Math.min(atMs + AFTER, Date.now());
    if (to - from < 2000) throw new NoRecording();
    this.win = [from, to];
    // transcode: H.265 this browser cannot decode, as H.264 made by the
    // server ([playback] transcode_hevc)
    const src = url(this.name, `playlist.m3u8?from=${iso(from)}&to=${iso(to)}${this.transcode ? '&video=h264' : ''}`);
    const L = await hlsLib();
    if (L.isSupported()) {
      const cfg = { enableWorker: false, maxBufferLength: 20, backBufferLength: 30, autoStartLoad: false };
      const hls = new L(cfg);
      this.started = false;
      this.hls = hls;
      await new Promise((resolve, reject) => {
        hls.on(L.Events.LEVEL_LOADED, (ev, d) => {
          // hls.js's own fragment objects: it corrects their start from the
          // media's timestamps as they are parsed, and so does the mapping
          this.frags = d.details.fragments;
          resolve();
        });
        hls.on(L.Events.ERROR, (ev, d) => {
          if (!d.fatal) return;
          const code = d.response && d.response.code;
          if (code === 404) reject(new NoRecording());
          else if (this.frags.length) this.onFatal?.(d.details);
          else reject(new Error(d.details));
        });
        // the first fragments' true starts known, land the seek exactly
        hls.on(L.Events.FRAG_BUFFERED, () => {
          if (this.target === null) return;
          const at = this.timeOf(this.target);
          if (at && Math.abs(at.ct - this.el.currentTime) > 0.1) this.el.currentTime = at.ct;
          const b = this.el.buffered;
          for (let i = 0; at && i < b.length; i++) if (at.ct >= b.start(i) && at.ct < b.end(i)) this.target = null;
        });
        hls.loadSource(src);
        hls.attachMedia(this.el);
      });
    } else {
      // native HLS: wall time from the stream's start date
      this.el.src = src;
      await new Promise((resolve, reject) => {
        this.el.addEventListener('loadedmetadata', resolve, { once: true });
        this.el.addEventListener('error', () => reject(new NoRecording()), { once: true });
      });
      const start = this.el.getStartDate ? this.el.getStartDate().getTime() : NaN;
      this.frags = [{ start: 0, duration: this.el.duration, programDateTime: isNaN(start) ? from : start }];
    }
  }

  // Wall time (ms) of the frame at media time ct; null outside the window.
  wallAt(ct) {
    for (const f of this.frags)
      if (ct < f.start + f.duration + 1e-3 && ct >= f.start - 1e-3) return f.programDateTime + (ct - f.start) * 1000;
    return null;
  }

  wall() { return this.wallAt(this.el.currentTime); }

  // Media time of a wall time: {ct, ms (where it lands), jumped} or null
  // when the window does not hold it.
  timeOf(ms) {
    if (!this.win || ms < this.win[0] || ms > this.win[1]) return null;
    for (const f of this.frags) {
      const pdt = f.programDateTime;
      if (ms < pdt) return { ct: f.start, ms: pdt, jumped: pdt - ms > 1500 };
      if (ms < pdt + f.duration * 1000) return { ct: f.start + (ms - pdt) / 1000, ms, jumped: false };
    }
    return null;
  }

  // Seeks to a wall time, reopening the window when it does not hold it.
  async seek(ms) {
    let at = this.timeOf(ms);
    if (!at) {
      await this.open(ms);
      at = this.timeOf(ms);
      if (!at) throw new NoRecording();
    }
    this.target = at.ms;
    if (this.hls && !this.started) {
      this.started = true;
      this.hls.startLoad(at.ct);
    }
    this.el.currentTime = at.ct;
    return at;
  }

  // The window ends before now and playback is near its end: continue in
  // the next window.
  nearEnd() {
    const last = this.frags[this.frags.length - 1];
    return last && this.win[1] < Date.now() - 5000 && this.el.currentTime > last.start + last.duration - 3;
  }

  closeHls() {
    if (this.hls) { this.hls.destroy(); this.hls = null; }
    this.frags = [];
  }

  close() {
    this.closed = true;
    this.closeHls();
    this.el.removeAttribute('src');
  }
}

export class AudioTrack {
  constructor(name, el) {
    this.name = name;
    this.el = el;
    this.win = null;
    this.frameDur = 0.02;
  }

  async open(atMs) {
    const from = atMs - BEFORE, to = Math.min(atMs + AFTER, Date.now());
    if (to - from < 2000) throw new NoRecording();
    this.win = [Math.floor(from / 1000) * 1000, Math.floor(to / 1000) * 1000];
    this.el.src = url(this.name, `audio.wav?from=${iso(this.win[0])}&to=${iso(this.win[1])}`);
    await new Promise((resolve, reject) => {
      this.el.addEventListener('loadedmetadata', resolve, { once: true });
      this.el.addEventListener('error', () => reject(new NoRecording()), { once: true });
    });
  }

  wallAt(ct) { return this.win ? this.win[0] + ct * 1000 : null; }
  wall() { return this.wallAt(this.el.currentTime); }

  timeOf(ms) {
    if (!this.win || ms < this.win[0] || ms > this.win[1]) return null;
    return { ct: (ms - this.win[0]) / 1000, ms, jumped: false };
  }

  async seek(ms) {
    let at = this.timeOf(ms);
    if (!at) {
      await this.open(ms);
      at = this.timeOf(ms);
      if (!at) throw new NoRecording();
    }
    this.el.currentTime = at.ct;
    return at;
  }

  nearEnd() {
    return this.win && this.win[1] < Date.now() - 5000 && this.el.currentTime > this.el.duration - 2;
  }

  close() {
    this.closed = true;
    this.el.removeAttribute('src');
    this.el.load();
  }
}

// MediaSource can take HEVC in MP4 (hvc1 sample entries) in this browser.
export function hevcPlayable(el) {
  const type = 'video/mp4; codecs="hvc1.1.6.L93.B0"';
  if (window.MediaSource && MediaSource.isTypeSupported(type)) return true;
  return !window.MediaSource && el.canPlayType(type) !== '';
}

export const isHevc = (codecs) => /h265|hevc|hvc1|hev1/i.test(codecs || '');
