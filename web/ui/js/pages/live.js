// /live: the live wall. 1, 4, 9 or 16 tiles, each playing one source live:
// WebRTC (WHEP, non-trickle) where the source says WebRTC can carry it, else
// fragmented MP4 from live.mp4 into MSE; where the browser cannot decode the
// codec at all, the tile says so and offers the RTSP link. Tiles reconnect by
// themselves (backoff; connection state, stream end and a stall watchdog),
// end their session (DELETE) when removed, when the page is left and on
// pagehide. The layout is kept per user (PUT /api/v1/me/prefs/live.layout).
import { api, get, ApiError, errorText as codeText } from '../api.js';
import { h, clear } from '../dom.js';
import { t, fmtBitrate, timeZone, language } from '../i18n.js';
import { app, heading } from '../app.js';
import { iso } from '../player/timeline.js';
import { hevcPlayable, isHevc } from '../player/tracks.js';

export const SIZES = [1, 4, 9, 16];
const PREF = '/me/prefs/live.layout';
const POLL_MS = 5000;        // source states and bitrates
const ICE_WAIT_MS = 3000;    // non-trickle: the offer waits for gathering, at most this
const STALL_MS = 8000;       // no new frame for this long: the session is dead
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000];
const LIVE_EDGE_S = 1.5;     // MSE: further behind the buffered end than this, jump ahead
const KEEP_S = 10;           // MSE: drop what is older than this behind the playhead

const csrf = { 'X-Requested-With': 'vigil' };

// Ends a WHEP session; keepalive so it still leaves while the page unloads.
function endSession(location) {
  if (!location) return;
  fetch(location, { method: 'DELETE', headers: csrf, credentials: 'same-origin', keepalive: true })
    .catch(() => { /* gone already, or the server is down: it times out there */ });
}

function waitIce(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => { if (pc.iceGatheringState === 'complete') done(); };
    // host candidates are enough on the appliance's network: do not wait
    // forever for a STUN server that does not answer
    const timer = setTimeout(done, ICE_WAIT_MS);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

class Tile {
  constructor(wall, index) {
    this.wall = wall;
    this.index = index;
    this.source = null;
    this.gen = 0;            // bumps on every stop: late callbacks of an old session see it
    this.tries = 0;
    this.retryTimer = null;
    this.pc = null;
    this.session = null;     // WHEP Location
    this.abort = null;       // MSE fetch
    this.objectUrl = null;
    this.transport = 'none';
    this.lastProgress = 0;
    this.lastMark = -1;
    this.noWebrtc = new Set(); // sources the server answered 406 for
    this.video = h('video', { muted: true, autoplay: true, playsinline: true,
      'aria-label': t('live.video', { n: index + 1 }) });
    this.video.muted = true;
    this.video.addEventListener('click', () => this.fullscreen());
    this.pick = h('select', { 'aria-label': t('live.pick', { n: index + 1 }),
      onchange: (e) => this.wall.assign(this.index, e.target.value || null) });
    this.name = h('span', { class: 'name' });
    this.state = h('span', { class: 'status stopped' });
    this.bitrate = h('span', { class: 'bitrate' });
    this.clock = h('time', { class: 'clock' });
    this.transportEl = h('span', { class: 'transport' });
    this.msg = h('p', { class: 'tile-msg', role: 'status', 'aria-live': 'polite' });
    this.audioBtn = h('button', { type: 'button', class: 'secondary', 'aria-pressed': 'false',
      text: t('live.audio'), onclick: () => this.wall.setAudio(this.audioOn() ? null : this) });
    this.replay = h('a', { class: 'replay', href: '#', text: t('live.replay'),
      onclick: () => { this.replay.href = this.replayHref(); }, hidden: true });
    this.fsBtn = h('button', { type: 'button', class: 'secondary', text: t('live.fullscreen'),
      onclick: () => this.fullscreen() });
    this.el = h('figure', { class: 'tile', 'data-transport': 'none', 'data-state': 'idle' },
      h('div', { class: 'screen' }, this.video, this.msg),
      h('figcaption', {},
        h('div', { class: 'row' }, this.name, this.state, this.transportEl),
        h('div', { class: 'row' }, this.bitrate, this.clock),
        h('div', { class: 'row actions' }, this.pick, this.audioBtn, this.fsBtn, this.replay)));
  }

  audioOn() { return !this.video.muted; }

  setAudio(on) {
    this.video.muted = !on;
    this.audioBtn.setAttribute('aria-pressed', on ? 'true' : 'false');
    if (on) this.video.play().catch(() => { /* needs a gesture: the button was one */ });
  }

  replayHref() {
    return this.source ? `/sources/${encodeURIComponent(this.source.name)}?at=${iso(Date.now() - 30e3)}` : '#';
  }

  fullscreen() {
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    else this.el.requestFullscreen().catch(() => {});
  }

  // The source list changed (or was refreshed): labels, and a new session
  // when the tile's source changed.
  show(src) {
    const changed = (src && src.name) !== (this.source && this.source.name);
    this.source = src;
    // rebuilt only when the list changed: an open drop-down stays open
    const names = this.wall.sources.map((s) => s.name).join('\n');
    if (names !== this.pickNames || changed) {
      this.pickNames = names;
      this.pick.replaceChildren(h('option', { value: '', text: t('live.empty') }),
        ...this.wall.sources.map((s) => h('option', { value: s.name, selected: src && s.name === src.name,
          text: s.name })));
    }
    // why WebRTC cannot carry this source, as the server says
    this.transportEl.title = src && src.live && src.live.reason ? src.live.reason : '';
    this.name.textContent = src ? src.name : t('live.empty');
    const st = src ? src.status || 'stopped' : 'stopped';
    this.state.className = 'status ' + st;
    this.state.textContent = src ? t('state.' + st) + (st === 'error' && src.last_error ? ': ' + src.last_error : '') : '';
    const bps = src ? (src.live && src.live.bitrate_bps) || src.bitrate_bps : 0;
    this.bitrate.textContent = src ? t('live.bitrate', { b: fmtBitrate(bps) }) : '';
    this.state.hidden = !src;
    this.replay.hidden = !src;
    this.audioBtn.hidden = !src;
    this.fsBtn.hidden = !src;
    if (changed) this.restart();
  }

  label(kind, text) {
    this.transport = kind;
    this.el.dataset.transport = kind;
    this.transportEl.textContent = text;
  }

  say(state, text, extra) {
    this.el.dataset.state = state;
    clear(this.msg).append(text || '', ...(extra || []));
    this.msg.hidden = !text && !extra;
  }

  restart() {
    this.stop();
    this.tries = 0;
    if (this.source) this.start();
    else {
      this.label('none', '');
      this.say('idle', t('live.pick_hint'));
    }
  }

  // Ends whatever runs; an old session's callbacks are ignored from here.
  stop() {
    this.gen++;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.pc) {
      this.pc.close();
      this.pc = null;
    }
    endSession(this.session);
    this.session = null;
    this.el.dataset.session = '';
    if (this.abort) {
      this.abort.abort();
      this.abort = null;
    }
    this.sb = null;
    this.video.removeAttribute('src');
    this.video.srcObject = null;
    if (this.objectUrl) {
      URL.revokeObjectURL(this.objectUrl);
      this.objectUrl = null;
    }
  }

  // Called by a session that ended or failed: try again after a backoff.
  retry(gen, why, afterMs) {
    if (gen !== this.gen || !this.source || !this.wall.alive) return;
    this.stop();
    const wait = afterMs || BACKOFF_MS[Math.min(this.tries, BACKOFF_MS.length - 1)];
    this.tries++;
    this.say('reconnecting', t('live.reconnecting', { s: Math.round(wait / 1000), why }));
    const gen2 = this.gen;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (gen2 === this.gen) this.start();
    }, wait);
  }

  start() {
    const s = this.source;
    this.lastProgress = performance.now();
    this.lastMark = -1;
    this.say('connecting', t('live.connecting'));
    const useWebrtc = s.live ? s.live.webrtc === true : s.kind === 'video' && !isHevc(s.codec);
    const run = useWebrtc && !this.noWebrtc.has(s.name) && window.RTCPeerConnection ? this.webrtc() : this.mse();
    const gen = this.gen;
    run.catch((e) => this.retry(gen, String(e.message || e), (e.retryAfter || 0) * 1000));
  }

  playing() {
    this.tries = 0;
    this.say('playing', '');
  }

  // Progress for the stall watchdog: decoded frames (WebRTC) or the playhead (MSE).
  tick(now) {
    this.clock.textContent = this.wall.timeText;
    if (this.source) this.replay.href = this.replayHref();
    if (!this.source || this.el.dataset.state === 'unsupported' || this.retryTimer) return;
    const q = this.video.getVideoPlaybackQuality ? this.video.getVideoPlaybackQuality().totalVideoFrames : 0;
    const mark = q + this.video.currentTime;
    if (mark !== this.lastMark) {
      this.lastMark = mark;
      this.lastProgress = now;
      if (this.el.dataset.state !== 'playing' && this.video.readyState >= 2) this.playing();
    } else if (now - this.lastProgress > STALL_MS) {
      this.retry(this.gen, t('live.stalled'));
    }
    if (this.transport === 'mse') this.keepLive();
  }

  async webrtc() {
    const gen = this.gen;
    const name = this.source.name;
    this.label('webrtc', t('live.webrtc'));
    const pc = new RTCPeerConnection({ iceServers: this.wall.iceServers });
    this.pc = pc;
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const stream = new MediaStream();
    pc.addEventListener('track', (e) => {
      stream.addTrack(e.track);
      if (this.video.srcObject !== stream) this.video.srcObject = stream;
      this.video.play().catch(() => {});
    });
    let grace = null;
    pc.addEventListener('connectionstatechange', () => {
      if (gen !== this.gen) return;
      const st = pc.connectionState;
      this.el.dataset.pc = st;
      clearTimeout(grace);
      if (st === 'failed' || st === 'closed') this.retry(gen, t('live.lost'));
      // "disconnected" may heal by itself (ICE consent); give it a moment
      else if (st === 'disconnected') grace = setTimeout(() => {
        if (pc.connectionState === 'disconnected') this.retry(gen, t('live.lost'));
      }, 4000);
    });
    await pc.setLocalDescription(await pc.createOffer());
    await waitIce(pc);
    if (gen !== this.gen) return;
    const res = await fetch(`/api/v1/sources/${encodeURIComponent(name)}/whep`, {
      method: 'POST', credentials: 'same-origin',
      headers: { ...csrf, 'Content-Type': 'application/sdp', Accept: 'application/sdp, application/json' },
      body: pc.localDescription.sdp,
    });
    if (gen !== this.gen) {
      if (res.status === 201) endSession(res.headers.get('Location'));
      return;
    }
    if (res.status === 406) {
      // the server cannot carry this source over WebRTC: MSE from now on
      this.noWebrtc.add(name);
      pc.close();
      this.pc = null;
      return this.mse();
    }
    if (res.status === 401) return this.wall.loggedOut();
    if (res.status !== 201) {
      const retry = Number(res.headers.get('Retry-After')) || 0;
      throw Object.assign(new Error(await errorText(res)), { retryAfter: retry });
    }
    this.session = res.headers.get('Location');
    this.el.dataset.session = this.session || '';
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
  }

  async mse() {
    const gen = this.gen;
    const name = this.source.name;
    // H.265 this browser cannot decode: no need to ask the server for bytes
    if (isHevc(this.source.codec) && !hevcPlayable(this.video)) return this.unsupported('hvc1');
    this.label('mse', t('live.mse'));
    const abort = new AbortController();
    this.abort = abort;
    const res = await fetch(`/api/v1/sources/${encodeURIComponent(name)}/live.mp4`,
      { credentials: 'same-origin', signal: abort.signal });
    if (gen !== this.gen) return;
    if (res.status === 401) return this.wall.loggedOut();
    if (!res.ok) throw new Error(await errorText(res));
    const codecs = res.headers.get('X-Vigil-Codecs') || '';
    const mime = `video/mp4; codecs="${codecs}"`;
    if (!window.MediaSource || !codecs || !MediaSource.isTypeSupported(mime)) {
      abort.abort();
      this.abort = null;
      return this.unsupported(codecs);
    }
    const ms = new MediaSource();
    this.objectUrl = URL.createObjectURL(ms);
    this.video.src = this.objectUrl;
    await new Promise((resolve) => ms.addEventListener('sourceopen', resolve, { once: true }));
    if (gen !== this.gen) return;
    const sb = ms.addSourceBuffer(mime);
    this.sb = sb;
    const reader = res.body.getReader();
    this.video.play().catch(() => {});
    for (;;) {
      const { done, value } = await reader.read();
      if (gen !== this.gen) return;
      if (done) throw new Error(t('live.ended'));
      if (sb.updating) await new Promise((r) => sb.addEventListener('updateend', r, { once: true }));
      if (gen !== this.gen) return;
      sb.appendBuffer(value);
      await appended(sb);
      if (gen !== this.gen) return;
    }
  }

  // MSE: stay near the live edge and keep the buffer short.
  keepLive() {
    const v = this.video, sb = this.sb;
    if (!sb || !v.buffered.length) return;
    const end = v.buffered.end(v.buffered.length - 1);
    if (end - v.currentTime > LIVE_EDGE_S * 2) v.currentTime = Math.max(v.buffered.start(v.buffered.length - 1), end - LIVE_EDGE_S / 2);
    const start = v.buffered.start(0);
    if (!sb.updating && v.currentTime - start > KEEP_S * 2) {
      try { sb.remove(start, v.currentTime - KEEP_S); } catch { /* the source was closed */ }
    }
  }

  // The browser cannot decode this codec: say so in words, offer RTSP.
  unsupported(codecs) {
    this.label('none', t('live.none'));
    const r = app.ui && app.ui.rtsp;
    const link = r ? h('a', { href: `${r.scheme}://${location.hostname}:${r.port}/${encodeURIComponent(this.source.name)}`,
      text: t('live.rtsp') }) : null;
    this.say('unsupported', t(isHevc(codecs) ? 'live.hevc' : 'live.codec', { codecs: codecs || '?' }),
      [' ', link || t('live.no_rtsp')]);
  }
}

// One append finished; rejects when the browser could not take the bytes.
function appended(sb) {
  return new Promise((resolve, reject) => {
    const end = () => { off(); resolve(); };
    const err = () => { off(); reject(new Error(t('live.decode_error'))); };
    const off = () => {
      sb.removeEventListener('updateend', end);
      sb.removeEventListener('error', err);
    };
    sb.addEventListener('updateend', end);
    sb.addEventListener('error', err);
  });
}

async function errorText(res) {
  try {
    const j = await res.json();
    const e = j.error;
    return (e && (e.code ? codeText(e.code) : e.message || e)) || res.statusText;
  } catch {
    return res.status + ' ' + res.statusText;
  }
}

class Wall {
  constructor(sources, layout) {
    this.sources = sources;
    this.alive = true;
    this.iceServers = [];
    this.size = SIZES.includes(layout.tiles) ? layout.tiles : 4;
    this.names = Array.isArray(layout.sources) ? layout.sources.slice(0, 16) : [];
    this.tiles = [];
    this.timeText = '';
    this.grid = h('div', { class: 'wall' });
    this.status = h('p', { class: 'msg info', role: 'status', 'aria-live': 'polite', hidden: true });
    const group = h('fieldset', { class: 'sizes' }, h('legend', { text: t('live.layout') }),
      SIZES.map((n) => h('label', {}, h('input', { type: 'radio', name: 'tiles', value: n, checked: n === this.size,
        onchange: () => this.resize(n, true) }), t('live.tiles', { n }))));
    this.el = [heading(t('live.title')), h('div', { class: 'wall-bar' }, group, this.status), this.grid,
      h('p', { class: 'hint', text: t('live.hint') })];
    this.onHide = () => {
      this.destroy();
      // back from the back-forward cache: draw the wall again
      addEventListener('pageshow', (e) => { if (e.persisted) dispatchEvent(new PopStateEvent('popstate')); }, { once: true });
    };
    addEventListener('pagehide', this.onHide);
    this.timeFmt = new Intl.DateTimeFormat(language() === 'ru' ? 'ru-RU' : 'en-GB',
      { timeZone: timeZone(), hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
    this.ticker = setInterval(() => this.tick(), 1000);
    this.poller = setInterval(() => this.poll(), POLL_MS);
    this.resize(this.size, false);
  }

  byName(n) { return this.sources.find((s) => s.name === n) || null; }

  resize(n, save) {
    this.size = n;
    this.grid.className = 'wall n' + n;
    while (this.tiles.length > n) {
      const tile = this.tiles.pop();
      tile.stop();
      tile.el.remove();
    }
    // a new tile gets the next source not on the wall yet
    while (this.tiles.length < n) {
      const i = this.tiles.length;
      if (this.names[i] === undefined) this.names[i] = this.sources.find((s) =>
        s.kind === 'video' && !this.names.slice(0, i).includes(s.name))?.name || null;
      const tile = new Tile(this, i);
      this.tiles.push(tile);
      this.grid.append(tile.el);
      tile.show(this.byName(this.names[i]));
      if (!tile.source) tile.restart();
    }
    if (save) this.save();
  }

  assign(i, name) {
    this.names[i] = name;
    this.tiles[i].show(this.byName(name));
    this.save();
  }

  setAudio(tile) {
    for (const x of this.tiles) x.setAudio(x === tile);
  }

  async save() {
    const value = { tiles: this.size, sources: this.names.slice(0, this.size).map((n) => n || null) };
    try {
      await api('PUT', PREF, value);
      this.note('');
    } catch (e) {
      this.note(t('live.save_failed', { why: e.message }));
    }
  }

  note(text) {
    this.status.textContent = text;
    this.status.hidden = !text;
  }

  tick() {
    if (!this.grid.isConnected) return this.destroy(); // the page was left
    this.timeText = this.timeFmt.format(new Date());
    const now = performance.now();
    for (const tile of this.tiles) tile.tick(now);
  }

  async poll() {
    try {
      const { sources } = await get('/sources');
      if (!this.alive) return;
      this.sources = sources;
      this.note('');
      for (const tile of this.tiles) tile.show(this.byName(this.names[tile.index]));
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return this.loggedOut();
      // vigild restarting or the network down: the tiles retry by themselves
      this.note(t('live.offline'));
    }
  }

  loggedOut() {
    this.destroy();
    dispatchEvent(new PopStateEvent('popstate')); // the shell sends the user to the login page
  }

  destroy() {
    if (!this.alive) return;
    this.alive = false;
    clearInterval(this.ticker);
    clearInterval(this.poller);
    removeEventListener('pagehide', this.onHide);
    for (const tile of this.tiles) tile.stop();
  }
}

export async function render() {
  const [{ sources }, pref] = await Promise.all([get('/sources'),
    get(PREF).catch(() => ({ value: null }))]);
  const layout = pref && pref.value && typeof pref.value === 'object' ? pref.value : {};
  if (!sources.length) return [heading(t('live.title')), h('p', { text: t('sources.none') })];
  return new Wall(sources, layout).el;
}
