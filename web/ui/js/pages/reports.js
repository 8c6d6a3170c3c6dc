// /reports: call quality at a glance: the recording-announcement rate per
// day and per queue, QA scores per agent (SVG bar charts, as the storage
// page draws them), each with its table and CSV. Each report run is audited
// by the server.
import { get } from '../api.js';
import { h, table } from '../dom.js';
import { t, fmtNum, zonedToUtc, utcToZoned } from '../i18n.js';
import { app, heading } from '../app.js';

const pct = (v) => (v === null || v === undefined ? '—' : fmtNum(v * 100, 1) + ' %');

// Horizontal bars of shares (0..1), one row per item; line: a threshold.
function bars(items, label, line) {
  const ns = 'http://www.w3.org/2000/svg';
  const el = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const rowH = 24, left = 160, width = 640, top = 10, right = 70;
  const x = (v) => left + Math.max(0, Math.min(1, v)) * (width - left - right);
  const svg = el('svg', { viewBox: `0 0 ${width} ${top + rowH * items.length + 10}`, role: 'img',
    'aria-label': label, class: 'bars' });
  items.forEach((it, i) => {
    const y = top + i * rowH;
    svg.append(el('text', { x: 4, y: y + 15, class: 'label' }, it.label.length > 22 ? it.label.slice(0, 21) + '…' : it.label));
    if (it.value !== null && it.value !== undefined) {
      svg.append(el('rect', { x: left, y: y + 4, width: Math.max(1, x(it.value) - left), height: 14,
        class: line !== undefined && it.value < line ? 'fc bad' : 'now' }));
    }
    svg.append(el('text', { x: width - right + 6, y: y + 15, class: 'axis' }, pct(it.value)));
  });
  if (line !== undefined) {
    svg.append(el('line', { x1: x(line), x2: x(line), y1: 4, y2: top + rowH * items.length, class: 'floor' }));
  }
  return h('div', { class: 'chart' }, svg);
}

function csvLink(path, text) {
  return h('a', { href: '/api/v1' + path + '&format=csv', download: '', class: 'csv', text });
}

async function section(title, path, opts) {
  let rep;
  try {
    rep = await get(path);
  } catch (e) {
    if (e.status === 403) return [];
    return [h('h2', { text: title }), h('p', { class: 'msg error', text: e.message })];
  }
  const items = rep.rows.map((r) => ({ label: r.group || t('reports.none_group'), value: opts.value(r) }));
  return [h('h2', { text: title }),
    items.length ? bars(items, title, opts.line === undefined ? undefined : rep[opts.line]) : h('p', { class: 'hint', text: t('reports.empty') }),
    items.length ? table(opts.headers, rep.rows.map(opts.row), title) : null,
    h('p', {}, csvLink(path, t('reports.csv')))];
}

export async function render() {
  const q = new URLSearchParams(location.search);
  const now = Date.now();
  const from = q.get('from') || new Date(now - 30 * 86400e3).toISOString();
  const to = q.get('to') || new Date(now + 3600e3).toISOString();
  const range = 'from=' + encodeURIComponent(from) + '&to=' + encodeURIComponent(to);
  const fromIn = h('input', { type: 'datetime-local', name: 'from', value: utcToZoned(Date.parse(from)) });
  const toIn = h('input', { type: 'datetime-local', name: 'to', value: utcToZoned(Date.parse(to)) });
  const filters = h('form', { class: 'actions filters', 'aria-label': t('reports.period') },
    h('div', {}, h('label', { for: 'rf', text: t('reports.from') }), Object.assign(fromIn, { id: 'rf' })),
    h('div', {}, h('label', { for: 'rt', text: t('reports.to') }), Object.assign(toIn, { id: 'rt' })),
    h('div', {}, h('button', { type: 'submit', text: t('reports.show') })));
  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    const p = new URLSearchParams({ from: zonedToUtc(fromIn.value), to: zonedToUtc(toIn.value) });
    history.pushState(null, '', '/reports?' + p);
    window.dispatchEvent(new PopStateEvent('popstate'));
  });
  const annHeaders = (g) => [t(g), { text: t('reports.calls'), cls: 'num' }, { text: t('ann.present'), cls: 'num' },
    { text: t('ann.absent'), cls: 'num' }, { text: t('ann.partial'), cls: 'num' }, { text: t('ann.unknown'), cls: 'num' },
    { text: t('reports.rate'), cls: 'num' }];
  const annRow = (r) => h('tr', {}, h('td', { text: r.group || '—' }),
    ...[r.calls, r.present, r.absent, r.partial, r.unknown].map((v) => h('td', { class: 'num', text: String(v) })),
    h('td', { class: 'num', text: pct(r.rate) }));
  const ann = { value: (r) => r.rate, line: 'min_rate', row: annRow };
  const perms = app.me.permissions;
  const parts = await Promise.all([
    section(t('reports.ann_day'), '/reports/announcement?group=day&' + range, { ...ann, headers: annHeaders('reports.day') }),
    section(t('reports.ann_queue'), '/reports/announcement?group=queue&' + range, { ...ann, headers: annHeaders('reports.queue') }),
    section(t('reports.qa_agent'), '/reports/qa?group=agent&' + range, {
      value: (r) => r.mean_score,
      headers: [t('reports.agent'), { text: t('reports.count'), cls: 'num' }, { text: t('reports.mean'), cls: 'num' },
        { text: t('reports.distribution'), cls: 'hide-narrow' }, { text: t('reports.critical'), cls: 'num' }],
      row: (r) => h('tr', {}, h('td', { text: r.group || '—' }), h('td', { class: 'num', text: String(r.count) }),
        h('td', { class: 'num qa-mean', text: pct(r.mean_score) }),
        h('td', { class: 'hide-narrow', text: r.distribution.join(' / ') }),
        h('td', { class: 'num', text: String(r.critical_failed) })),
    }),
    section(t('reports.qa_auditor'), '/reports/qa?group=auditor&' + range, {
      value: (r) => r.mean_score,
      headers: [t('reports.auditor'), { text: t('reports.count'), cls: 'num' }, { text: t('reports.mean'), cls: 'num' },
        { text: t('reports.distribution'), cls: 'hide-narrow' }, { text: t('reports.critical'), cls: 'num' }],
      row: (r) => h('tr', {}, h('td', { text: r.group }), h('td', { class: 'num', text: String(r.count) }),
        h('td', { class: 'num', text: pct(r.mean_score) }),
        h('td', { class: 'hide-narrow', text: r.distribution.join(' / ') }),
        h('td', { class: 'num', text: String(r.critical_failed) })),
    }),
  ]);
  const canCalls = perms.includes('calls') || perms.includes('annotate') || perms.includes('audit');
  return [heading(t('reports.title')), filters,
    canCalls ? h('p', {}, h('a', { href: '/reports/announcement-missing?' + range, text: t('reports.missing_link') })) : null,
    ...parts.flat(),
    h('p', { class: 'hint', text: t('reports.hint') })];
}
