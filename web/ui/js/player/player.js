// The player of /sources/{name} and /view: one or more tracks on one clock.
// The first track is the master; the others follow its wall time within a
// frame (playbackRate nudges for small drift, a seek past a second). The
// controls, keyboard shortcuts, the shared timeline, range selection for
// export and hold, the date-time picker and "copy link to this moment".
import { h, field } from '../dom.js';
import { t, fmtTime, utcToZoned, zonedToUtc } from '../i18n.js';
import { app } from '../app.js';
import { get } from '../api.js';
import { Timeline, iso } from './timeline.js';
import { VideoTrack, AudioTrack, NoRecording, Superseded, Refused, hevcPlayable, isHevc } from './tracks.js';
import { exportDialog, holdDialog } from './dialogs.js';

export const SPEEDS = [0.25, 0.5, 1, 2, 4, 8, 16];
const TICK_MS = 250;

// ?at=T: RFC 3339 or unix seconds, as the API takes it; default 5 min ago.
export function parseAt(text) {
  if (text) {
    const n = /^\d+(\.\d+)?$/.test(text) ? Number(text) * 1000 : Date.parse(text);
    if (!isNaN(n)) return n;
  }
  return Date.now() - 5 * 60e3;
}

export class Player {
  // sources: [{name, kind, codec, transcode}], at: ms, link(ms): the page's URL at ms
  constructor(sources, at, link) {
    this.sources = sources;
    this.at = at;
    this.link = link;
    this.rate = 1;
    this.tracks = [];
    this.status = h('p', { class: 'msg info', role: 'status', 'aria-live': 'polite' });
    this.clock = h('time', { class: 'clock', 'aria-label': t('player.clock') });
    const perms = (app.me && app.me.permissions) || [];
    const canExport = perms.includes('export'), canHold = perms.includes('hold');
    this.timeline = new Timeline({
      sources, label: t('tl.label'),
      thumbs: (sources.find((s) => s.kind === 'video') || {}).name || null,
      onSeek: (ms) => this.seek(ms),
      onSelect: canExport || canHold ? (a, b) => this.selected(a, b) : null,
      calls: perms.includes('calls'),
    });
    this.views = h('div', { class: sources.length > 1 ? 'views multi' : 'views' });
    for (const s of sources) this.views.append(this.trackView(s));
    this.playBtn = h('button', { type: 'button', class: 'play', text: t('player.play'),
      'aria-keyshortcuts': 'Space K', onclick: () => this.toggle() });
    this.speedSel = h('select', { class: 'speed', onchange: (e) => this.setRate(Number(e.target.value)) },
      SPEEDS.map((s) => h('option', { value: s, selected: s === 1, text: s + '×' })));
    const btn = (text, label, keys, fn) => h('button', { type: 'button', class: 'secondary', text,
      title: label, 'aria-label': /\w/.test(text) ? text + ' — ' + label : label, 'aria-keyshortcuts': keys, onclick: fn });
    this.picker = h('input', { type: 'datetime-local', step: '60', value: utcToZoned(at) });
    this.linkOut = h('input', { type: 'text', readonly: true, class: 'link-out', hidden: true,
      'aria-label': t('player.link') });
    this.selBar = h('div', { class: 'actions sel', hidden: true },
      canExport ? h('button', { type: 'button', text: t('player.export'), onclick: () => this.doExport() }) : null,
      canHold ? h('button', { type: 'button', class: 'secondary', text: t('player.hold'), onclick: () => this.doHold() }) : null,
      h('button', { type: 'button', class: 'secondary', text: t('player.clear'), onclick: () => this.selected(null) }));
    this.el = h('section', { class: 'player', 'aria-label': t('player.label') },
      this.views,
      h('div', { class: 'controls' },
        this.playBtn,
        btn(t('player.back5_short'), t('player.back5'), 'ArrowLeft', () => this.skip(-5000)),
        btn(t('player.fwd5_short'), t('player.fwd5'), 'ArrowRight', () => this.skip(5000)),
        btn('|◀', t('player.frame_back'), ',', () => this.frame(-1)),
        btn('▶|', t('player.frame_fwd'), '.', () => this.frame(1)),
        field(t('player.speed'), this.speedSel),
        this.clock),
      this.status,
      this.timeline.el,
      canExport || canHold ? h('p', { class: 'hint', text: t('player.select_hint') }) : null,
      this.selBar,
      h('form', { class: 'jump', onsubmit: (e) => { e.preventDefault(); this.jump(); } },
        field(t('player.goto'), this.picker),
        h('button', { type: 'submit', class: 'secondary', text: t('player.go') }),
        h('button', { type: 'button', class: 'secondary', text: t('player.copy'), onclick: () => this.copyLink() }),
        this.linkOut),
      h('p', { class: 'hint keys', text: t('player.keys') }));
    this.onKey = (e) => this.key(e);
  }

  trackView(s) {
    const box = h('div', { class: 'track' });
    const label = h('p', { class: 'track-name', text: s.name });
    const overlay = h('p', { class: 'track-msg', hidden: true });
    box.append(label);
    if (s.kind === 'audio') {
      const el = h('audio', { preload: 'auto', 'aria-label': t('player.audio_of', { name: s.name }) });
      const wave = h('canvas', { class: 'wave', role: 'img', 'aria-label': t('player.wave_of', { name: s.name }) });
      wave.addEventListener('click', (e) => {
        const tr = this.tracks.find((x) => x.name === s.name);
        if (!tr || !tr.win) return;
        const r = wave.getBoundingClientRect();
        this.seek(tr.win[0] + ((e.clientX - r.left) / r.width) * (tr.win[1] - tr.win[0]));
      });
      box.append(el, wave, overlay);
      const tr = new AudioTrack(s.name, el);
      tr.wave = wave;
      tr.overlay = overlay;
      this.tracks.push(tr);
      return box;
    }
    const el = h('video', { playsinline: true, preload: 'auto', 'aria-label': t('player.video_of', { name: s.name }) });
    box.append(el, overlay);
    const tr = new VideoTrack(s.name, el);
    tr.overlay = overlay;
    tr.hevc = isHevc(s.codec);
    // the server makes H.264 of it ([playback] transcode_hevc, unless the
    // source is left out: GET /sources says per source)
    tr.canTranscode = s.transcode !== false && !!(app.ui && app.ui.transcode_hevc);
    // A camera's G.711 sound comes inside its playlist's media, converted
    // to FLAC by the server, in sync with the video.
    this.tracks.push(tr);
    return box;
  }

  get master() { return this.tracks[0]; }

  say(text, cls = 'info') {
    this.status.className = 'msg ' + cls;
    this.status.textContent = text || '';
  }

  // Started once the page is in the document (sizes are known).
  async start() {
    document.addEventListener('keydown', this.onKey);
    this.timeline.center = this.at;
    this.timeline.playhead = this.at;
    await this.timeline.refresh();
    for (const tr of this.tracks) {
      if (tr instanceof VideoTrack && tr.hevc && !hevcPlayable(tr.el)) {
        // the server's H.264 transcode where it offers one, else words
        if (tr.canTranscode) tr.transcode = true;
        else {
          tr.unplayable = true;
          this.hevcNotice(tr);
        }
      }
    }
    for (const tr of this.tracks) {
      tr.el.addEventListener('play', () => this.buttons());
      tr.el.addEventListener('pause', () => this.buttons());
    }
    await this.seek(this.at, true);
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  hevcNotice(tr) {
    const from = this.at, to = Math.min(this.at + 5 * 60e3, Date.now());
    const clip = `/api/v1/sources/${encodeURIComponent(tr.name)}/clip.mp4?from=${iso(from)}&to=${iso(to)}`;
    const r = app.ui && app.ui.rtsp;
    tr.overlay.hidden = false;
    tr.overlay.className = 'track-msg hevc';
    // (replaceChildren takes nodes and strings only: no arrays, no null)
    tr.overlay.replaceChildren(t('player.hevc'), ' ',
      h('a', { href: clip, download: '', text: t('player.hevc_clip') }),
      ...(r ? [' · ', h('a', { href: `${r.scheme}://${location.hostname}:${r.port}/${tr.name}`, text: t('player.hevc_rtsp') })] : []));
    tr.el.hidden = true;
  }

  playable() { return this.tracks.filter((x) => !x.unplayable); }

  // Seeks every track to a wall time; a time in a gap (or before the first
  // recording) lands on the next recording of the master, and says so.
  async seek(ms, first) {
    const gen = (this.seekGen = (this.seekGen || 0) + 1);
    const m = this.playable()[0];
    if (!m) { this.timeline.follow(ms); this.showClock(ms); return; }
    let target = ms;
    const land = this.timeline.land(m.name, ms);
    if (land === null && ms > Date.now() - 1000) {
      this.say(t('player.after_end'), 'error');
      return;
    }
    if (land && land.jumped) target = land.ms;
    const wasPaused = first ? false : m.el.paused;
    try {
      const at = await m.seek(target);
      if (gen !== this.seekGen) return;
      if (at.jumped) target = at.ms;
      if (target !== ms) this.say(t('player.jumped', { from: fmtTime(iso(ms)), to: fmtTime(iso(target)) }));
      else if (!first) this.say('');
    } catch (e) {
      if (gen !== this.seekGen) return;
      if (m.transcode && e instanceof Refused) {
        // the transcode refused after all (turned off meanwhile): words
        m.unplayable = true;
        this.hevcNotice(m);
        this.seek(ms, first);
        return;
      }
      this.say(e instanceof NoRecording ? t('player.no_recording', { at: fmtTime(iso(ms)) }) : String(e.message), 'error');
      return;
    }
    this.masterTrack = m;
    for (const tr of this.playable()) if (tr !== m) this.follow(tr, target, true);
    this.timeline.follow(target);
    this.showClock(target);
    if (!wasPaused) this.play();
    else this.buttons();
    if (m instanceof AudioTrack) this.drawWave(m);
  }

  async follow(tr, ms, hard) {
    try {
      if (this.timeline.land(tr.name, ms)?.jumped || this.timeline.land(tr.name, ms) === null) {
        tr.overlay.hidden = false;
        tr.overlay.textContent = t('player.track_gap');
        tr.gap = true;
        if (!tr.el.paused) tr.el.pause();
        return;
      }
      tr.gap = false;
      tr.overlay.hidden = true;
      if (hard || tr.timeOf(ms) === null) await tr.seek(ms);
      if (tr instanceof AudioTrack) this.drawWave(tr);
    } catch (e) {
      if (e instanceof Superseded) return; // a later seek of this track decides
      tr.overlay.hidden = false;
      tr.overlay.textContent = t('player.track_gap');
    }
  }

  async play() {
    for (const tr of this.playable()) {
      if (tr.gap) continue;
      tr.el.playbackRate = this.rate;
      try {
        await tr.el.play();
      } catch (e) {
        // no user gesture yet: muted playback is allowed
        if (e.name === 'NotAllowedError') {
          tr.el.muted = true;
          this.say(t('player.muted'));
          try { await tr.el.play(); } catch { /* shown paused */ }
        }
      }
    }
    this.buttons();
  }

  pause() {
    for (const tr of this.tracks) tr.el.pause();
    this.buttons();
  }

  toggle() {
    const m = this.playable()[0];
    if (!m) return;
    if (m.el.paused) {
      for (const tr of this.tracks) tr.el.muted = false;
      this.play();
    } else this.pause();
  }

  buttons() {
    const m = this.playable()[0];
    const paused = !m || m.el.paused;
    this.playBtn.textContent = paused ? t('player.play') : t('player.pause');
    this.playBtn.setAttribute('aria-pressed', paused ? 'false' : 'true');
  }

  setRate(r) {
    this.rate = r;
    this.speedSel.value = String(r);
    for (const tr of this.tracks) tr.el.playbackRate = r;
    this.say(t('player.rate', { r }));
  }

  skip(d) {
    const w = this.wall();
    if (w !== null) this.seek(w + d);
  }

  frame(dir) {
    const m = this.playable()[0];
    if (!m) return;
    this.pause();
    m.el.currentTime = Math.max(0, m.el.currentTime + dir * m.frameDur);
    const w = m.wallAt(m.el.currentTime);
    if (w !== null) for (const tr of this.playable()) if (tr !== m) this.follow(tr, w, true);
  }

  wall() {
    const m = this.playable()[0];
    return m ? m.wall() : null;
  }

  key(e) {
    if (!this.el.isConnected) return;
    const tag = (e.target.tagName || '').toLowerCase();
    if (['input', 'select', 'textarea'].includes(tag) || e.target.closest?.('dialog') || e.ctrlKey || e.metaKey || e.altKey) return;
    const k = e.key;
    // letters and , . by the key's place (e.code), not its character: the
    // same keys work on the Russian layout (о л д б ю) and with Caps Lock
    const act = {
      ' ': () => this.toggle(),
      ArrowLeft: () => this.skip(-5000), ArrowRight: () => this.skip(5000),
    }[k] || {
      KeyK: () => this.pause(),
      KeyL: () => this.faster(),
      KeyJ: () => this.slower(),
      Comma: () => this.frame(-1), Period: () => this.frame(1),
    }[e.code];
    if (!act) return;
    if (k === ' ' && tag === 'button') return; // the button itself answers
    e.preventDefault();
    act();
  }

  // L: play, again: faster (up to 16x). J: slower; at 1x and below, back 10 s.
  faster() {
    const m = this.playable()[0];
    if (m && m.el.paused) { this.setRate(1); this.play(); return; }
    const i = SPEEDS.indexOf(this.rate);
    this.setRate(SPEEDS[Math.min(SPEEDS.length - 1, i + 1)]);
  }

  slower() {
    if (this.rate > 1) { this.setRate(SPEEDS[SPEEDS.indexOf(this.rate) - 1]); return; }
    this.skip(-10000);
  }

  jump() {
    const utc = zonedToUtc(this.picker.value);
    if (utc) this.seek(Date.parse(utc));
  }

  async copyLink() {
    const w = this.wall() ?? this.at;
    const link = location.origin + this.link(w);
    this.linkOut.value = link;
    try {
      await navigator.clipboard.writeText(link);
      this.say(t('player.copied'));
    } catch {
      this.linkOut.hidden = false;
      this.linkOut.select();
      this.say(t('player.copy_manual'));
    }
  }

  showClock(ms) {
    if (ms === null || ms === undefined) return;
    const text = iso(ms);
    this.clock.dateTime = new Date(ms).toISOString();
    this.clock.dataset.ms = String(Math.round(ms));
    this.clock.textContent = fmtTime(text);
  }

  // Every TICK_MS: the clock, the timeline, the next window at its end, a
  // gap in a WAV (silence) skipped, and the followers kept on the master.
  tick() {
    if (!this.el.isConnected) { this.destroy(); return; }
    const m = this.playable()[0];
    if (!m) return;
    const w = m.wall();
    if (w === null) return;
    // every track's wall time of this same instant (tools and tests read
    // how close the followers are)
    for (const tr of this.playable()) {
      const tw = tr.wall();
      tr.el.dataset.wall = tw === null || tr.gap ? '' : String(Math.round(tw));
    }
    this.showClock(w);
    this.timeline.follow(w);
    if (m instanceof AudioTrack) this.drawPlayhead(m);
    if (m.el.paused) {
      for (const tr of this.playable()) if (tr !== m && !tr.el.paused) tr.el.pause();
      return;
    }
    // an open window grows ahead of playback; one that has ended is
    // followed by the next
    for (const tr of this.playable()) tr.keepAhead?.();
    if (m.nearEnd()) { this.seek(w + 1000); return; }
    if (m instanceof AudioTrack) {
      const land = this.timeline.land(m.name, w);
      if (land && land.jumped && land.ms - w > 1500) { this.seek(w); return; }
    }
    for (const tr of this.playable()) {
      if (tr === m) continue;
      if (tr.gap) { this.follow(tr, w); if (!tr.gap) tr.el.play().catch(() => {}); continue; }
      const tw = tr.wall();
      const diff = tw === null ? Infinity : tw - w;
      if (Math.abs(diff) > 600) { this.follow(tr, w, true).then(() => tr.el.play().catch(() => {})); continue; }
      if (tr.el.paused) tr.el.play().catch(() => {});
      const frameMs = (m.frameDur || 0.04) * 1000;
      // a frame off or more: catch up within about half a second
      const nudge = Math.abs(diff) <= frameMs / 2 ? 0 : Math.max(-0.25, Math.min(0.25, -diff / 400));
      tr.el.playbackRate = this.rate * (1 + nudge);
      if (tr instanceof AudioTrack) this.drawPlayhead(tr);
    }
  }

  // Waveform of an audio track's window from GET peaks (one bucket per pixel).
  async drawWave(tr) {
    const c = tr.wave;
    if (!c || !tr.win || tr.peaksFor === tr.win[0]) return;
    tr.peaksFor = tr.win[0];
    const n = Math.max(100, Math.min(2000, c.clientWidth || 600));
    let p = null;
    for (let i = 0; i < 3 && !p; i++) {
      try {
        p = await get(`/sources/${encodeURIComponent(tr.name)}/peaks?from=${iso(tr.win[0])}&to=${iso(tr.win[1])}&n=${n}`);
      } catch (e) {
        if (e.status !== 503) break;
        await new Promise((r) => setTimeout(r, (e.retryAfter || 1) * 1000));
      }
    }
    tr.peaks = p;
    this.drawPlayhead(tr);
  }

  drawPlayhead(tr) {
    const c = tr.wave;
    if (!c || !tr.peaks) return;
    const w = c.clientWidth || 600, hh = 64, dpr = window.devicePixelRatio || 1;
    if (c.width !== Math.round(w * dpr)) { c.width = Math.round(w * dpr); c.height = hh * dpr; }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, hh);
    g.fillStyle = '#2e7d4f';
    const { min, max } = tr.peaks;
    for (let i = 0; i < min.length; i++) {
      const x = (i / min.length) * w;
      const y0 = hh / 2 - max[i] * hh / 2, y1 = hh / 2 - min[i] * hh / 2;
      g.fillRect(x, y0, Math.max(1, w / min.length), Math.max(1, y1 - y0));
    }
    const wall = tr.wall();
    if (wall !== null) {
      const x = ((wall - tr.win[0]) / (tr.win[1] - tr.win[0])) * w;
      g.fillStyle = '#0a5fa3';
      g.fillRect(x - 1, 0, 2, hh);
    }
  }

  selected(a, b) {
    this.sel = a === null ? null : [a, b];
    this.timeline.select(a, b ?? a);
    this.selBar.hidden = !this.sel;
    if (this.sel) this.selBar.querySelector('button')?.focus();
  }

  doExport() {
    if (this.sel) exportDialog(this.sources.map((s) => s.name), this.sel[0], this.sel[1]);
  }

  doHold() {
    if (this.sel) holdDialog(this.sources.map((s) => s.name), this.sel[0], this.sel[1], () => { this.timeline.loaded = null; this.timeline.refresh(); });
  }

  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    clearInterval(this.timer);
    document.removeEventListener('keydown', this.onKey);
    this.timeline.destroy();
    for (const tr of this.tracks) tr.close();
  }
}
