// Holds (evidence lock): the list, a form to create one, release with a
// reason. Each action goes through the API, which audits it.
import { api, get } from '../api.js';
import { h, field, table } from '../dom.js';
import { t, fmtTime, zonedToUtc, utcToZoned } from '../i18n.js';
import { heading, render as rerender } from '../app.js';

export async function render() {
  const [{ holds }, { sources }] = await Promise.all([get('/holds?all=1'), get('/sources')]);
  const msg = h('div', { class: 'msg', role: 'status', 'aria-live': 'polite' });
  const say = (cls, text) => { msg.className = 'msg ' + cls; msg.textContent = text; };

  const now = Date.now();
  const caseNo = h('input', { name: 'case', required: true });
  const reason = h('input', { name: 'reason', required: true });
  const from = h('input', { name: 'from', type: 'datetime-local', required: true, value: utcToZoned(now - 3600e3) });
  const to = h('input', { name: 'to', type: 'datetime-local', required: true, value: utcToZoned(now) });
  const until = h('input', { name: 'until', type: 'datetime-local' });
  const boxes = sources.map((s) => h('label', {}, h('input', { type: 'checkbox', name: 'sources', value: s.name }), s.name));
  const submit = h('button', { type: 'submit', text: t('holds.create') });
  const form = h('form', { class: 'grid', 'aria-label': t('holds.create') },
    field(t('holds.case'), caseNo), field(t('holds.reason'), reason),
    field(t('holds.from'), from), field(t('holds.to'), to), field(t('holds.until'), until),
    h('fieldset', {}, h('legend', { text: t('holds.sources') }), boxes),
    h('div', {}, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const picked = [...form.querySelectorAll('input[name=sources]:checked')].map((x) => x.value);
    if (!caseNo.value.trim() || !reason.value.trim() || !picked.length || !from.value || !to.value) {
      say('error', t('holds.incomplete'));
      return;
    }
    const body = { case: caseNo.value.trim(), reason: reason.value.trim(), sources: picked,
      from: zonedToUtc(from.value), to: zonedToUtc(to.value) };
    if (until.value) body.until = zonedToUtc(until.value);
    submit.disabled = true; // one hold per click, however often it is clicked
    try {
      await api('POST', '/holds', body);
      await rerender();
    } catch (err) {
      say('error', err.message);
    } finally {
      submit.disabled = false;
    }
  });

  const rows = holds.map((x) => {
    const release = async () => {
      const why = prompt(t('holds.release_reason', { c: x.case }));
      if (!why) return;
      try {
        await api('POST', '/holds/' + x.id + '/release', { reason: why });
        await rerender();
      } catch (err) { say('error', err.message); }
    };
    // past its until a hold protects nothing any more: nothing to release
    const expired = !x.released && x.until && Date.parse(x.until) <= now;
    return h('tr', { 'data-id': x.id },
      h('td', { text: x.case }), h('td', { text: x.reason }), h('td', {}, x.sources.join(', '), callLinks(x.calls)),
      h('td', { text: fmtTime(x.from) + ' — ' + fmtTime(x.to) }),
      h('td', { class: 'hide-narrow', text: x.until ? fmtTime(x.until) : t('holds.no_end') }),
      h('td', { class: 'hide-narrow', text: x.created_by + ', ' + fmtTime(x.created) }),
      h('td', {}, x.released
        ? h('span', { text: t('holds.released', { by: x.released_by, at: fmtTime(x.released), why: x.release_reason }) })
        : expired ? h('span', { class: 'status warning', text: t('holds.expired') })
          : h('button', { type: 'button', class: 'secondary', onclick: release,
            'aria-label': t('holds.release_case', { c: x.case }), text: t('holds.release') })));
  });
  return [heading(t('holds.title')), msg,
    holds.length ? table([t('holds.case'), t('holds.reason'), t('holds.sources'), t('holds.range'),
      { text: t('holds.until_col'), cls: 'hide-narrow' }, { text: t('holds.created'), cls: 'hide-narrow' },
      t('col.state')], rows, t('holds.title'))
      : h('p', { text: t('holds.none') }),
    h('h2', { text: t('holds.create') }), h('div', { class: 'panel' }, form),
    h('p', { class: 'hint', text: t('holds.hint') })];
}

// A hold made for calls: links to them (under its sources).
function callLinks(ids) {
  if (!Array.isArray(ids) || !ids.length) return null;
  return h('span', { class: 'hold-calls' }, h('br'), t('holds.calls') + ' ',
    ids.map((id, i) => [i ? ', ' : '', h('a', { href: '/calls/' + id, text: '#' + id })]));
}
