// /reports/announcement-missing: calls without the recording announcement
// (absent or cut short), newest first, each linking to its call page to
// review; and the calls where the detector and the PBX disagree.
import { get } from '../api.js';
import { h, table } from '../dom.js';
import { t, fmtTime, fmtNum } from '../i18n.js';
import { app, heading } from '../app.js';

// links to the call pages only for a user who may open them (not an officer)
function rows(calls) {
  const canCalls = app.me.permissions.includes('calls');
  return calls.map((c) => h('tr', {},
    h('td', {}, canCalls ? h('a', { href: '/calls/' + c.id, text: c.call_id || '#' + c.id }) : c.call_id || '#' + c.id),
    h('td', { text: fmtTime(c.start) }), h('td', { text: c.source }),
    h('td', { text: c.queue || '—' }), h('td', { text: c.agent || '—' }),
    h('td', { text: t('ann.' + c.state) }),
    h('td', { class: 'hide-narrow', text: c.pbx === null ? '—' : c.pbx ? t('ann.present') : t('ann.absent') }),
    h('td', { class: 'hide-narrow num', text: c.score === null ? '—' : fmtNum(c.score, 2) })));
}

export async function render() {
  const q = new URLSearchParams(location.search);
  const range = new URLSearchParams();
  for (const k of ['from', 'to']) if (q.get(k)) range.set(k, q.get(k));
  const suffix = range.toString() ? '?' + range : '';
  const [missing, dis] = await Promise.all([get('/reports/announcement/missing' + suffix),
    get('/reports/announcement/disagreements' + suffix)]);
  const head = [t('calls.call'), t('calls.start'), t('col.source'), t('reports.queue'), t('reports.agent'),
    t('ann.state'), { text: t('ann.pbx'), cls: 'hide-narrow' }, { text: t('ann.score'), cls: 'hide-narrow num' }];
  return [heading(t('missing.title')),
    h('p', { class: 'hint', text: t('missing.hint') }),
    missing.calls.length ? table(head, rows(missing.calls), t('missing.title')) : h('p', { class: 'msg ok', text: t('missing.none') }),
    h('h2', { text: t('missing.disagreements') }),
    dis.calls.length ? table(head, rows(dis.calls), t('missing.disagreements')) : h('p', { class: 'hint', text: t('missing.no_disagreements') })];
}
