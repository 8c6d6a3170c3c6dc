// /calls: search the calls (the filters of GET /api/v1/calls, kept in the
// page's URL so a search can be linked and reloaded), a table of results
// newest first, sortable by start, duration and agent, paged with the
// API's cursor ("show more"), and a CSV of the rows loaded. With ?agent=
// it is the agent's view: a summary (calls, talk time, share with the
// recording announcement) above the same table.
import { get } from '../api.js';
import { h, field } from '../dom.js';
import { t, fmtTime, fmtNum, zonedToUtc, utcToZoned } from '../i18n.js';
import { heading } from '../app.js';
import { seconds, fmtDur, dirText, annState, annText, tagsText, callsCsv } from '../calls/format.js';

const PAGE = 50;
const SUMMARY_PAGE = 500;
const SUMMARY_MAX = 5000;   // calls read for an agent's summary at most
const TEXT_KEYS = ['number', 'agent', 'queue', 'account', 'text'];

// The agent view's link for an agent, with the period searched now.
export function agentHref(agent, q) {
  const p = new URLSearchParams();
  p.set('agent', agent);
  for (const k of ['from', 'to']) if (q && q.get(k)) p.set(k, q.get(k));
  return '/calls?' + p.toString();
}

export async function render() {
  const q = new URLSearchParams(location.search);
  const zoned = (k) => (q.get(k) && !isNaN(Date.parse(q.get(k))) ? utcToZoned(Date.parse(q.get(k))) : '');
  const from = h('input', { name: 'from', type: 'datetime-local',
    value: q.has('from') ? zoned('from') : utcToZoned(Date.now() - 7 * 86400e3) });
  const to = h('input', { name: 'to', type: 'datetime-local', value: zoned('to') });
  const text = {};
  for (const k of TEXT_KEYS) {
    text[k] = h('input', { name: k, value: q.get(k) || '', autocomplete: 'off', maxlength: '200',
      'aria-describedby': k === 'number' ? 'number-hint' : null });
  }
  const direction = h('select', { name: 'direction' },
    ['', 'in', 'out', 'internal'].map((d) => h('option', { value: d, selected: (q.get('direction') || '') === d,
      text: d ? t('dir.' + d) : t('calls.any') })));
  const num = (k) => h('input', { name: k, type: 'number', min: '0', step: '1', inputmode: 'numeric',
    value: q.get(k) || '' });
  const minS = num('min_seconds'), maxS = num('max_seconds');

  const msg = h('p', { class: 'msg', role: 'status', 'aria-live': 'polite' });
  const say = (cls, s) => { msg.className = 'msg ' + cls; msg.textContent = s; };
  const count = h('p', { class: 'count', 'aria-live': 'polite' });
  const body = h('div', {});
  const summary = h('div', {});
  const more = h('button', { type: 'button', class: 'secondary', hidden: true, text: t('calls.more') });
  const csv = h('button', { type: 'button', class: 'secondary', disabled: true, text: t('calls.csv') });
  const agentName = (q.get('agent') || '').trim();
  const state = { rows: [], next: null, sort: { key: 'start', dir: -1 }, gen: 0 };

  // the API's query of the form (without paging)
  const params = () => {
    const p = new URLSearchParams();
    if (from.value) p.set('from', zonedToUtc(from.value));
    if (to.value) p.set('to', zonedToUtc(to.value));
    for (const k of TEXT_KEYS) if (text[k].value.trim()) p.set(k, text[k].value.trim());
    if (direction.value) p.set('direction', direction.value);
    if (minS.value !== '') p.set('min_seconds', minS.value);
    if (maxS.value !== '') p.set('max_seconds', maxS.value);
    return p;
  };

  const sorted = () => {
    const { key, dir } = state.sort;
    const val = {
      start: (c) => Date.parse(c.start),
      duration: (c) => seconds(c) ?? Infinity,
      agent: (c) => (c.agent || '').toLocaleLowerCase(),
    }[key];
    return [...state.rows].sort((a, b) => {
      const x = val(a), y = val(b);
      return (x < y ? -1 : x > y ? 1 : 0) * dir || (Date.parse(b.start) - Date.parse(a.start));
    });
  };

  const sortTh = (key, label, cls) => {
    const on = state.sort.key === key;
    const th = h('th', { scope: 'col', class: cls || null,
      'aria-sort': on ? (state.sort.dir > 0 ? 'ascending' : 'descending') : 'none' },
    h('button', { type: 'button', class: 'sort', 'data-sort': key, title: t('calls.sort_by', { col: label }),
      onclick: () => {
        state.sort = { key, dir: on ? -state.sort.dir : (key === 'agent' ? 1 : -1) };
        draw();
      } }, label, h('span', { class: 'arrow', 'aria-hidden': 'true', text: on ? (state.sort.dir > 0 ? ' ▲' : ' ▼') : '' })));
    return th;
  };

  const draw = () => {
    const cur = new URLSearchParams(location.search);
    count.textContent = state.rows.length || state.next
      ? t('calls.found', { n: state.rows.length, more: state.next ? t('calls.found_more') : '' }) : '';
    more.hidden = !state.next;
    csv.disabled = !state.rows.length;
    if (!state.rows.length) { body.replaceChildren(h('p', { text: t('calls.none') })); return; }
    const rows = sorted().map((c) => h('tr', {},
      h('td', { class: 'nowrap' }, h('a', { href: '/calls/' + c.id, 'aria-label': t('calls.open', { id: c.id }) + ', ' + fmtTime(c.start),
        text: fmtTime(c.start) })),
      h('td', { class: 'num', text: c.end ? fmtDur(seconds(c)) : t('calls.ongoing') }),
      h('td', { text: dirText(c.direction) }),
      h('td', { class: 'nowrap', text: c.caller || '—' }),
      h('td', { class: 'nowrap', text: c.callee || '—' }),
      h('td', {}, c.agent ? h('a', { href: agentHref(c.agent, cur), title: t('calls.agent_calls', { agent: c.agent }),
        text: c.agent }) : '—'),
      h('td', { class: 'hide-narrow', text: c.queue || '—' }),
      h('td', { class: 'hide-narrow', text: c.account || '—' }),
      h('td', { class: 'hide-narrow', text: c.source }),
      h('td', { class: 'hide-narrow', text: tagsText(c) }),
      h('td', { class: 'hide-narrow' }, annBadge(c))));
    body.replaceChildren(h('div', { class: 'table-wrap' }, h('table', { class: 'calls' },
      h('caption', { class: 'skip', text: t('calls.title') }),
      h('thead', {}, h('tr', {},
        sortTh('start', t('calls.start')), sortTh('duration', t('calls.duration'), 'num'),
        h('th', { scope: 'col', text: t('calls.direction') }),
        h('th', { scope: 'col', text: t('calls.caller') }), h('th', { scope: 'col', text: t('calls.callee') }),
        sortTh('agent', t('calls.agent')),
        h('th', { scope: 'col', class: 'hide-narrow', text: t('calls.queue') }),
        h('th', { scope: 'col', class: 'hide-narrow', text: t('calls.account') }),
        h('th', { scope: 'col', class: 'hide-narrow', text: t('calls.line') }),
        h('th', { scope: 'col', class: 'hide-narrow', text: t('calls.tags') }),
        h('th', { scope: 'col', class: 'hide-narrow', text: t('calls.ann_col') }))),
      h('tbody', {}, rows))));
  };

  const load = async (after) => {
    const gen = ++state.gen;
    say('', '');
    const p = params();
    if (p.get('from') && p.get('to') && p.get('from') > p.get('to')) { say('error', t('calls.bad_range')); return; }
    p.set('limit', String(PAGE));
    if (after) p.set('after', after);
    more.disabled = true;
    let res;
    try {
      res = await get('/calls?' + p.toString());
    } catch (err) {
      if (gen === state.gen) say('error', err.message);
      return;
    } finally {
      more.disabled = false;
    }
    if (gen !== state.gen) return;
    state.rows = after ? state.rows.concat(res.calls) : res.calls;
    state.next = res.next || null;
    draw();
  };

  const form = h('form', { class: 'grid', 'aria-label': t('calls.filters') },
    field(t('calls.from'), from), field(t('calls.to'), to),
    field(t('calls.number'), text.number),
    field(t('calls.agent'), text.agent), field(t('calls.queue'), text.queue),
    field(t('calls.account'), text.account), field(t('calls.direction'), direction),
    field(t('calls.min'), minS), field(t('calls.max'), maxS), field(t('calls.text'), text.text),
    h('div', { class: 'actions' }, h('button', { type: 'submit', text: t('calls.search') }),
      h('a', { class: 'button-link', href: '/calls', text: t('calls.reset') })),
    h('p', { class: 'hint small wide', id: 'number-hint', text: t('calls.number_hint') }));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    // the search in the URL: reloads and links give the same page
    const p = params();
    const path = '/calls' + (p.toString() ? '?' + p.toString() : '');
    if (p.get('agent') !== (agentName || null)) {
      history.pushState(null, '', path);
      dispatchEvent(new PopStateEvent('popstate'));
      return;
    }
    history.replaceState(null, '', path);
    load(null);
  });
  more.addEventListener('click', () => load(state.next));
  csv.addEventListener('click', () => {
    const url = URL.createObjectURL(new Blob([callsCsv(sorted())], { type: 'text/csv;charset=utf-8' }));
    const a = h('a', { href: url, download: 'calls.csv', hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  });

  await load(null);
  if (agentName) agentSummary(summary, params());
  return [heading(agentName ? t('calls.agent_title', { agent: agentName }) : t('calls.title')),
    summary,
    h('div', { class: 'panel' }, form),
    msg,
    h('div', { class: 'list-bar' }, count, csv),
    body,
    h('div', { class: 'actions' }, more),
    h('p', { class: 'hint', text: t('calls.sort_hint') })];
}

function annBadge(c) {
  const st = annState(c);
  if (!st) return h('span', { class: 'muted', text: t('ann.none') });
  const cls = { present: 'ok', absent: 'bad', partial: 'warning', unknown: 'stopped' }[st] || 'stopped';
  return h('span', { class: 'status ' + cls, text: annText(c) });
}

// The agent's summary over every call the filters find (read page by page,
// at most SUMMARY_MAX calls): count, talk time, share of the checked calls
// with the announcement present.
async function agentSummary(box, p) {
  let n = 0, talk = 0, checked = 0, present = 0, after = null, partial = false;
  try {
    for (;;) {
      const q = new URLSearchParams(p);
      q.set('limit', String(SUMMARY_PAGE));
      if (after) q.set('after', after);
      const res = await get('/calls?' + q.toString());
      for (const c of res.calls) {
        n++;
        talk += seconds(c) || 0;
        const st = annState(c);
        if (st === 'present' || st === 'absent' || st === 'partial') checked++;
        if (st === 'present') present++;
      }
      after = res.next;
      if (!after || !res.calls.length) break;
      if (n >= SUMMARY_MAX) { partial = true; break; }
    }
  } catch (err) {
    box.replaceChildren(h('p', { class: 'msg error', text: err.message }));
    return;
  }
  const card = (k, v) => h('div', { class: 'card' }, h('div', { class: 'k', text: k }), h('div', { class: 'v', text: v }));
  box.replaceChildren(h('section', { 'aria-label': t('calls.summary'), class: 'summary' },
    h('div', { class: 'cards' },
      card(t('calls.sum_count'), String(n)),
      card(t('calls.sum_talk'), fmtDur(talk)),
      card(t('calls.sum_ann'), checked
        ? t('calls.sum_ann_of', { p: fmtNum((present / checked) * 100, 0), n: present, m: checked }) : '—')),
    partial ? h('p', { class: 'hint', text: t('calls.sum_partial', { n }) }) : null));
}
