// /admin/destruction-log: every retention deletion run, as recorded.
import { get } from '../api.js';
import { h, table } from '../dom.js';
import { t, fmtTime, fmtBytes } from '../i18n.js';
import { heading } from '../app.js';

export async function render() {
  const from = new Date(Date.now() - 365 * 86400e3).toISOString();
  const { runs } = await get('/destruction-log?from=' + encodeURIComponent(from));
  const rows = runs.map((d) => h('tr', {},
    h('td', { class: 'num', text: String(d.run) }), h('td', { text: fmtTime(d.at) }),
    h('td', { text: t('reason.' + d.reason) }), h('td', { text: d.source }),
    h('td', { class: 'num', text: String(d.segments) }), h('td', { class: 'num', text: fmtBytes(d.bytes) }),
    h('td', { class: 'hide-narrow', text: fmtTime(d.from) + ' — ' + fmtTime(d.to) })));
  return [heading(t('destruction.title')),
    h('p', { class: 'hint', text: t('destruction.hint') }),
    runs.length ? table([{ text: t('destruction.run'), cls: 'num' }, t('destruction.at'), t('destruction.reason'),
      t('col.source'), { text: t('destruction.segments'), cls: 'num' }, { text: t('col.bytes'), cls: 'num' },
      { text: t('destruction.range'), cls: 'hide-narrow' }], rows, t('destruction.title'))
      : h('p', { text: t('destruction.none') })];
}
