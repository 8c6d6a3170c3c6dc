// The zoomable timeline of the player pages: one row per source drawn on a
// canvas from GET /api/v1/timeline (recorded spans, gaps, holds), a
// playhead, ticks in the office zone, hover thumbnails, click or drag to
// seek, shift-drag to select a range. It is one keyboard-operable slider
// (role=slider) whose value is the wall time under the playhead.
import { h } from '../dom.js';
import { t, timeZone, language, fmtTime } from '../i18n.js';
import { get } from '../api.js';

export const MIN_SPAN = 60e3;          // 1 min
export const MAX_SPAN = 24 * 3600e3;   // 24 h
const ZOOMS = [60e3, 5 * 60e3, 15 * 60e3, 3600e3, 3 * 3600e3, 6 * 3600e3, 12 * 3600e3, MAX_SPAN];
const ROW = 18;
const AXIS = 20;
const THUMB_MS = 300;                  // at most one thumbnail request this often

export const iso = (ms) => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');

export class Timeline {
  // opts: sources [{name, kind}], label, onSeek(ms), onSelect(from, to) or null,
  // thumbs: source name for hover thumbnails (a video source) or null,
  // calls: true to mark the calls of each source (a camera: its desks' calls)
  constructor(opts) {
    this.o = opts;
    this.span = 15 * 60e3;
    this.center = Date.now();
    this.playhead = null;
    this.sel = null;
    this.data = new Map();
    this.loaded = null;
    this.canvas = h('canvas', { class: 'tl-canvas', 'aria-hidden': 'true' });
    this.thumb = h('img', { class: 'tl-thumb', alt: '', hidden: true });
    this.thumbTime = h('span', { class: 'tl-thumb-time' });
    this.tip = h('div', { class: 'tl-tip', hidden: true }, this.thumb, this.thumbTime);
    this.slider = h('div', {
      class: 'tl', role: 'slider', tabindex: '0', 'aria-label': opts.label || t('tl.label'),
      'aria-valuemin': '0', 'aria-valuemax': '0', 'aria-valuenow': '0',
    }, this.canvas, this.tip);
    const btn = (text, label, fn) => h('button', { type: 'button', class: 'secondary', 'aria-label': label,
      title: label, text, onclick: fn });
    this.rangeText = h('span', { class: 'tl-range', 'aria-live': 'polite' });
    this.el = h('div', { class: 'timeline' },
      h('div', { class: 'tl-bar' },
        btn('−', t('tl.zoom_out'), () => this.zoom(1)),
        btn('+', t('tl.zoom_in'), () => this.zoom(-1)),
        btn('‹', t('tl.earlier'), () => this.pan(-0.5)),
        btn('›', t('tl.later'), () => this.pan(0.5)),
        this.rangeText,
        h('span', { class: 'tl-legend' },
          h('span', { class: 'key rec' }), t('tl.recorded'),
          h('span', { class: 'key gap' }), t('tl.gap'),
          h('span', { class: 'key hold' }), t('tl.hold'),
          opts.calls ? [h('span', { class: 'key call' }), t('tl.call')] : null)),
      this.slider);
    this.bind();
  }

  rows() { return this.o.sources.length; }
  height() { return AXIS + this.rows() * (ROW + 4) + 4; }
  width() { return this.canvas.clientWidth || 600; }
  viewFrom() { return this.center - this.span / 2; }
  xOf(ms) { return ((ms - this.viewFrom()) / this.span) * this.width(); }
  msOf(x) { return this.viewFrom() + (x / this.width()) * this.span; }

  zoom(dir, atMs) {
    let i = ZOOMS.findIndex((z) => z >= this.span - 1);
    if (i < 0) i = ZOOMS.length - 1;
    const next = ZOOMS[Math.max(0, Math.min(ZOOMS.length - 1, i + dir))];
    this.zoomTo(next, atMs);
  }

  zoomTo(span, atMs) {
    span = Math.max(MIN_SPAN, Math.min(MAX_SPAN, span));
    const anchor = atMs ?? this.playhead ?? this.center;
    const frac = (anchor - this.viewFrom()) / this.span;
    this.span = span;
    this.center = anchor - (frac - 0.5) * span;
    this.refresh();
  }

  pan(frac) {
    this.center += frac * this.span;
    this.refresh();
  }

  // Keeps the playhead in view (pages call it as time passes).
  follow(ms) {
    this.playhead = ms;
    if (this.dragging) return;
    if (ms < this.viewFrom() || ms > this.viewFrom() + this.span) this.center = ms;
    this.refresh(true);
  }

  select(from, to) {
    this.sel = from === null ? null : [Math.min(from, to), Math.max(from, to)];
    this.draw();
  }

  // Loads the visible range (with a margin) when it is not loaded yet.
  async refresh(quiet) {
    this.draw();
    const from = this.viewFrom(), to = from + this.span;
    if (this.loaded && from >= this.loaded[0] && to <= this.loaded[1] &&
        Date.now() - this.loadedAt < 15000) return;
    if (quiet && this.loading) return;
    const lf = from - this.span / 2, lt = Math.min(to + this.span / 2, Date.now() + 60e3);
    this.loading = true;
    try {
      const names = this.o.sources.map((s) => s.name).join(',');
      const tl = await get(`/timeline?from=${iso(lf)}&to=${iso(Math.max(lt, lf + 1000))}&sources=${encodeURIComponent(names)}`);
      this.data = new Map(tl.sources.map((s) => [s.name, {
        spans: s.spans.map((x) => [Date.parse(x.start), Date.parse(x.end), x.codecs]),
        holds: s.holds.map((x) => [Date.parse(x.from), Date.parse(x.to)]),
      }]));
      this.loaded = [lf, lt];
      this.loadedAt = Date.now();
      if (this.o.calls) await this.loadCalls(lf, lt);
    } catch { /* drawn as unknown; the next refresh tries again */ }
    this.loading = false;
    this.draw();
  }

  // Call markers: GET /sources/{name}/calls of each row (a camera's are the
  // calls of the desks it belongs to), one request per row and refresh.
  async loadCalls(from, to) {
    const got = await Promise.all(this.o.sources.map((s) =>
      get(`/sources/${encodeURIComponent(s.name)}/calls?from=${iso(from)}&to=${iso(Math.max(to, from + 1000))}`)
        .then((r) => r.calls).catch(() => [])));
    this.calls = new Map(this.o.sources.map((s, i) => [s.name, got[i].map((c) => ({
      id: c.id, a: Date.parse(c.start), b: c.end ? Date.parse(c.end) : Date.now(),
      label: [c.caller, c.callee].filter(Boolean).join(' → ') || c.line,
    }))]));
    this.slider.dataset.calls = String(got.reduce((n, x) => n + x.length, 0));
  }

  // The calls marked at wall time ms (any row).
  callsAt(ms) {
    const out = [];
    for (const list of (this.calls || new Map()).values()) for (const c of list) if (ms >= c.a && ms < c.b) out.push(c);
    return out;
  }

  // The recorded spans of one source (as loaded) in time order.
  spans(name) { return (this.data.get(name) || { spans: [] }).spans; }

  // Where playback lands for a wall time: in a span, itself; in a gap, the
  // next span's start (jumped); past the last span, null. Outside the range
  // loaded (a moment picked far from the view) nothing is known: undefined,
  // and the media's own playlist decides (the loaded spans would send a
  // seek hours before them to their first one).
  land(name, ms) {
    if (!this.loaded || ms < this.loaded[0] || (ms >= this.loaded[1] && ms < Date.now())) return undefined;
    for (const [s, e] of this.spans(name)) {
      if (ms < s) return { ms: s, jumped: true };
      if (ms < e) return { ms, jumped: false };
    }
    return null;
  }

  draw() {
    const c = this.canvas;
    const w = this.width(), hgt = this.height();
    const dpr = window.devicePixelRatio || 1;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(hgt * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(hgt * dpr);
      c.style.height = hgt + 'px';
    }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, hgt);
    const css = getComputedStyle(this.el);
    const col = (v, d) => css.getPropertyValue(v).trim() || d;
    // ticks
    const from = this.viewFrom();
    const step = tickStep(this.span);
    const fmt = new Intl.DateTimeFormat(language() === 'ru' ? 'ru-RU' : 'en-GB', {
      timeZone: timeZone(), hour: '2-digit', minute: '2-digit', hour12: false,
      ...(step < 60e3 ? { second: '2-digit' } : {}),
    });
    const offset = zoneOffset(from);
    g.font = '11px sans-serif';
    g.fillStyle = col('--muted', '#4d5661');
    g.strokeStyle = col('--line', '#d3d8de');
    for (let tk = Math.ceil((from + offset) / step) * step - offset; tk < from + this.span; tk += step) {
      const x = Math.round(this.xOf(tk)) + 0.5;
      g.beginPath(); g.moveTo(x, AXIS - 6); g.lineTo(x, hgt); g.stroke();
      g.fillText(fmt.format(new Date(tk)), x + 3, 12);
    }
    // rows
    this.o.sources.forEach((s, i) => {
      const y = AXIS + i * (ROW + 4);
      g.fillStyle = col('--tl-gap', '#e9c9c6');
      g.fillRect(0, y, w, ROW);
      const d = this.data.get(s.name);
      if (!d) return;
      g.fillStyle = col('--tl-rec', '#2e7d4f');
      for (const [a, b] of d.spans) {
        const x0 = Math.max(0, this.xOf(a)), x1 = Math.min(w, this.xOf(b));
        if (x1 > x0) g.fillRect(x0, y, Math.max(1, x1 - x0), ROW);
      }
      g.fillStyle = col('--tl-hold', '#8a5200');
      for (const [a, b] of d.holds) {
        const x0 = Math.max(0, this.xOf(a)), x1 = Math.min(w, this.xOf(b));
        if (x1 > x0) g.fillRect(x0, y, Math.max(2, x1 - x0), 4);
      }
      g.fillStyle = col('--tl-call', '#6a3fb5');
      for (const cl of (this.calls && this.calls.get(s.name)) || []) {
        const x0 = Math.max(0, this.xOf(cl.a)), x1 = Math.min(w, this.xOf(cl.b));
        if (x1 > x0 - 3) g.fillRect(x0, y + ROW - 5, Math.max(3, x1 - x0), 5);
      }
      if (this.rows() > 1) {
        g.fillStyle = '#fff';
        g.fillText(s.name, 4, y + 13);
      }
    });
    if (this.sel) {
      const x0 = this.xOf(this.sel[0]), x1 = this.xOf(this.sel[1]);
      g.fillStyle = 'rgba(10,95,163,.28)';
      g.fillRect(x0, AXIS - 4, Math.max(2, x1 - x0), hgt - AXIS + 4);
    }
    if (this.playhead !== null) {
      const x = Math.round(this.xOf(this.playhead)) + 0.5;
      g.strokeStyle = col('--accent', '#0a5fa3');
      g.lineWidth = 2;
      g.beginPath(); g.moveTo(x, AXIS - 8); g.lineTo(x, hgt); g.stroke();
      g.lineWidth = 1;
    }
    const ph = this.playhead ?? this.center;
    this.slider.setAttribute('aria-valuemin', String(Math.floor(from / 1000)));
    this.slider.setAttribute('aria-valuemax', String(Math.floor((from + this.span) / 1000)));
    this.slider.setAttribute('aria-valuenow', String(Math.floor(ph / 1000)));
    this.slider.setAttribute('aria-valuetext', fmtTime(new Date(ph).toISOString()));
    this.rangeText.textContent = t('tl.range', { span: spanText(this.span) }) +
      (this.sel ? ' · ' + t('tl.selected', { from: fmtTime(iso(this.sel[0])), to: fmtTime(iso(this.sel[1])) }) : '');
  }

  bind() {
    const c = this.slider;
    const xAt = (e) => e.clientX - this.canvas.getBoundingClientRect().left;
    let down = null;
    c.addEventListener('pointerdown', (e) => {
      if (e.button !== 0) return;
      c.setPointerCapture?.(e.pointerId);
      down = { x: xAt(e), ms: this.msOf(xAt(e)), shift: e.shiftKey && !!this.o.onSelect };
      this.dragging = true;
      if (down.shift) this.select(down.ms, down.ms);
    });
    c.addEventListener('pointermove', (e) => {
      const x = xAt(e), ms = this.msOf(x);
      this.hover(x, ms);
      if (!down) return;
      if (down.shift) this.select(down.ms, ms);
      else if (Math.abs(x - down.x) > 3) { this.playhead = ms; this.draw(); }
    });
    const up = (e) => {
      if (!down) return;
      const ms = this.msOf(xAt(e));
      const d = down;
      down = null;
      this.dragging = false;
      if (d.shift) {
        if (Math.abs(ms - d.ms) >= 1000) this.o.onSelect(Math.min(ms, d.ms), Math.max(ms, d.ms));
        else this.select(null);
      } else {
        this.o.onSeek(ms);
      }
    };
    c.addEventListener('pointerup', up);
    c.addEventListener('pointercancel', () => { down = null; this.dragging = false; });
    c.addEventListener('pointerleave', () => { this.tip.hidden = true; });
    c.addEventListener('wheel', (e) => {
      e.preventDefault();
      const ms = this.msOf(xAt(e));
      this.zoomTo(this.span * (e.deltaY > 0 ? 1.25 : 0.8), ms);
    }, { passive: false });
    // pinch: two pointers' distance scales the span
    const touches = new Map();
    let pinch = null;
    c.addEventListener('pointerdown', (e) => { if (e.pointerType === 'touch') touches.set(e.pointerId, e.clientX); });
    c.addEventListener('pointermove', (e) => {
      if (!touches.has(e.pointerId)) return;
      touches.set(e.pointerId, e.clientX);
      if (touches.size !== 2) { pinch = null; return; }
      const [a, b] = [...touches.values()];
      const dist = Math.abs(a - b) || 1;
      if (pinch) this.zoomTo(pinch.span * (pinch.dist / dist), this.msOf((a + b) / 2 - this.canvas.getBoundingClientRect().left));
      else pinch = { dist, span: this.span };
      down = null;
    });
    const lift = (e) => { touches.delete(e.pointerId); pinch = null; };
    c.addEventListener('pointerup', lift);
    c.addEventListener('pointercancel', lift);
    c.addEventListener('keydown', (e) => {
      const ph = this.playhead ?? this.center;
      const step = e.shiftKey ? this.span / 10 : 5000;
      let to = null;
      if (e.key === 'ArrowLeft') to = ph - step;
      else if (e.key === 'ArrowRight') to = ph + step;
      else if (e.key === 'PageUp') to = ph - this.span / 2;
      else if (e.key === 'PageDown') to = ph + this.span / 2;
      else if (e.key === '+' || e.key === '=') { this.zoom(-1); e.preventDefault(); e.stopPropagation(); return; }
      else if (e.key === '-') { this.zoom(1); e.preventDefault(); e.stopPropagation(); return; }
      if (to === null) return;
      e.preventDefault();
      e.stopPropagation();
      this.o.onSeek(to);
    });
    this.resize = new ResizeObserver(() => this.draw());
    this.resize.observe(this.canvas);
  }

  // A thumbnail of the time under the pointer, at most one request per
  // THUMB_MS and rounded to the second (cached by the browser and vigild).
  hover(x, ms) {
    this.tip.hidden = false;
    const left = Math.max(0, Math.min(this.width() - 170, x - 85));
    this.tip.style.left = left + 'px';
    const cl = this.callsAt(ms)[0];
    this.thumbTime.textContent = fmtTime(iso(ms)) + (cl ? ' · ' + t('tl.call_at', { what: cl.label }) : '');
    const name = this.o.thumbs;
    if (!name) { this.thumb.hidden = true; return; }
    const inSpan = this.spans(name).some(([a, b]) => ms >= a && ms < b);
    if (!inSpan) { this.thumb.hidden = true; return; }
    this.want = Math.floor(ms / 1000) * 1000;
    if (this.thumbTimer) return;
    const fire = () => {
      this.thumbTimer = null;
      if (this.want === this.shown) return;
      this.shown = this.want;
      // Zoomed out, a pixel spans more than a GOP: the keyframe at or before
      // the time (one frame to decode) shows that moment as well as the
      // exact frame would.
      const coarse = this.span / Math.max(1, this.width()) >= 1000 ? '&keyframe=1' : '';
      this.thumb.src = `/api/v1/sources/${encodeURIComponent(name)}/snapshot.jpg?at=${iso(this.want)}&width=160${coarse}`;
      this.thumb.hidden = false;
      this.thumbTimer = setTimeout(fire, THUMB_MS);
    };
    fire();
  }

  destroy() {
    this.resize?.disconnect();
    clearTimeout(this.thumbTimer);
  }
}

function tickStep(span) {
  const steps = [10e3, 30e3, 60e3, 2 * 60e3, 5 * 60e3, 10 * 60e3, 15 * 60e3, 30 * 60e3, 3600e3,
    2 * 3600e3, 3 * 3600e3];
  return steps.find((s) => span / s <= 8) || 3 * 3600e3;
}

// The office zone's offset from UTC at ms, so ticks fall on its round times.
function zoneOffset(ms) {
  const p = Object.fromEntries(new Intl.DateTimeFormat('en-US', {
    timeZone: timeZone(), hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  }).formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
  return Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second) - Math.floor(ms / 1000) * 1000;
}

function spanText(ms) {
  return ms >= 3600e3 ? t('tl.hours', { n: Math.round(ms / 360e3) / 10 }) : t('tl.minutes', { n: Math.round(ms / 6e3) / 10 });
}
