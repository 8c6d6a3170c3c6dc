// /admin/tokens: API tokens for machines; a new token's secret is shown
// once, with a copy button, and only its hash is stored.
import { api, get } from '../api.js';
import { h, field, table } from '../dom.js';
import { t, fmtTime } from '../i18n.js';
import { heading, render as rerender } from '../app.js';

// as web/accounts.c names them; pbx: the telephone exchange's token that reports calls
const PERMS = ['live', 'playback', 'calls', 'export', 'hold', 'annotate', 'audit', 'admin', 'metrics', 'pbx'];

// The token just created: shown by the next drawing of the page only.
let created = null;

function secretPanel(res) {
  const code = h('code', { class: 'token-secret', text: res.token });
  const copy = h('button', { type: 'button', class: 'secondary', text: t('tokens.copy'), onclick: async () => {
    try { await navigator.clipboard.writeText(res.token); copy.textContent = t('tokens.copied'); }
    catch { getSelection().selectAllChildren(code); copy.textContent = t('tokens.select'); }
  } });
  return h('div', { class: 'panel' }, h('p', { class: 'msg ok', text: t('tokens.once', { name: res.name }) }),
    h('div', { class: 'secret' }, code, copy));
}

export async function render() {
  const { tokens } = await get('/tokens');
  const msg = h('div', { class: 'msg', role: 'status', 'aria-live': 'polite' });
  const shown = h('div', { 'aria-live': 'polite' }, created ? secretPanel(created) : null);
  created = null;
  const say = (cls, text) => { msg.className = 'msg ' + cls; msg.textContent = text; };

  const name = h('input', { name: 'name', required: true, autocomplete: 'off' });
  const boxes = PERMS.map((p) => h('label', {}, h('input', { type: 'checkbox', name: 'perm', value: p }), p));
  const submit = h('button', { type: 'submit', text: t('tokens.add') });
  const form = h('form', { class: 'grid', 'aria-label': t('tokens.add') }, field(t('tokens.name'), name),
    h('fieldset', {}, h('legend', { text: t('tokens.permissions') }), boxes),
    h('div', {}, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const perms = [...form.querySelectorAll('input[name=perm]:checked')].map((x) => x.value);
    submit.disabled = true; // one token per click, however often it is clicked
    try {
      created = await api('POST', '/tokens', { name: name.value.trim(), permissions: perms });
      await rerender();
    } catch (err) {
      say('error', err.message);
    } finally {
      submit.disabled = false;
    }
  });

  const rows = tokens.map((k) => h('tr', {},
    h('td', { text: String(k.id) }), h('td', { text: k.name }), h('td', { text: k.permissions.join(', ') }),
    h('td', { class: 'hide-narrow', text: k.created_by + ', ' + fmtTime(k.created) }),
    h('td', {}, k.revoked ? t('tokens.revoked_at', { at: fmtTime(k.revoked) }) :
      h('button', { type: 'button', class: 'danger', 'aria-label': t('tokens.revoke_of', { name: k.name }),
        text: t('tokens.revoke'), onclick: async () => {
          if (!confirm(t('tokens.confirm_revoke', { name: k.name }))) return;
          try { await api('DELETE', '/tokens/' + k.id); await rerender(); } catch (err) { say('error', err.message); }
        } }))));
  return [heading(t('tokens.title')), msg, shown,
    tokens.length ? table(['ID', t('tokens.name'), t('tokens.permissions'), { text: t('col.created'), cls: 'hide-narrow' },
      t('col.state')], rows, t('tokens.title')) : h('p', { text: t('tokens.none') }),
    h('h2', { text: t('tokens.add') }), h('div', { class: 'panel' }, form)];
}
