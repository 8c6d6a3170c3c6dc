// How the contact-centre pages show a call's fields: durations, direction,
// origin, the announcement check, and the CSV of a list of calls.
import { t, fmtNum } from '../i18n.js';

// Seconds of a call (null while it goes on).
export function seconds(c) {
  if (!c.end) return null;
  const s = (Date.parse(c.end) - Date.parse(c.start)) / 1000;
  return Number.isFinite(s) ? Math.max(0, s) : null;
}

// 75 -> "1:15", 3675 -> "1:01:15".
export function fmtDur(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return '—';
  const n = Math.round(s), hh = Math.floor(n / 3600), mm = Math.floor((n % 3600) / 60), ss = n % 60;
  const p = (x) => String(x).padStart(2, '0');
  return hh ? `${hh}:${p(mm)}:${p(ss)}` : `${mm}:${p(ss)}`;
}

export const dirText = (d) => (d ? t('dir.' + d) : '—');
export const originText = (o) => (o ? t('origin.' + o) : '—');

// The announcement result as the API gives it: an object {state, offset_s,
// score} or only its state; null when not checked.
export function annState(c) {
  const a = c.announcement;
  if (!a) return null;
  return typeof a === 'string' ? a : a.state || null;
}

export function annText(c) {
  const a = c.announcement, st = annState(c);
  if (!st) return t('ann.none');
  const state = t('ann.' + st);
  if (typeof a === 'object' && (st === 'present' || st === 'partial') && Number.isFinite(a.offset_s)) {
    return t('ann.detail', { state, offset: fmtNum(a.offset_s, 1), score: fmtNum(a.score, 2) });
  }
  return state;
}

export const tagsText = (c) => (Array.isArray(c.tags) ? c.tags.join(', ') : c.tags || '');

// One CSV cell: quoted when needed; a text a spreadsheet would run as a
// formula (=, @, or + and - not followed by a plain number) gets a leading
// apostrophe, so a hostile note cannot become a formula.
function cell(v) {
  let s = v === null || v === undefined ? '' : String(v);
  if (/^[=@\t\r]/.test(s) || (/^[+-]/.test(s) && !/^[+-][\d\s().-]*$/.test(s))) s = "'" + s;
  return /[",\n\r;]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}

export const CSV_COLUMNS = ['id', 'call_id', 'source', 'start', 'end', 'seconds', 'direction', 'caller',
  'callee', 'agent', 'queue', 'account', 'disposition', 'tags', 'notes', 'origin', 'announcement'];

// The calls as CSV (RFC 4180, UTF-8 with a byte-order mark so spreadsheet
// programs read Cyrillic right); times in UTC as the API gives them.
export function callsCsv(calls) {
  const lines = [CSV_COLUMNS.join(',')];
  for (const c of calls) {
    const row = { ...c, seconds: seconds(c), tags: Array.isArray(c.tags) ? c.tags.join(';') : c.tags,
      announcement: annState(c) };
    lines.push(CSV_COLUMNS.map((k) => cell(row[k])).join(','));
  }
  return '\ufeff' + lines.join('\r\n') + '\r\n';
}
