// The "export" and "hold" dialogs of a range selected on the timeline
// (a modal <dialog>: focus stays inside, Escape closes). Export posts
// POST /api/v1/exports, follows GET /exports/{id} until the bundle is done
// and offers its download; hold posts POST /api/v1/holds.
import { h, field } from '../dom.js';
import { t, fmtTime, fmtBytes } from '../i18n.js';
import { api, get } from '../api.js';
import { iso } from './timeline.js';

export function dialog(titleText, body) {
  const d = h('dialog', { class: 'dlg', 'aria-labelledby': 'dlg-title' },
    h('h2', { id: 'dlg-title', text: titleText }), body);
  d.addEventListener('close', () => { clearTimeout(d.poll); d.remove(); });
  document.body.append(d);
  d.showModal();
  d.querySelector('input, textarea, button')?.focus();
  return d;
}

function sourcesField(names) {
  return h('fieldset', {}, h('legend', { text: t('dlg.sources') }),
    names.map((n) => h('label', {}, h('input', { type: 'checkbox', name: 'src', value: n, checked: true }), n)));
}

function rangeText(from, to) {
  return h('p', { class: 'range', text: t('dlg.range', { from: fmtTime(iso(from)), to: fmtTime(iso(to)) }) });
}

export function exportDialog(names, from, to) {
  const msg = h('p', { class: 'msg error', role: 'alert' });
  const progress = h('progress', { max: '1', value: '0', hidden: true, 'aria-label': t('dlg.progress') });
  const state = h('p', { class: 'state', role: 'status' });
  const caseIn = h('input', { name: 'case', required: true, maxlength: '200', autocomplete: 'off' });
  const reason = h('textarea', { name: 'reason', required: true, rows: '2', maxlength: '1000' });
  const hold = h('input', { type: 'checkbox', name: 'hold' });
  const submit = h('button', { type: 'submit', text: t('dlg.export_go') });
  const close = h('button', { type: 'button', class: 'secondary', text: t('dlg.close'), onclick: () => d.close() });
  const done = h('p', { class: 'done' });
  const form = h('form', { method: 'dialog', onsubmit: async (e) => {
    e.preventDefault();
    msg.textContent = '';
    const sources = [...form.querySelectorAll('input[name=src]:checked')].map((x) => x.value);
    if (!caseIn.value.trim() || !reason.value.trim() || !sources.length) {
      msg.textContent = t('dlg.required');
      return;
    }
    submit.disabled = true;
    try {
      const job = await api('POST', '/exports', { sources, from: iso(from), to: iso(Math.max(to, from + 1000)),
        case: caseIn.value.trim(), reason: reason.value.trim(), hold: hold.checked });
      progress.hidden = false;
      follow(job.id);
    } catch (err) {
      msg.textContent = err.message;
      submit.disabled = false;
    }
  } },
  rangeText(from, to), sourcesField(names),
  field(t('dlg.case'), caseIn), field(t('dlg.reason'), reason),
  h('label', { class: 'check' }, hold, t('dlg.also_hold')),
  msg, progress, state, done,
  h('div', { class: 'actions' }, submit, close));
  const d = dialog(t('dlg.export_title'), form);
  async function follow(id) {
    let job;
    try { job = await get('/exports/' + id); } catch (err) { msg.textContent = err.message; return; }
    progress.value = job.progress || 0;
    state.textContent = t('exports.state.' + job.state) +
      (job.state === 'running' ? ' ' + Math.round((job.progress || 0) * 100) + ' %' : '');
    if (job.state === 'done') {
      progress.value = 1;
      done.replaceChildren(h('a', { class: 'button-link download', href: `/api/v1/exports/${id}/download`,
        download: '', text: t('dlg.download', { size: fmtBytes(job.bytes) }) }), ' ',
      h('a', { href: '/exports', text: t('dlg.all_exports') }));
      done.querySelector('a').focus();
      return;
    }
    if (job.state === 'failed') { msg.textContent = job.error || t('exports.state.failed'); return; }
    if (d.open) d.poll = setTimeout(() => follow(id), 1000);
  }
  return d;
}

export function holdDialog(names, from, to, after) {
  const msg = h('p', { class: 'msg error', role: 'alert' });
  const ok = h('p', { class: 'msg ok', role: 'status' });
  const caseIn = h('input', { name: 'case', required: true, maxlength: '200', autocomplete: 'off' });
  const reason = h('textarea', { name: 'reason', required: true, rows: '2', maxlength: '1000' });
  const submit = h('button', { type: 'submit', text: t('dlg.hold_go') });
  const form = h('form', { method: 'dialog', onsubmit: async (e) => {
    e.preventDefault();
    msg.textContent = '';
    const sources = [...form.querySelectorAll('input[name=src]:checked')].map((x) => x.value);
    if (!caseIn.value.trim() || !reason.value.trim() || !sources.length) {
      msg.textContent = t('dlg.required');
      return;
    }
    submit.disabled = true;
    try {
      const hd = await api('POST', '/holds', { case: caseIn.value.trim(), reason: reason.value.trim(), sources,
        from: iso(from), to: iso(Math.max(to, from + 1000)) });
      ok.textContent = t('dlg.held', { id: hd.id ?? '' });
      after?.();
    } catch (err) {
      msg.textContent = err.message;
      submit.disabled = false;
    }
  } },
  rangeText(from, to), sourcesField(names),
  field(t('dlg.case'), caseIn), field(t('dlg.reason'), reason), msg, ok,
  h('div', { class: 'actions' }, submit,
    h('button', { type: 'button', class: 'secondary', text: t('dlg.close'), onclick: () => d.close() })));
  const d = dialog(t('dlg.hold_title'), form);
  return d;
}
