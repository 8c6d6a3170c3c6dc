// /qa/forms (admin): the QA forms and an editor. Saving a form that an
// evaluation already used makes its next version (the server decides);
// evaluations keep the version they were scored with.
import { api, get } from '../api.js';
import { h, clear, field, table } from '../dom.js';
import { t, fmtTime } from '../i18n.js';
import { heading, render as rerender } from '../app.js';

function questionRow(q = {}) {
  const row = h('div', { class: 'qa-edit-q actions' },
    field(t('qa.q_id'), h('input', { name: 'id', value: q.id || '', size: 10, pattern: '[a-z0-9][a-z0-9_\\-]{0,31}', required: true })),
    field(t('qa.q_text'), h('input', { name: 'text', value: q.text || '', size: 40, required: true })),
    field(t('qa.q_type'), h('select', { name: 'type' },
      h('option', { value: 'yesno', selected: q.type !== 'scale', text: t('qa.type_yesno') }),
      h('option', { value: 'scale', selected: q.type === 'scale', text: t('qa.type_scale') }))),
    field(t('qa.q_weight'), h('input', { name: 'weight', type: 'number', min: '0.1', max: '100', step: '0.1', value: q.weight ?? 1 })),
    h('label', {}, h('input', { type: 'checkbox', name: 'na', checked: !!q.na }), ' ', t('qa.q_na')),
    h('label', {}, h('input', { type: 'checkbox', name: 'critical', checked: !!q.critical }), ' ', t('qa.q_critical')),
    h('button', { type: 'button', class: 'link', text: t('qa.remove'), onclick: () => row.remove() }));
  return row;
}

function sectionBox(s = { title: '', questions: [{}] }) {
  const qs = h('div', { class: 'qa-edit-qs' }, s.questions.map((q) => questionRow(q)));
  const box = h('fieldset', { class: 'qa-edit-section panel' },
    h('legend', { text: t('qa.section') }),
    field(t('qa.section_title'), h('input', { name: 'section-title', value: s.title, required: true, size: 40 })),
    qs,
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'secondary qa-add-q', text: t('qa.add_question'), onclick: () => qs.append(questionRow()) }),
      h('button', { type: 'button', class: 'link', text: t('qa.remove_section'), onclick: () => box.remove() })));
  return box;
}

function read(sections) {
  return [...sections.querySelectorAll('.qa-edit-section')].map((box) => ({
    title: box.querySelector('[name=section-title]').value.trim(),
    questions: [...box.querySelectorAll('.qa-edit-q')].map((r) => ({
      id: r.querySelector('[name=id]').value.trim(),
      text: r.querySelector('[name=text]').value.trim(),
      type: r.querySelector('[name=type]').value,
      weight: Number(r.querySelector('[name=weight]').value) || 1,
      na: r.querySelector('[name=na]').checked,
      critical: r.querySelector('[name=critical]').checked,
    })),
  }));
}

export async function render() {
  const { forms } = await get('/qa/forms');
  const msg = h('div', { class: 'msg', role: 'status', 'aria-live': 'polite' });
  const say = (cls, text) => { msg.className = 'msg ' + cls; msg.textContent = text; };
  const key = h('input', { name: 'key', required: true, pattern: '[a-z][a-z0-9_\\-]{0,62}' });
  const titleIn = h('input', { name: 'title', required: true, size: 40 });
  const sections = h('div', { class: 'qa-edit-sections' }, sectionBox());
  let editing = null;
  const heading2 = h('h2', { text: t('qa.new_form') });

  const edit = async (k) => {
    const f = await get('/qa/forms/' + encodeURIComponent(k));
    editing = f.key;
    key.value = f.key;
    key.readOnly = true;
    titleIn.value = f.title;
    clear(sections).append(...f.sections.map((s) => sectionBox(s)));
    heading2.textContent = t('qa.edit_form', { key: f.key, v: f.version });
    say('info', f.used ? t('qa.used_note') : '');
    titleIn.focus();
  };

  const form = h('form', { class: 'qa-editor', 'aria-label': t('qa.editor') },
    field(t('qa.key'), key), field(t('qa.title_field'), titleIn), sections,
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'secondary qa-add-section', text: t('qa.add_section'), onclick: () => sections.append(sectionBox()) }),
      h('button', { type: 'submit', text: t('save') })));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = { title: titleIn.value.trim(), sections: read(sections) };
    try {
      const f = editing
        ? await api('PUT', '/qa/forms/' + encodeURIComponent(editing), body)
        : await api('POST', '/qa/forms', Object.assign({ key: key.value.trim() }, body));
      await rerender();
      // the message goes on the page drawn again
      const m = document.querySelector('#main .msg');
      if (m) { m.className = 'msg ok'; m.textContent = t('qa.form_saved', { key: f.key, v: f.version }); }
    } catch (err) { say('error', err.message); }
  });

  const rows = forms.map((f) => h('tr', {},
    h('td', { text: f.key }), h('td', { text: f.title }), h('td', { class: 'num', text: String(f.version) }),
    h('td', { text: f.used ? t('qa.used') : t('qa.unused') }),
    h('td', { class: 'hide-narrow', text: f.created_by + ', ' + fmtTime(f.created) }),
    h('td', {}, h('button', { type: 'button', class: 'secondary', 'aria-label': t('qa.edit_of', { key: f.key }),
      text: t('qa.edit'), onclick: () => edit(f.key).catch((err) => say('error', err.message)) }))));
  return [heading(t('qa.forms_title')), msg,
    forms.length ? table([t('qa.key'), t('qa.title_field'), { text: t('qa.version_col'), cls: 'num' }, t('col.state'),
      { text: t('qa.created'), cls: 'hide-narrow' }, ''], rows, t('qa.forms_title'))
      : h('p', { text: t('qa.no_forms') }),
    heading2, h('div', { class: 'panel' }, form),
    h('p', { class: 'hint', text: t('qa.forms_hint') })];
}
