// The evaluation panel beside a player: pick a QA form, answer its
// questions, pin comments to the player's current time, submit (the server
// scores and stores it; a submitted evaluation is never edited, only
// corrected as a new version). Earlier evaluations of the same call or range
// are listed with their comments; a comment's time is a button that seeks.
//
// mountQaPanel(container, subject, player): subject is {call} or {source,
// from, to} (RFC 3339); player has currentTime() (seconds from the start of
// the call or range) and seek(seconds).
import { api, get } from './api.js';
import { h, clear, field } from './dom.js';
import { t, fmtTime, fmtNum } from './i18n.js';

export function fmtOffset(s) {
  const v = Math.max(0, Math.floor(s));
  const mm = Math.floor(v / 60), ss = String(v % 60).padStart(2, '0');
  return mm + ':' + ss;
}

const pct = (score) => fmtNum(score * 100, 1) + ' %';

function subjectQuery(subject) {
  if (subject.call) return 'call=' + encodeURIComponent(subject.call);
  return 'source=' + encodeURIComponent(subject.source) + '&from=' + encodeURIComponent(subject.from) +
    '&to=' + encodeURIComponent(subject.to);
}

// One question: a radio group (yes/no or 1-5, and N/A where allowed).
function questionInput(q, name) {
  const choices = q.type === 'yesno'
    ? [['yes', t('qa.yes')], ['no', t('qa.no')]]
    : [1, 2, 3, 4, 5].map((v) => [String(v), String(v)]);
  if (q.na) choices.push(['na', t('qa.na')]);
  return h('fieldset', { class: 'qa-q', 'data-q': q.id },
    h('legend', {}, q.text, q.critical ? h('span', { class: 'status bad', text: t('qa.critical') }) : null,
      q.weight !== 1 ? h('span', { class: 'hint', text: ' ×' + q.weight }) : null),
    h('div', { class: 'actions' }, choices.map(([v, label]) => h('label', { class: 'choice' },
      h('input', { type: 'radio', name, value: v, required: true }), ' ', label))));
}

function commentList(comments, player) {
  return h('ul', { class: 'qa-comments' }, comments.map((c) => h('li', {},
    h('button', { type: 'button', class: 'link qa-jump', 'data-offset': c.offset_s,
      'aria-label': t('qa.jump_to', { at: fmtOffset(c.offset_s) }),
      onclick: () => player.seek(c.offset_s), text: fmtOffset(c.offset_s) }),
    ' ', c.text)));
}

export function mountQaPanel(container, subject, player) {
  const msg = h('div', { class: 'msg', role: 'status', 'aria-live': 'polite' });
  const say = (cls, text) => { msg.className = 'msg ' + cls; msg.textContent = text; };
  const formSel = h('select', { name: 'form' });
  const questions = h('div', { class: 'qa-questions' });
  const pending = [];
  const pendingList = h('ul', { class: 'qa-comments' });
  const commentText = h('input', { name: 'comment', maxlength: 2000 });
  const nowLabel = h('span', { class: 'hint qa-now' });
  const history = h('div', { class: 'qa-history' });
  let def = null, seq = 0;

  const drawPending = () => {
    clear(pendingList).append(...pending.map((c, i) => h('li', {},
      h('button', { type: 'button', class: 'link qa-jump', 'data-offset': c.offset_s,
        onclick: () => player.seek(c.offset_s), text: fmtOffset(c.offset_s) }), ' ', c.text, ' ',
      h('button', { type: 'button', class: 'link', 'aria-label': t('qa.remove_comment'),
        onclick: () => { pending.splice(i, 1); drawPending(); }, text: '×' }))));
  };
  const addComment = () => {
    const text = commentText.value.trim();
    if (!text) return;
    const at = Math.round(Math.max(0, player.currentTime() || 0) * 1000) / 1000;
    pending.push({ offset_s: at, text });
    pending.sort((a, b) => a.offset_s - b.offset_s);
    commentText.value = '';
    drawPending();
    commentText.focus();
  };
  commentText.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); addComment(); } });
  // the time a comment would be pinned to, kept fresh while the player runs
  const tick = setInterval(() => {
    if (!container.isConnected) { clearInterval(tick); return; }
    nowLabel.textContent = t('qa.at_time', { at: fmtOffset(player.currentTime() || 0) });
  }, 250);

  const loadForm = async () => {
    const my = ++seq;
    clear(questions);
    def = null;
    if (!formSel.value) return;
    const f = await get('/qa/forms/' + encodeURIComponent(formSel.value));
    if (my !== seq) return;
    def = f;
    questions.append(...f.sections.map((s, si) => h('fieldset', { class: 'qa-section' },
      h('legend', { text: s.title }),
      s.questions.map((q) => questionInput(q, 'q-' + si + '-' + q.id)))));
  };
  formSel.addEventListener('change', () => loadForm().catch((e) => say('error', e.message)));

  const loadHistory = async () => {
    const { evaluations } = await get('/qa/evaluations?' + subjectQuery(subject));
    clear(history).append(
      h('h3', { text: t('qa.earlier') }),
      evaluations.length ? h('ul', { class: 'qa-evals' }, evaluations.map((e) => h('li', { class: 'panel' },
        h('strong', { class: 'qa-score', text: pct(e.score) }), ' ',
        e.critical_failed ? h('span', { class: 'status bad', text: t('qa.critical_failed') }) : null, ' ',
        t('qa.by', { who: e.auditor, form: e.form.key, v: e.form.version, at: fmtTime(e.created) }),
        e.version > 1 ? ' ' + t('qa.version', { v: e.version }) : '',
        e.comments.length ? commentList(e.comments, player) : null)))
        : h('p', { class: 'hint', text: t('qa.none_yet') }));
  };

  const submit = h('button', { type: 'submit', text: t('qa.submit') });
  const form = h('form', { class: 'qa-form', 'aria-label': t('qa.panel') },
    field(t('qa.form'), formSel), questions,
    h('fieldset', {}, h('legend', { text: t('qa.comments') }),
      pendingList,
      h('div', { class: 'actions' }, field(t('qa.comment'), commentText),
        h('button', { type: 'button', class: 'secondary qa-add-comment', onclick: addComment, text: t('qa.add_comment') }),
        nowLabel)),
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!def) { say('error', t('qa.pick_form')); return; }
    const answers = {};
    for (const [si, s] of def.sections.entries()) {
      for (const q of s.questions) {
        const v = form.querySelector(`input[name="q-${si}-${q.id}"]:checked`)?.value;
        if (!v) { say('error', t('qa.unanswered', { q: q.text })); return; }
        answers[q.id] = v === 'yes' || v === 'no' || v === 'na' ? v : Number(v);
      }
    }
    const body = { form: def.key, answers, comments: pending.slice() };
    if (subject.call) body.call = Number(subject.call);
    else Object.assign(body, { source: subject.source, from: subject.from, to: subject.to });
    submit.disabled = true; // one evaluation per click, however often it is clicked
    try {
      const ev = await api('POST', '/qa/evaluations', body);
      say('ok', t('qa.saved', { score: pct(ev.score) }) + (ev.critical_failed ? ' ' + t('qa.critical_failed') : ''));
      pending.length = 0;
      drawPending();
      form.querySelectorAll('input[type=radio]').forEach((x) => { x.checked = false; });
      await loadHistory();
    } catch (err) {
      say('error', err.message);
    } finally {
      submit.disabled = false;
    }
  });

  clear(container).append(h('section', { class: 'panel qa-panel', 'aria-label': t('qa.panel') },
    h('h2', { text: t('qa.panel') }), msg, form, history));

  (async () => {
    const { forms } = await get('/qa/forms');
    formSel.append(h('option', { value: '', text: t('qa.pick_form') }),
      ...forms.map((f) => h('option', { value: f.key, text: f.title + ' (v' + f.version + ')' })));
    if (forms.length === 1) { formSel.value = forms[0].key; await loadForm(); }
    await loadHistory();
    container.dataset.ready = '1';
  })().catch((e) => say('error', e.message));
  return { reload: loadHistory };
}
