// /sources/{name}: the source's figures; the player comes with the playback
// issue and takes ?at=T.
import { get } from '../api.js';
import { h } from '../dom.js';
import { t, fmtTime, fmtBitrate } from '../i18n.js';
import { app, heading, notFound } from '../app.js';
import { statusBadge, depthCell } from './sources.js';

export async function render(m) {
  let s;
  try {
    s = await get('/sources/' + encodeURIComponent(m[1]));
  } catch (e) {
    if (e.status === 404) return notFound();
    throw e;
  }
  const dl = (k, v) => [h('dt', { text: t(k) }), h('dd', {}, v)];
  return [heading(t('source.title', { name: s.name })),
    h('dl', { class: 'panel facts' },
      dl('col.kind', t('kind.' + s.kind)), dl('col.status', statusBadge(s.status)),
      dl('col.codec', s.codec || '—'), dl('col.bitrate', fmtBitrate(s.bitrate_bps)),
      dl('col.oldest', fmtTime(s.oldest)), dl('col.newest', fmtTime(s.newest)),
      dl('col.depth', depthCell(s, app.ui.min_days)),
      dl('col.relay_clients', s.relay ? String(s.relay.clients) : '—'),
      dl('col.last_error', s.last_error || '—')),
    h('p', { class: 'hint', text: t('source.player_later') })];

}
