// /exports: the caller's evidence exports (everyone's for admin), their
// progress while they are built, download and delete (with a confirmation).
import { api, get } from '../api.js';
import { h, clear, table } from '../dom.js';
import { t, fmtTime, fmtBytes } from '../i18n.js';
import { app, heading } from '../app.js';

export async function render() {
  const body = h('div', { class: 'exports' });
  const msg = h('p', { class: 'msg', role: 'status' });
  let timer = null, failing = false;
  async function load() {
    clearTimeout(timer);
    if (!body.isConnected && timer !== null) return;
    let exports;
    try {
      ({ exports } = await get('/exports'));
    } catch (e) {
      // the first load's error is the page's to show; an expired session
      // shows the login page; anything else (vigild restarting, the network)
      // is said and the list is asked again
      if (timer === null || e.status === 401) throw e;
      failing = true;
      msg.className = 'msg error';
      msg.textContent = e.message;
      timer = setTimeout(() => load().catch(() => {}), 1500);
      return;
    }
    if (failing) {
      failing = false;
      msg.className = 'msg';
      msg.textContent = '';
    }
    clear(body).append(exports.length ? table(
      [t('exports.id'), t('exports.case'), t('exports.sources'), t('exports.range'), t('exports.state'),
        { text: t('exports.size'), cls: 'num' }, t('exports.owner'), t('exports.created'), t('exports.actions')],
      exports.map((x) => row(x)), t('exports.title')) : h('p', { text: t('exports.none') }));
    if (exports.some((x) => x.state === 'queued' || x.state === 'running')) timer = setTimeout(() => load().catch(() => {}), 1500);
    else timer = 0;
  }
  function row(x) {
    const st = h('td', {}, h('span', { class: 'status ' + (x.state === 'failed' ? 'bad' : x.state === 'done' ? 'ok' : 'warning'),
      text: t('exports.state.' + x.state) }));
    if (x.state === 'running' || x.state === 'queued')
      st.append(' ', h('progress', { max: '1', value: String(x.progress || 0), 'aria-label': t('dlg.progress') }));
    if (x.error) st.append(h('div', { class: 'hint', text: x.error }));
    const actions = h('td', { class: 'actions' });
    // the API lets only its owner or an admin download or delete an export
    // (an officer sees them all and may do neither)
    if (x.owner !== 'user:' + app.me.user && !app.me.permissions.includes('admin')) {
      return h('tr', { 'data-id': x.id }, ...cells(x, st), actions);
    }
    if (x.state === 'done')
      actions.append(h('a', { class: 'button-link', href: `/api/v1/exports/${x.id}/download`, download: '',
        'aria-label': t('exports.download_of', { id: x.id }), text: t('exports.download') }));
    const del = h('button', { type: 'button', class: 'danger', 'aria-label': t('exports.delete_of', { id: x.id }),
      text: t('exports.delete'), onclick: () => confirmDelete(x, actions, del) });
    actions.append(del);
    return h('tr', { 'data-id': x.id }, ...cells(x, st), actions);
  }
  function cells(x, st) {
    return [h('td', { class: 'num', text: String(x.id) }), h('td', { text: x.case }),
      h('td', { text: (x.sources || []).join(', ') }),
      h('td', { text: fmtTime(x.from) + ' — ' + fmtTime(x.to) }), st,
      h('td', { class: 'num', text: x.bytes ? fmtBytes(x.bytes) : '—' }),
      h('td', { text: x.owner || '—' }), h('td', { text: fmtTime(x.created) })];
  }
  function confirmDelete(x, actions, del) {
    del.hidden = true;
    const no = h('button', { type: 'button', class: 'secondary', text: t('exports.keep'),
      onclick: () => { box.remove(); del.hidden = false; del.focus(); } });
    const yes = h('button', { type: 'button', class: 'danger', text: t('exports.confirm_delete'), onclick: async () => {
      try {
        await api('DELETE', '/exports/' + x.id);
        msg.className = 'msg ok';
        msg.textContent = t('exports.deleted', { id: x.id });
        await load();
      } catch (e) {
        msg.className = 'msg error';
        msg.textContent = e.message;
      }
    } });
    const box = h('span', { class: 'confirm', role: 'group', 'aria-label': t('exports.really', { id: x.id }) },
      h('span', { text: t('exports.really', { id: x.id }) }), yes, no);
    actions.append(box);
    yes.focus();
  }
  await load();
  return [heading(t('exports.title')), h('p', { class: 'hint', text: t('exports.hint') }), msg, body];
}
