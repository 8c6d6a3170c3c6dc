// /admin/users: create, change role and sources, reset password, delete.
import { api, get } from '../api.js';
import { h, field, table } from '../dom.js';
import { t, fmtTime } from '../i18n.js';
import { heading, render as rerender } from '../app.js';

const ROLES = ['security', 'auditor', 'investigator', 'officer', 'admin'];

// "" -> null (all sources); "a, b" -> ["a","b"]
function parseSources(text) {
  const list = text.split(',').map((x) => x.trim()).filter(Boolean);
  return list.length ? list : null;
}

// What the last action did, shown by the page drawn after it.
let notice = null;

export async function render() {
  const { users } = await get('/users');
  const msg = h('div', { class: 'msg', role: 'status', 'aria-live': 'polite' });
  const say = (cls, text) => { msg.className = 'msg ' + cls; msg.textContent = text; };
  if (notice) say('ok', notice);
  notice = null;
  const act = async (fn, ok) => {
    try {
      await fn();
      notice = ok;
      await rerender();
    } catch (err) { say('error', err.message); }
  };

  const name = h('input', { name: 'name', required: true, autocomplete: 'off', autocapitalize: 'none' });
  const role = h('select', { name: 'role' }, ROLES.map((r) => h('option', { value: r, text: t('role.' + r) })));
  const pw = h('input', { name: 'password', type: 'password', required: true, autocomplete: 'new-password', minlength: 10 });
  const srcs = h('input', { name: 'sources', placeholder: t('users.all_sources') });
  const form = h('form', { class: 'grid', 'aria-label': t('users.add') },
    field(t('users.name'), name), field(t('users.role'), role), field(t('users.password'), pw),
    field(t('users.sources'), srcs), h('div', {}, h('button', { type: 'submit', text: t('users.add') })));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const body = { name: name.value.trim(), role: role.value, password: pw.value };
    const s = parseSources(srcs.value);
    if (s) body.sources = s;
    act(() => api('POST', '/users', body), t('users.added', { name: body.name }));
  });

  const rows = users.map((u) => {
    // a role this page does not know is still shown as it is, not as the first one
    const r = h('select', { 'aria-label': t('users.role_of', { name: u.name }) },
      (ROLES.includes(u.role) ? ROLES : [...ROLES, u.role]).map((x) => h('option', { value: x, selected: x === u.role, text: t('role.' + x) })));
    const s = h('input', { value: u.sources ? u.sources.join(', ') : '', placeholder: t('users.all_sources'),
      'aria-label': t('users.sources_of', { name: u.name }) });
    const path = '/users/' + encodeURIComponent(u.name);
    return h('tr', {},
      h('td', { text: u.name }), h('td', {}, r), h('td', {}, s),
      h('td', { class: 'hide-narrow', text: fmtTime(u.created) }),
      h('td', {}, h('div', { class: 'actions' },
        h('button', { type: 'button', 'aria-label': t('users.save_of', { name: u.name }), text: t('save'),
          onclick: () => {
            // the role only when it was changed here: saving sources never touches it
            const body = { sources: parseSources(s.value) };
            if (r.value !== u.role) body.role = r.value;
            act(() => api('PATCH', path, body), t('users.saved', { name: u.name }));
          } }),
        h('button', { type: 'button', class: 'secondary', 'aria-label': t('users.reset_of', { name: u.name }),
          text: t('users.reset'), onclick: () => {
            const p = prompt(t('users.new_password', { name: u.name }));
            if (p) act(() => api('PATCH', path, { password: p }), t('users.reset_done', { name: u.name }));
          } }),
        h('button', { type: 'button', class: 'danger', 'aria-label': t('users.delete_of', { name: u.name }),
          text: t('users.delete'), onclick: () => {
            if (confirm(t('users.confirm_delete', { name: u.name })))
              act(() => api('DELETE', path), t('users.deleted', { name: u.name }));
          } }))));
  });
  return [heading(t('users.title')), msg,
    table([t('users.name'), t('users.role'), t('users.sources'), { text: t('col.created'), cls: 'hide-narrow' },
      t('col.actions')], rows, t('users.title')),
    h('h2', { text: t('users.add') }), h('div', { class: 'panel' }, form),
    h('p', { class: 'hint', text: t('users.hint') })];
}
