// /admin/audit: the audit trail with filters (time, actor, action, and the
// object within what was fetched), paging by id, CSV download, and a check
// of the hash chain. Reading it is itself audited by the API.
import { get } from '../api.js';
import { h, field, table } from '../dom.js';
import { t, fmtTime, zonedToUtc, utcToZoned } from '../i18n.js';
import { heading } from '../app.js';

const PAGE = 100;

export async function render() {
  const q = new URLSearchParams(location.search);
  const now = Date.now();
  const from = h('input', { name: 'from', type: 'datetime-local', value: q.get('from') ? utcToZoned(Date.parse(q.get('from'))) : utcToZoned(now - 7 * 86400e3) });
  const to = h('input', { name: 'to', type: 'datetime-local', value: q.get('to') ? utcToZoned(Date.parse(q.get('to'))) : '' });
  const actor = h('input', { name: 'actor', value: q.get('actor') || '', placeholder: 'user:admin' });
  const action = h('input', { name: 'action', value: q.get('action') || '', placeholder: 'login' });
  const object = h('input', { name: 'object', value: q.get('object') || '' });
  const msg = h('div', { class: 'msg', role: 'status', 'aria-live': 'polite' });
  const body = h('div', {});
  const verifyOut = h('div', { 'aria-live': 'polite' });
  const pager = h('div', { class: 'pager' });
  const csv = h('a', { class: 'button-link', download: 'audit.csv', text: t('audit.csv') });
  let pages = [0]; // the `after` id of each page seen, for going back

  const params = (extra) => {
    const p = new URLSearchParams();
    p.set('from', from.value ? zonedToUtc(from.value) : new Date(0).toISOString());
    if (to.value) p.set('to', zonedToUtc(to.value));
    if (actor.value.trim()) p.set('actor', actor.value.trim());
    if (action.value.trim()) p.set('action', action.value.trim());
    for (const [k, v] of Object.entries(extra || {})) if (v) p.set(k, v);
    return p;
  };

  const load = async (after) => {
    msg.className = 'msg'; msg.textContent = '';
    let res;
    try {
      res = await get('/audit?' + params({ limit: PAGE, after }).toString());
    } catch (err) {
      msg.className = 'msg error'; msg.textContent = err.message;
      return;
    }
    const obj = object.value.trim();
    const rows = res.rows.filter((r) => !obj || r.object.includes(obj));
    body.replaceChildren(rows.length ? table([t('audit.ts'), t('audit.actor'), { text: 'IP', cls: 'hide-narrow' },
      t('audit.action'), t('audit.object'), t('audit.result'), { text: t('audit.detail'), cls: 'hide-narrow' }],
    rows.map((r) => h('tr', {}, h('td', { text: fmtTime(r.ts) }), h('td', { text: r.actor }),
      h('td', { class: 'hide-narrow', text: r.ip }), h('td', { text: r.action }), h('td', { text: r.object }),
      h('td', {}, h('span', { class: 'status ' + (r.result === 'ok' ? 'ok' : 'bad'), text: r.result })),
      h('td', { class: 'hide-narrow', text: r.detail }))), t('audit.title'))
      : h('p', { text: t('audit.none') }));
    const last = res.rows.length ? res.rows[res.rows.length - 1].id : after;
    const idx = pages.indexOf(after);
    pager.replaceChildren(
      h('button', { type: 'button', class: 'secondary', disabled: idx <= 0,
        onclick: () => load(pages[idx - 1]), text: t('audit.prev') }),
      h('span', { text: t('audit.page', { n: idx + 1 }) }),
      h('button', { type: 'button', class: 'secondary', disabled: res.rows.length < PAGE, onclick: () => {
        if (!pages.includes(last)) pages.push(last);
        load(last);
      }, text: t('audit.next') }));
    csv.href = '/api/v1/audit?' + params({ format: 'csv', limit: 10000 }).toString();
  };

  const form = h('form', { class: 'grid', 'aria-label': t('audit.filters') },
    field(t('audit.from'), from), field(t('audit.to'), to), field(t('audit.actor'), actor),
    field(t('audit.action'), action), field(t('audit.object'), object),
    h('div', { class: 'actions' }, h('button', { type: 'submit', text: t('audit.apply') }), csv));
  form.addEventListener('submit', (e) => { e.preventDefault(); pages = [0]; load(0); });

  const verify = h('button', { type: 'button', class: 'secondary', text: t('audit.verify'), onclick: async () => {
    verify.disabled = true;
    try {
      const v = await get('/audit/verify');
      verifyOut.replaceChildren(h('p', { class: 'msg ' + (v.ok ? 'ok' : 'error'), role: 'status',
        text: v.ok ? t('audit.chain_ok', { n: v.rows_checked }) : t('audit.chain_bad', { n: v.rows_checked, id: v.first_bad_id }) }));
    } catch (err) {
      verifyOut.replaceChildren(h('p', { class: 'msg error', text: err.message }));
    } finally { verify.disabled = false; }
  } });

  await load(0);
  return [heading(t('audit.title')), h('div', { class: 'panel' }, form),
    h('div', { class: 'actions' }, verify), verifyOut, msg, pager, body];
}
