// One source's media element on the wall clock. A video source plays an
// HLS window of the archive with the vendored hls.js, or the browser's own
// HLS where there is no MediaSource; its fragments carry their wall time
// (EXT-X-PROGRAM-DATE-TIME), which maps media time to wall time and back.
// The window is short (from just before the moment asked to STEP after
// it): hls.js parses every entry of a playlist on the page's thread before
// it asks for any media, so a seek's cost grows with the window. It is
// handed to hls.js as an EVENT playlist (no ENDLIST) and grows by STEP
// while playback nears its end, in the same MediaSource: no stall where one
// window would have ended. A seek outside it opens a new one.
// A camera's G.711 sound is in the playlist's media (converted to FLAC by
// the server). An audio source plays audio.wav of the window: wall-clock
// true, so wall time is the window's start plus currentTime.
import { iso } from './timeline.js';
import { withReasonParam } from '../reason.js';
import { errorText } from '../api.js';

// Windows start just before the moment asked: hls.js places fragments by
// the playlist's rounded EXTINF durations until it has parsed them, so
// the fewer fragments before the target, the closer the first seek lands.
const BEFORE = 5e3;
const AFTER = 60 * 60e3;     // an audio window (one WAV)
const STEP = 10 * 60e3;      // a video window, and what it grows by
const LEAD = 120;            // s of media left in the window: ask for the next part
const MAX_WINDOW = 3 * 3600e3; // a video window grows to this, then a seek opens the next
let Hls = null;

async function hlsLib() {
  if (!Hls) Hls = (await import('../../vendor/hls.js/hls.light.min.mjs')).default;
  return Hls;
}

export class NoRecording extends Error {}
// a later open of the same track took over
export class Superseded extends Error {}
// the server will not make what was asked (403: the transcode is off)
export class Refused extends Error {}

// with the access reason given on this page, if any ([server] require_access_reason)
function url(name, what) { return withReasonParam(`/api/v1/sources/${encodeURIComponent(name)}/${what}`); }

// The playlist text of a window; null when the range holds no recording.
async function fetchPlaylist(src) {
  const res = await fetch(src, { credentials: 'same-origin' });
  if (res.status === 404) return null;
  if (!res.ok) {
    let msg = res.statusText;
    try { msg = errorText((await res.json()).error.code); } catch { /* not JSON */ }
    throw res.status === 403 ? new Refused(msg) : new Error(msg);
  }
  const text = await res.text();
  return text.includes('#EXTINF') ? text : null;
}

// The fragment lines of a playlist: what must stay the same, in the same
// order, when a window grows (hls.js numbers fragments by position).
const body = (text) => {
  const i = text.search(/^#EXT-X-MAP/m);
  return i < 0 ? '' : text.slice(i).replace(/^#EXT-X-ENDLIST\n?/m, '');
};

// A LoaderStats as hls.js keeps them.
function loadStats() {
  const z = () => ({ start: 0, first: 0, end: 0 });
  return { aborted: false, loaded: 0, retry: 0, total: 0, chunkCount: 0, bwEstimate: 0,
    loading: z(), parsing: { start: 0, end: 0 }, buffering: z() };
}

export class VideoTrack {
  constructor(name, el) {
    this.name = name;
    this.el = el;
    this.frags = [];
    this.win = null;
    this.target = null;
    this.frameDur = 0.04;
    this.gen = 0;
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

  playlistUrl(from, to) {
    // transcode: H.265 this browser cannot decode, as H.264 made by the
    // server ([playback] transcode_hevc)
    return url(this.name, `playlist.m3u8?from=${iso(from)}&to=${iso(to)}${this.transcode ? '&video=h264' : ''}`);
  }

  async open(atMs) {
    this.closeHls();
    const gen = ++this.gen;
    const from = atMs - BEFORE, to = Math.min(atMs + STEP, Date.now());
    if (to - from < 2000) throw new NoRecording();
    const src = this.playlistUrl(from, to);
    this.win = [from, to];
    this.text = null;
    this.served = null;
    this.ended = false;
    this.retryAt = 0;
    const got = fetchPlaylist(src);
    got.catch(() => {}); // handled below, maybe after the library has loaded
    const L = await hlsLib();
    if (gen !== this.gen) throw new Superseded();
    if (L.isSupported()) {
      const track = this;
      // hls.js asks this for the playlist: the window's text, a reload
      // answered once the window has grown (or has ended)
      class WindowLoader {
        constructor() { this.stats = loadStats(); this.context = null; }
        load(context, config, callbacks) {
          this.context = context;
          this.callbacks = callbacks;
          this.stats = loadStats();
          this.stats.loading.start = performance.now();
          track.pending = this;
          track.answer();
        }
        reply(text) {
          const cb = this.callbacks;
          if (!cb) return;
          this.callbacks = null;
          const s = this.stats, now = performance.now();
          s.loading.first = s.loading.end = now;
          s.loaded = s.total = text.length;
          cb.onSuccess({ url: new URL(src, location.href).href, data: text }, s, this.context, null);
        }
        abort() { this.callbacks = null; this.stats.aborted = true; if (track.pending === this) track.pending = null; }
        destroy() { this.abort(); }
      }
      // No worker: it only transmuxes (fMP4 passes through cheaply) while
      // playlists are parsed on the page's thread anyway, and a new one
      // per window cost more than it saved (bench/RESULTS.md).
      const cfg = { enableWorker: false, maxBufferLength: 20, backBufferLength: 30,
        autoStartLoad: false, lowLatencyMode: false, pLoader: WindowLoader };
      const hls = new L(cfg);
      this.started = false;
      this.hls = hls;
      await new Promise((resolve, reject) => {
        // hls.js's own fragment objects: it corrects their start from the
        // media's timestamps as they are parsed, and so does the mapping
        hls.on(L.Events.LEVEL_LOADED, (ev, d) => { this.frags = d.details.fragments; resolve(); });
        hls.on(L.Events.LEVEL_UPDATED, (ev, d) => { this.frags = d.details.fragments; });
        hls.on(L.Events.ERROR, (ev, d) => {
          if (!d.fatal) return;
          if (this.frags.length) this.onFatal?.(d);
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
        // the MediaSource opens while the playlist is on its way
        hls.attachMedia(this.el);
        hls.loadSource(src);
        got.then((text) => {
          if (gen !== this.gen) return reject(new Superseded());
          if (text === null) return reject(new NoRecording());
          this.text = text;
          this.answer();
        }, reject);
      });
    } else {
      // native HLS (no MediaSource): the window as one VOD playlist, wall
      // time from the stream's start date
      this.ended = true;
      this.el.src = src;
      await new Promise((resolve, reject) => {
        this.el.addEventListener('loadedmetadata', resolve, { once: true });
        this.el.addEventListener('error', () => reject(new NoRecording()), { once: true });
      });
      const start = this.el.getStartDate ? this.el.getStartDate().getTime() : NaN;
      this.frags = [{ start: 0, duration: this.el.duration, programDateTime: isNaN(start) ? from : start }];
    }
  }

  // Answers hls.js's waiting playlist request with the window as it now
  // is: first the text fetched, later only once it has grown or ended
  // (until then the request waits: no reloads parsed for nothing).
  answer() {
    const p = this.pending;
    if (!p || !this.text) return;
    const text = this.ended ? this.text : this.text.replace('#EXT-X-PLAYLIST-TYPE:VOD', '#EXT-X-PLAYLIST-TYPE:EVENT')
      .replace(/^#EXT-X-ENDLIST\n?/m, '');
    if (text === this.served) return;
    this.served = text;
    this.pending = null;
    // never within hls.js's own call: it expects a loader to answer later
    setTimeout(() => p.reply(text));
  }

  // Called as playback goes: with less than LEAD s of media left in an
  // open window, the next STEP of it (across a longer gap: from the next
  // recording on; at the present: what has been recorded since, asked
  // again every few seconds). A window that cannot grow ends (ENDLIST):
  // past its end the player opens the next one by a seek.
  async keepAhead() {
    if (!this.hls || this.ended || this.growing || !this.text || Date.now() < (this.retryAt || 0)) return;
    const last = this.frags[this.frags.length - 1];
    if (!last || last.start + last.duration - this.el.currentTime > LEAD) return;
    this.growing = true;
    const gen = this.gen, [from, to] = this.win;
    try {
      let next = Math.min(to + STEP, Date.now());
      let text = await fetchPlaylist(this.playlistUrl(from, next));
      const present = () => next >= Date.now() - 5000;
      if (text !== null && body(text).length <= body(this.text).length && !present()) {
        // nothing recorded in the step: the next span after it, if any
        const tl = await fetch(`/api/v1/timeline?from=${iso(next)}&to=${iso(Math.min(next + 24 * 3600e3, Date.now()))}&sources=${encodeURIComponent(this.name)}`,
          { credentials: 'same-origin' }).then((r) => (r.ok ? r.json() : null));
        const span = tl && tl.sources[0] && tl.sources[0].spans[0];
        if (span) {
          next = Math.min(Date.parse(span.start) + STEP, Date.now());
          text = await fetchPlaylist(this.playlistUrl(from, next));
        }
      }
      if (gen !== this.gen) return;
      const grown = text !== null && body(text).startsWith(body(this.text)) && body(text).length > body(this.text).length;
      if (grown) {
        this.text = text;
        this.win = [from, next];
      }
      if (!grown && present() && text !== null && body(text) === body(this.text)) {
        this.retryAt = Date.now() + 3000; // at the present: nothing new yet
      } else if (!grown || next - from >= MAX_WINDOW) {
        // nothing more, a playlist that is not the old one continued (a
        // segment deleted meanwhile), or long enough
        this.ended = true;
        if (!this.text.includes('#EXT-X-ENDLIST')) this.text += '#EXT-X-ENDLIST\n';
      }
      this.answer();
    } catch {
      this.retryAt = Date.now() + 2000; // the server busy or away: again shortly
    } finally {
      this.growing = false;
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

  // The window has ended before now and playback is near its end: continue
  // in the next window.
  nearEnd() {
    const last = this.frags[this.frags.length - 1];
    return last && this.ended && this.win[1] < Date.now() - 5000 && this.el.currentTime > last.start + last.duration - 3;
  }

  closeHls() {
    if (this.hls) { this.hls.destroy(); this.hls = null; }
    this.pending = null;
    this.frags = [];
  }

  close() {
    this.closed = true;
    this.gen++;
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
