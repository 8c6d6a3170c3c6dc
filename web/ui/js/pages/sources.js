// The sources overview: every source the user may see, its state, bitrate,
// archive depth against keep_days and the floor, last error, relay clients.
import { get } from '../api.js';
import { h, table } from '../dom.js';
import { t, fmtTime, fmtBitrate, fmtNum } from '../i18n.js';
import { app, heading } from '../app.js';

export function statusBadge(state) {
  return h('span', { class: 'status ' + (state || 'stopped'), text: t('state.' + (state || 'stopped')) });
}

export function depthCell(s, floor) {
  const depth = s.depth_days ?? 0;
  const below = depth < s.keep_days;
  return h('span', { class: 'depth' },
    h('span', { class: below && depth < floor ? 'below' : null,
      text: t('depth.of', { d: fmtNum(depth, 1), k: s.keep_days }) }),
    h('meter', { min: 0, max: s.keep_days, low: floor, optimum: s.keep_days, high: s.keep_days - 0.01,
      value: Math.min(depth, s.keep_days), 'aria-label': t('depth.meter', { name: s.name }) }));
}

export async function render() {
  const { sources } = await get('/sources');
  const floor = app.ui.min_days;
  const rows = sources.map((s) => h('tr', {},
    h('td', {}, h('a', { href: '/sources/' + encodeURIComponent(s.name), text: s.name })),
    h('td', { text: t('kind.' + s.kind) }),
    h('td', {}, statusBadge(s.status)),
    h('td', { class: 'num', text: fmtBitrate(s.bitrate_bps) }),
    h('td', {}, depthCell(s, floor)),
    h('td', { class: 'hide-narrow', text: fmtTime(s.newest) }),
    h('td', { class: 'num hide-narrow', text: s.relay ? String(s.relay.clients) : '—' }),
    h('td', { class: 'hide-narrow', text: s.last_error || '' })));
  const counts = {};
  for (const s of sources) counts[s.status] = (counts[s.status] || 0) + 1;
  return [heading(t('sources.title')),
    h('div', { class: 'cards' },
      h('div', { class: 'card' }, h('div', { class: 'k', text: t('sources.total') }), h('div', { class: 'v', text: String(sources.length) })),
      h('div', { class: 'card' }, h('div', { class: 'k', text: t('state.recording') }), h('div', { class: 'v', text: String(counts.recording || 0) })),
      h('div', { class: 'card' }, h('div', { class: 'k', text: t('sources.problems') }),
        h('div', { class: 'v', text: String(sources.length - (counts.recording || 0)) }))),
    sources.length === 0 ? h('p', { text: t('sources.none') }) :
      table([t('col.source'), t('col.kind'), t('col.status'), { text: t('col.bitrate'), cls: 'num' },
        t('col.depth'), { text: t('col.newest'), cls: 'hide-narrow' },
        { text: t('col.relay_clients'), cls: 'num hide-narrow' }, { text: t('col.last_error'), cls: 'hide-narrow' }],
      rows, t('sources.title')),
    h('p', { class: 'hint', text: t('sources.floor_hint', { f: floor }) })];
}
