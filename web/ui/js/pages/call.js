// /calls/{id}: one call. Its audio (audio.wav of the call's interval) with
// a wavesurfer.js waveform drawn from the API's peaks (click or arrow keys
// seek), play/pause and speed; its metadata; notes and tags (editable with
// `annotate`, saved by PATCH); the desk's cameras playing the same
// interval on the audio's clock (the player's VideoTrack: HLS of the
// archive; they follow the audio's play, pause, seek and speed, and drift
// is corrected by nudging their rate, or a seek past 600 ms); hold and
// export of the call; the recording-announcement check.
import { api, get } from '../api.js';
import { h, field } from '../dom.js';
import { t, fmtTime, fmtNum } from '../i18n.js';
import { app, heading, notFound } from '../app.js';
import { VideoTrack, NoRecording, hevcPlayable, isHevc } from '../player/tracks.js';
import { exportDialog, dialog } from '../player/dialogs.js';
import { iso } from '../player/timeline.js';
import { withReason, withReasonParam } from '../reason.js';
import { seconds, fmtDur, dirText, originText, annText, tagsText } from '../calls/format.js';
import { agentHref } from './calls.js';
import { mountQaPanel } from '../qa_panel.js';

export const SPEEDS = [0.5, 0.75, 1, 1.25, 1.5, 2];
const WAVE_HEIGHT = 96;     // the CSP allows wavesurfer's stylesheet at this height only (web/server.c)
const TICK_MS = 250;
let WaveSurfer = null;

export async function render(m) {
  const id = m[1];
  let c;
  try {
    c = await withReason((hd) => api('GET', '/calls/' + id, undefined, hd));
  } catch (e) {
    if (e.status === 404) return notFound();
    throw e;
  }
  const perms = app.me.permissions;
  const start = Date.parse(c.start);
  const end = c.end ? Date.parse(c.end) : Date.now();
  const title = c.caller || c.callee
    ? t('call.title_numbers', { caller: c.caller || '—', callee: c.callee || '—' }) : t('call.title', { id: c.id });
  const cams = Array.isArray(c.cameras) ? c.cameras : [];
  const listen = new Listen(c, start, end, cams);
  requestAnimationFrame(() => listen.start().catch((e) => listen.say(String(e.message || e), 'error')));

  const dl = (k, v) => [h('dt', { text: t(k) }), h('dd', {}, v ?? '—')];
  const num = (n, raw) => (n || raw ? [n || raw, raw && raw !== n ? h('span', { class: 'muted', text: ' (' + raw + ')' }) : null] : '—');
  const desks = [...new Set(cams.map((x) => x.desk))].join(', ');
  return [heading(title),
    h('p', {}, h('a', { href: '/calls', text: t('call.list') })),
    c.end ? null : h('p', { class: 'msg info', text: t('call.ongoing') }),
    h('section', { 'aria-labelledby': 'listen-h' }, h('h2', { id: 'listen-h', class: 'skip', text: t('call.listen') }), listen.el),
    actions(c, start, end, cams, perms),
    h('section', { class: 'call-cams', 'aria-labelledby': 'cams-h' },
      h('h2', { id: 'cams-h', text: cams.length ? t('call.cameras', { desk: desks }) : t('call.cameras_title') }),
      cams.length ? listen.camBox : h('p', { class: 'hint', text: t('call.cameras_none') })),
    h('div', { class: 'call-info' },
      h('section', { 'aria-labelledby': 'facts-h' }, h('h2', { id: 'facts-h', text: t('call.facts') }),
        h('dl', { class: 'panel facts' },
          dl('calls.start', fmtTime(c.start)), dl('calls.end', c.end ? fmtTime(c.end) : t('calls.ongoing')),
          dl('calls.duration', fmtDur(seconds(c))), dl('calls.direction', dirText(c.direction)),
          dl('calls.caller', num(c.caller, c.caller_raw)), dl('calls.callee', num(c.callee, c.callee_raw)),
          dl('calls.agent', c.agent ? h('a', { href: agentHref(c.agent), text: c.agent }) : null),
          dl('calls.queue', c.queue), dl('calls.account', c.account), dl('calls.disposition', c.disposition),
          dl('calls.line', h('a', { href: `/sources/${encodeURIComponent(c.source)}?at=${iso(start)}`,
            title: t('call.line_link', { line: c.source }), text: c.source })),
          dl('calls.origin', originText(c.origin)), dl('calls.announcement', annText(c)),
          c.call_id ? dl('calls.call_id', h('span', { class: 'mono', text: c.call_id })) : null)),
      annotations(c, perms.includes('annotate'))),
    perms.includes('annotate') ? qaSection(c, listen) : null].filter(Boolean);
}

// The quality evaluation of this call beside its player: comments are
// pinned to the audio's time, and a comment's time seeks the audio.
function qaSection(c, listen) {
  const box = h('div', { class: 'panel' });
  mountQaPanel(box, { call: c.id }, {
    currentTime: () => listen.audio.currentTime,
    seek: (s) => listen.seekTo(s),
  });
  return h('section', { class: 'call-qa', 'aria-labelledby': 'qa-h' },
    h('h2', { id: 'qa-h', text: t('qa.evaluate') }), box);
}

function actions(c, start, end, cams, perms) {
  const names = [c.source, ...cams.map((x) => x.source)];
  const hold = perms.includes('hold') ? h('button', { type: 'button', class: 'secondary', text: t('call.hold'),
    onclick: () => holdCall(c, start, end) }) : null;
  const exp = perms.includes('export') ? h('button', { type: 'button', class: 'secondary', text: t('call.export'),
    onclick: () => exportDialog(names, start, Math.max(end, start + 1000)) }) : null;
  return hold || exp ? h('div', { class: 'actions call-actions' }, hold, exp) : null;
}

// The hold dialog of a call: POST /holds {"calls":[id]} holds the call's
// interval on its line and its desk's cameras, and the hold lists the call.
function holdCall(c, start, end) {
  const msg = h('p', { class: 'msg error', role: 'alert' });
  const ok = h('p', { class: 'msg ok', role: 'status' });
  const caseIn = h('input', { name: 'case', required: true, maxlength: '200', autocomplete: 'off' });
  const reason = h('textarea', { name: 'reason', required: true, rows: '2', maxlength: '1000' });
  const submit = h('button', { type: 'submit', text: t('dlg.hold_go') });
  const form = h('form', { method: 'dialog', onsubmit: async (e) => {
    e.preventDefault();
    msg.textContent = '';
    if (!caseIn.value.trim() || !reason.value.trim()) { msg.textContent = t('dlg.required'); return; }
    submit.disabled = true;
    try {
      const hd = await api('POST', '/holds', { case: caseIn.value.trim(), reason: reason.value.trim(), calls: [c.id] });
      ok.textContent = t('dlg.held', { id: hd.id ?? '' });
    } catch (err) {
      msg.textContent = err.message;
      submit.disabled = false;
    }
  } },
  h('p', { class: 'range', text: t('dlg.range', { from: fmtTime(iso(start)), to: fmtTime(iso(end)) }) }),
  field(t('dlg.case'), caseIn), field(t('dlg.reason'), reason), msg, ok,
  h('div', { class: 'actions' }, submit,
    h('button', { type: 'button', class: 'secondary', text: t('dlg.close'), onclick: () => d.close() })));
  const d = dialog(t('dlg.hold_title'), form);
}

// Notes and tags: a form saved with PATCH /calls/{id} for `annotate`, text otherwise.
function annotations(c, can) {
  const tags = tagsText(c);
  if (!can) {
    return h('section', { 'aria-labelledby': 'ann-h' }, h('h2', { id: 'ann-h', text: t('call.annotations') }),
      h('dl', { class: 'panel facts' },
        h('dt', { text: t('calls.notes') }), h('dd', { class: 'notes', text: c.notes || '—' }),
        h('dt', { text: t('calls.tags') }), h('dd', { class: 'tags', text: tags || '—' })),
      h('p', { class: 'hint', text: t('call.readonly') }));
  }
  const notes = h('textarea', { name: 'notes', rows: '4', maxlength: '8000' });
  notes.value = c.notes || '';
  const tagIn = h('input', { name: 'tags', value: tags, autocomplete: 'off', maxlength: '1000', 'aria-describedby': 'tags-hint' });
  const msg = h('p', { class: 'msg', role: 'status', 'aria-live': 'polite' });
  const save = h('button', { type: 'submit', text: t('call.save') });
  const form = h('form', { class: 'panel annotate', 'aria-labelledby': 'ann-h' },
    field(t('calls.notes'), notes),
    h('div', {}, h('label', { for: 'call-tags', text: t('calls.tags') }), Object.assign(tagIn, { id: 'call-tags' }),
      h('span', { class: 'hint small', id: 'tags-hint', text: t('call.tags_hint') })),
    msg, h('div', { class: 'actions' }, save));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    save.disabled = true;
    msg.className = 'msg'; msg.textContent = '';
    const list = [...new Set(tagIn.value.split(',').map((x) => x.trim()).filter(Boolean))];
    try {
      const r = await api('PATCH', '/calls/' + c.id, { notes: notes.value, tags: list });
      const now = r && r.tags ? r : { tags: list, notes: notes.value };
      tagIn.value = (now.tags || list).join(', ');
      msg.className = 'msg ok'; msg.textContent = t('call.saved');
    } catch (err) {
      msg.className = 'msg error'; msg.textContent = err.message;
    } finally {
      save.disabled = false;
    }
  });
  return h('section', {}, h('h2', { id: 'ann-h', text: t('call.annotations') }), form);
}

// The call's audio, its waveform, its controls, and the cameras that follow it.
class Listen {
  constructor(c, start, end, cams) {
    this.c = c;
    this.start0 = start;
    this.end = end;
    this.dur = Math.max(1, (end - start) / 1000);
    this.rate = 1;
    this.audio = h('audio', { preload: 'auto', 'aria-label': t('call.audio') });
    this.wave = h('div', { class: 'call-wave', role: 'slider', tabindex: '0', 'aria-label': t('call.wave'),
      'aria-valuemin': '0', 'aria-valuemax': String(Math.round(this.dur)), 'aria-valuenow': '0', 'aria-valuetext': '0:00' });
    this.status = h('p', { class: 'msg info', role: 'status', 'aria-live': 'polite' });
    this.pos = h('span', { class: 'pos', text: '0:00 / ' + fmtDur(this.dur) });
    this.clock = h('time', { class: 'clock' });
    this.playBtn = h('button', { type: 'button', class: 'play', text: t('player.play'), 'aria-pressed': 'false',
      onclick: () => this.toggle() });
    this.speedSel = h('select', { class: 'speed', onchange: (e) => this.setRate(Number(e.target.value)) },
      SPEEDS.map((s) => h('option', { value: s, selected: s === 1, text: s + '×' })));
    const skip = (d, text, label) => h('button', { type: 'button', class: 'secondary', text, 'aria-label': label,
      title: label, onclick: () => this.seekTo(this.audio.currentTime + d) });
    this.el = h('div', { class: 'player call-player' },
      h('div', { class: 'track audio-track' }, h('p', { class: 'track-name', text: c.source }), this.audio, this.wave),
      h('div', { class: 'controls' }, this.playBtn,
        skip(-5, '−5 с', t('call.back5')), skip(5, '+5 с', t('call.fwd5')),
        field(t('player.speed'), this.speedSel), this.pos, this.clock),
      this.status);
    this.cams = cams.map((x) => this.camView(x));
    this.camBox = h('div', { class: cams.length > 1 ? 'views multi' : 'views' }, this.cams.map((x) => x.box));
    this.wave.addEventListener('keydown', (e) => {
      const step = { ArrowLeft: -5, ArrowRight: 5, PageUp: -30, PageDown: 30 }[e.key];
      if (e.key === 'Home') this.seekTo(0);
      else if (e.key === 'End') this.seekTo(this.dur - 0.5);
      else if (step) this.seekTo(this.audio.currentTime + step);
      else return;
      e.preventDefault();
    });
  }

  camView(x) {
    const el = h('video', { playsinline: true, muted: true, preload: 'auto', 'aria-label': t('call.camera_of', { name: x.source }) });
    el.muted = true;
    const overlay = h('p', { class: 'track-msg', hidden: true });
    const box = h('div', { class: 'track' }, h('p', { class: 'track-name', text: x.source }), el, overlay);
    const tr = new VideoTrack(x.source, el);
    tr.overlay = overlay;
    return { name: x.source, tr, box, overlay };
  }

  say(text, cls = 'info') {
    this.status.className = 'msg ' + cls;
    this.status.textContent = text || '';
  }

  wallNow() { return this.start0 + this.audio.currentTime * 1000; }

  async start() {
    const id = this.c.id;
    this.audio.src = withReasonParam(`/api/v1/calls/${id}/audio.wav`);
    for (const ev of ['play', 'pause']) this.audio.addEventListener(ev, () => { this.buttons(); this.followAll(ev === 'play'); });
    this.audio.addEventListener('seeked', () => this.followAll(!this.audio.paused, true));
    this.audio.addEventListener('timeupdate', () => this.showPos());
    this.audio.addEventListener('error', () => this.say(t('player.no_recording', { at: fmtTime(this.c.start) }), 'error'));
    this.timer = setInterval(() => this.tick(), TICK_MS);
    await Promise.all([this.drawWave(), this.startCams()]);
  }

  // The waveform: peaks of the call's interval, one bucket per pixel or so.
  async drawWave() {
    const n = Math.max(200, Math.min(4000, Math.round((this.wave.clientWidth || 800) * 2)));
    let p = null;
    for (let i = 0; i < 3 && !p; i++) {
      try {
        p = await get(withReasonParam(`/calls/${this.c.id}/peaks?n=${n}`));
      } catch (e) {
        if (e.status !== 503) throw e;
        await new Promise((r) => setTimeout(r, (e.retryAfter || 1) * 1000));
      }
    }
    if (!p) return;
    if (!WaveSurfer) WaveSurfer = (await import('../../vendor/wavesurfer.js/wavesurfer.esm.js')).default;
    const css = getComputedStyle(document.documentElement);
    const col = (v, d) => css.getPropertyValue(v).trim() || d;
    this.ws = WaveSurfer.create({
      container: this.wave, media: this.audio, height: WAVE_HEIGHT,
      peaks: [p.peaks || interleave(p.min, p.max)], duration: this.dur,
      waveColor: '#2e7d4f', progressColor: col('--brand', '#0b3d63'), cursorColor: col('--accent', '#0a5fa3'),
      cursorWidth: 2, normalize: false, interact: true, dragToSeek: true,
    });
  }

  // Each camera opens its HLS window at the call's start (the player's
  // VideoTrack), muted: the call's sound is the line's.
  async startCams() {
    if (!this.cams.length) return;
    let codecs = new Map();
    try {
      const { sources } = await get('/sources');
      codecs = new Map(sources.map((s) => [s.name, s.codec]));
    } catch { /* played without the codec hints */ }
    await Promise.all(this.cams.map(async (cam) => {
      const codec = codecs.get(cam.name) || '';
      if (isHevc(codec) && !hevcPlayable(cam.tr.el)) {
        cam.unplayable = true;
        this.gap(cam, t('call.camera_hevc'));
        return;
      }
      await this.follow(cam, this.wallNow(), true);
    }));
  }

  gap(cam, text) {
    cam.gap = !!text;
    cam.overlay.hidden = !text;
    cam.overlay.textContent = text || '';
    if (text && !cam.tr.el.paused) cam.tr.el.pause();
  }

  // One camera to wall time ms: a seek (hard) or, when its window holds
  // ms, nothing; a time with no recording shows a notice instead.
  async follow(cam, ms, hard) {
    if (cam.unplayable || cam.busy) return;
    cam.busy = true;
    try {
      const at = cam.tr.timeOf(ms);
      if (at && at.jumped) { this.gap(cam, t('call.camera_gap')); return; }
      if (hard || !at) {
        const got = await cam.tr.seek(ms);
        if (got.jumped) { this.gap(cam, t('call.camera_gap')); return; }
      }
      this.gap(cam, null);
      cam.tr.el.playbackRate = this.rate;
      if (!this.audio.paused && cam.tr.el.paused) cam.tr.el.play().catch(() => {});
    } catch (e) {
      this.gap(cam, e instanceof NoRecording ? t('call.camera_gap') : String(e.message || e));
    } finally {
      cam.busy = false;
    }
  }

  followAll(playing, hard) {
    const w = this.wallNow();
    for (const cam of this.cams) {
      if (hard) { this.follow(cam, w, true); continue; }
      if (!playing) { cam.tr.el.pause(); continue; }
      if (!cam.gap && !cam.unplayable) {
        cam.tr.el.playbackRate = this.rate;
        cam.tr.el.play().catch(() => {});
      }
    }
  }

  // Every TICK_MS: position, clock, and each camera kept on the audio's
  // wall time (within about a frame: rate nudged by up to 25 %, a seek
  // past 600 ms). Tests read each element's wall time from data-wall.
  tick() {
    if (!this.el.isConnected) { this.destroy(); return; }
    const w = this.wallNow();
    this.audio.dataset.wall = String(Math.round(w));
    this.showPos();
    for (const cam of this.cams) {
      if (cam.unplayable || cam.busy) continue;
      const tw = cam.tr.wall();
      cam.tr.el.dataset.wall = tw === null || cam.gap ? '' : String(Math.round(tw));
      if (cam.gap) {
        // the camera's recording may resume further on
        const at = cam.tr.timeOf(w);
        if (!at || !at.jumped) this.follow(cam, w, true);
        continue;
      }
      const diff = tw === null ? Infinity : tw - w;
      if (this.audio.paused) {
        if (!cam.tr.el.paused) cam.tr.el.pause();
        if (Math.abs(diff) > 200) this.follow(cam, w, true);
        continue;
      }
      if (Math.abs(diff) > 600) { this.follow(cam, w, true); continue; }
      if (cam.tr.el.paused) cam.tr.el.play().catch(() => {});
      const frameMs = (cam.tr.frameDur || 0.04) * 1000;
      const nudge = Math.abs(diff) <= frameMs / 2 ? 0 : Math.max(-0.25, Math.min(0.25, -diff / 400));
      cam.tr.el.playbackRate = this.rate * (1 + nudge);
    }
  }

  showPos() {
    const ct = this.audio.currentTime || 0;
    this.pos.textContent = fmtDur(ct) + ' / ' + fmtDur(this.dur);
    this.wave.setAttribute('aria-valuenow', String(Math.round(ct)));
    this.wave.setAttribute('aria-valuetext', fmtDur(ct) + ', ' + fmtTime(iso(this.wallNow())));
    const w = this.wallNow();
    this.clock.dateTime = new Date(w).toISOString();
    this.clock.textContent = fmtTime(iso(w));
  }

  seekTo(s) {
    this.audio.currentTime = Math.max(0, Math.min(this.dur, s));
  }

  async toggle() {
    if (this.audio.paused) {
      this.audio.playbackRate = this.rate;
      try { await this.audio.play(); } catch (e) { this.say(String(e.message || e), 'error'); }
    } else this.audio.pause();
  }

  buttons() {
    const paused = this.audio.paused;
    this.playBtn.textContent = paused ? t('player.play') : t('player.pause');
    this.playBtn.setAttribute('aria-pressed', paused ? 'false' : 'true');
  }

  setRate(r) {
    this.rate = r;
    this.audio.playbackRate = r;
    for (const cam of this.cams) cam.tr.el.playbackRate = r;
    this.say(t('player.rate', { r: fmtNum(r, 2) }));
  }

  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    clearInterval(this.timer);
    this.ws?.destroy();
    for (const cam of this.cams) cam.tr.close();
    this.audio.removeAttribute('src');
    this.audio.load();
  }
}

function interleave(min, max) {
  const out = new Array(2 * Math.min(min.length, max.length));
  for (let i = 0; i < out.length / 2; i++) { out[2 * i] = min[i]; out[2 * i + 1] = max[i]; }
  return out;
}
