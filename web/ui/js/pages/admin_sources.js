// /admin/sources: keep_days per source, an override kept across restarts,
// never below the floor (min_days), which the API enforces too.
import { api, get } from '../api.js';
import { h, table } from '../dom.js';
import { t, fmtNum } from '../i18n.js';
import { app, heading, render as rerender } from '../app.js';

export async function render() {
  const { sources } = await get('/sources');
  const floor = app.ui.min_days;
  const msg = h('div', { class: 'msg', role: 'status', 'aria-live': 'polite' });
  const rows = sources.map((s) => {
    const input = h('input', { type: 'number', min: floor, max: 3650, value: s.keep_days,
      'aria-label': t('admin_sources.keep_for', { name: s.name }), class: 'short' });
    const save = async (value) => {
      try {
        await api('PATCH', '/sources/' + encodeURIComponent(s.name), { keep_days: value });
        await rerender();
      } catch (err) {
        msg.className = 'msg error';
        msg.textContent = err.message;
      }
    };
    return h('tr', {},
      h('td', { text: s.name }), h('td', { text: t('kind.' + s.kind) }),
      h('td', { class: 'num', text: fmtNum(s.depth_days) }),
      h('td', {}, input),
      h('td', { text: t('keep_from.' + s.keep_days_from) }),
      h('td', {}, h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: () => {
          const v = Number(input.value);
          if (!Number.isInteger(v) || v < floor) {
            msg.className = 'msg error';
            msg.textContent = t('admin_sources.below_floor', { f: floor });
            return;
          }
          save(v);
        }, 'aria-label': t('admin_sources.save_for', { name: s.name }), text: t('save') }),
        s.keep_days_from === 'override' ? h('button', { type: 'button', class: 'secondary',
          onclick: () => save(null), 'aria-label': t('admin_sources.reset_for', { name: s.name }),
          text: t('admin_sources.reset') }) : null)));
  });
  return [heading(t('admin_sources.title')), msg,
    h('p', { class: 'hint', text: t('admin_sources.floor', { f: floor }) }),
    table([t('col.source'), t('col.kind'), { text: t('col.depth_days'), cls: 'num' }, t('col.keep_days'),
      t('col.keep_from'), t('col.actions')], rows, t('admin_sources.title'))];
}
