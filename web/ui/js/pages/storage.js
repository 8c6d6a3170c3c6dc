// /admin/storage: capacity, free space, reserve, per-source depth and the
// forecast depth (a chart), alarms with what to do about each.
import { get } from '../api.js';
import { h, table } from '../dom.js';
import { t, fmtBytes, fmtNum, fmtTime } from '../i18n.js';
import { app, heading } from '../app.js';

// A horizontal bar chart in SVG: depth now and forecast per source against
// keep_days and the floor. Built from elements, styled by classes (CSP).
function chart(sources, floor) {
  const ns = 'http://www.w3.org/2000/svg';
  const el = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const rowH = 34, left = 150, width = 640, top = 24;
  const max = Math.max(floor, ...sources.map((s) => Math.max(s.keep_days, s.depth_days || 0,
    Math.min(s.projected_days || 0, s.keep_days * 2)))) * 1.05 || 1;
  const x = (d) => left + (Math.min(d, max) / max) * (width - left - 10);
  const svg = el('svg', { viewBox: `0 0 ${width} ${top + rowH * sources.length + 30}`, role: 'img',
    'aria-label': t('storage.chart_label'), class: 'bars' });
  svg.append(el('line', { x1: x(floor), x2: x(floor), y1: 8, y2: top + rowH * sources.length, class: 'floor' }));
  svg.append(el('text', { x: x(floor) - 4, y: 16, class: 'axis', 'text-anchor': 'end' },
    t('storage.floor_line', { d: floor })));
  sources.forEach((s, i) => {
    const y = top + i * rowH;
    svg.append(el('text', { x: 4, y: y + 19, class: 'label' }, s.source));
    svg.append(el('rect', { x: left, y: y + 4, width: Math.max(1, x(s.depth_days || 0) - left), height: 11, class: 'now' }));
    svg.append(el('rect', { x: left, y: y + 17, width: Math.max(1, x(s.projected_days || 0) - left), height: 11,
      class: (s.projected_days ?? 0) < floor ? 'fc bad' : (s.projected_days ?? 0) < s.keep_days ? 'fc warn' : 'fc' }));
    svg.append(el('line', { x1: x(s.keep_days), x2: x(s.keep_days), y1: y + 2, y2: y + 30, class: 'keep' }));
  });
  const ly = top + rowH * sources.length + 20;
  svg.append(el('rect', { x: left, y: ly - 10, width: 12, height: 10, class: 'now' }));
  svg.append(el('text', { x: left + 16, y: ly, class: 'axis' }, t('storage.legend_now')));
  svg.append(el('rect', { x: left + 180, y: ly - 10, width: 12, height: 10, class: 'fc' }));
  svg.append(el('text', { x: left + 196, y: ly, class: 'axis' }, t('storage.legend_forecast')));
  svg.append(el('line', { x1: left + 380, x2: left + 380, y1: ly - 11, y2: ly + 1, class: 'keep' }));
  svg.append(el('text', { x: left + 386, y: ly, class: 'axis' }, t('storage.legend_keep')));
  return h('div', { class: 'chart' }, svg);
}

export async function render() {
  const st = await get('/storage');
  const floor = app.ui.min_days;
  const used = st.sources.reduce((a, s) => a + s.bytes, 0);
  const card = (k, v) => h('div', { class: 'card' }, h('div', { class: 'k', text: t(k) }), h('div', { class: 'v', text: v }));
  const rows = st.sources.map((s) => h('tr', {},
    h('td', { text: s.source }), h('td', { class: 'num', text: fmtBytes(s.bytes) }),
    h('td', { class: 'num', text: fmtNum(s.depth_days) }),
    h('td', { class: 'num', text: String(s.keep_days) }),
    h('td', { class: 'num ' + ((s.projected_days ?? 0) < floor ? 'below' : ''), text: fmtNum(s.projected_days) }),
    h('td', { class: 'num hide-narrow', text: fmtBytes(s.bytes_per_day) }),
    h('td', { class: 'num hide-narrow', text: fmtBytes(s.held_bytes) }),
    h('td', { class: 'hide-narrow', text: fmtTime(s.oldest) })));
  const alarms = st.alarms.map((a) => h('li', { class: 'panel' },
    h('span', { class: 'status ' + a.severity, text: t('severity.' + a.severity) }), ' ',
    h('strong', { text: t('alarm.' + a.kind) }), ' — ', a.message,
    a.sources ? ' (' + a.sources + ')' : '',
    h('p', { class: 'hint', text: t('alarm.' + a.kind + '.todo') })));
  return [heading(t('storage.title')),
    h('div', { class: 'cards' }, card('storage.capacity', fmtBytes(st.capacity_bytes)),
      card('storage.free', fmtBytes(st.free_bytes)), card('storage.reserve', fmtBytes(st.reserve_bytes)),
      card('storage.used', fmtBytes(used)), card('storage.exports', fmtBytes(st.exports_bytes || 0))),
    h('h2', { text: t('storage.alarms') }),
    alarms.length ? h('ul', { class: 'alarms' }, alarms) : h('p', { class: 'msg ok', text: t('storage.no_alarms') }),
    h('h2', { text: t('storage.depth') }),
    st.sources.length ? chart(st.sources, floor) : null,
    table([t('col.source'), { text: t('col.bytes'), cls: 'num' }, { text: t('col.depth_days'), cls: 'num' },
      { text: t('col.keep_days'), cls: 'num' }, { text: t('col.forecast'), cls: 'num' },
      { text: t('col.per_day'), cls: 'num hide-narrow' }, { text: t('col.held'), cls: 'num hide-narrow' },
      { text: t('col.oldest'), cls: 'hide-narrow' }], rows, t('storage.depth')),
    h('p', { class: 'hint', text: t('storage.hint', { f: floor }) })];
}
