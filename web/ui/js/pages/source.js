// /sources/{name}?at=T: the player at T (default: 5 minutes ago) over the
// source's archive, then the source's figures.
import { get } from '../api.js';
import { h } from '../dom.js';
import { t, fmtTime, fmtBitrate } from '../i18n.js';
import { app, heading, notFound } from '../app.js';
import { statusBadge, depthCell } from './sources.js';
import { Player, parseAt } from '../player/player.js';
import { iso } from '../player/timeline.js';

export async function render(m) {
  let s;
  try {
    s = await get('/sources/' + encodeURIComponent(m[1]));
  } catch (e) {
    if (e.status === 404) return notFound();
    throw e;
  }
  const at = parseAt(new URLSearchParams(location.search).get('at'));
  const player = new Player([{ name: s.name, kind: s.kind, codec: s.codec }], at,
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
      dl('col.last_error', s.last_error || '—'))];
}
