// /sources/{name}?at=T: the player at T (default: 5 minutes ago) over the
// source's archive, then the source's figures.
import { get } from '../api.js';
import { h } from '../dom.js';
import { t, fmtTime, fmtBitrate } from '../i18n.js';
import { app, heading, notFound } from '../app.js';
import { statusBadge, depthCell } from './sources.js';
import { Player, parseAt } from '../player/player.js';
import { iso } from '../player/timeline.js';
import { mountQaPanel } from '../qa_panel.js';

// Quality evaluation of a range of this source (an office visit, a stretch
// of a line): the range is picked with the player, then the panel scores it.
function qaSection(s, player, at) {
  const sec = (ms) => Math.floor(ms / 1000) * 1000;
  let from = sec(at), to = sec(at) + 5 * 60e3;
  const shown = h('p', { class: 'qa-range' });
  const show = () => { shown.textContent = t('qa.range', { from: fmtTime(iso(from)), to: fmtTime(iso(to)) }); };
  const box = h('div', { class: 'qa-box' });
  const here = (which) => () => {
    const w = player.wall();
    if (w === null || w === undefined) return;
    if (which === 'from') from = sec(w); else to = sec(w);
    if (to <= from) to = from + 60e3;
    show();
  };
  const start = () => mountQaPanel(box, { source: s.name, from: iso(from), to: iso(to) }, {
    currentTime: () => { const w = player.wall(); return w === null || w === undefined ? 0 : Math.max(0, (w - from) / 1000); },
    seek: (sec) => player.seek(from + sec * 1000),
  });
  show();
  return [h('h2', { text: t('qa.evaluate') }),
    h('div', { class: 'panel' }, shown,
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary qa-from-here', onclick: here('from'), text: t('qa.from_here') }),
        h('button', { type: 'button', class: 'secondary qa-to-here', onclick: here('to'), text: t('qa.to_here') }),
        h('button', { type: 'button', class: 'qa-start', onclick: start, text: t('qa.evaluate_range') }))),
    box];
}

export async function render(m) {
  let s;
  try {
    s = await get('/sources/' + encodeURIComponent(m[1]));
  } catch (e) {
    if (e.status === 404) return notFound();
    throw e;
  }
  const at = parseAt(new URLSearchParams(location.search).get('at'));
  const player = new Player([{ name: s.name, kind: s.kind, codec: s.codec, transcode: s.transcode }], at,
    (ms) => `/sources/${encodeURIComponent(s.name)}?at=${iso(ms)}`);
  // started once the page is in the document
  requestAnimationFrame(() => player.start().catch((e) => player.say(String(e.message || e), 'error')));
  const dl = (k, v) => [h('dt', { text: t(k) }), h('dd', {}, v)];
  return [heading(t('source.title', { name: s.name })),
    player.el,
    h('h2', { text: t('source.facts') }),
    h('dl', { class: 'panel facts' },
      dl('col.kind', t('kind.' + s.kind)), dl('col.status', statusBadge(s.status)),
      dl('col.codec', s.codec || '—'), dl('col.bitrate', fmtBitrate(s.bitrate_bps)),
      dl('col.oldest', fmtTime(s.oldest)), dl('col.newest', fmtTime(s.newest)),
      dl('col.depth', depthCell(s, app.ui.min_days)),
      dl('col.relay_clients', s.relay ? String(s.relay.clients) : '—'),
      dl('col.last_error', s.last_error || '—')),
    ...(app.me.permissions.includes('annotate') ? qaSection(s, player, at) : [])];
}
