// Language and time: every string comes from i18n/<lang>.js; times from the
// API (UTC) are shown in the office's time zone with the offset visible.
import ru from '../i18n/ru.js';
import en from '../i18n/en.js';

const dicts = { ru, en };
export const languages = ['ru', 'en'];
let lang = 'ru';
let zone = 'UTC';
let timeFmt = null;

export function setLanguage(l) {
  lang = dicts[l] ? l : 'ru';
  document.documentElement.lang = lang;
  timeFmt = null;
}
export function language() { return lang; }

export function setZone(z) {
  zone = z || 'UTC';
  timeFmt = null;
}
export function timeZone() { return zone; }

// t('key', {n: 3}) -> the string with {n} replaced; the key itself when
// missing, so a gap is visible rather than blank.
export function t(key, vars) {
  let s = dicts[lang][key] ?? dicts.ru[key] ?? key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (_, k) => (vars[k] ?? ''));
  return s;
}

function formatter() {
  if (!timeFmt) {
    try {
      timeFmt = new Intl.DateTimeFormat(lang === 'ru' ? 'ru-RU' : 'en-GB', {
        timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit',
        hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false,
        timeZoneName: 'shortOffset',
      });
    } catch {
      zone = 'UTC';
      return formatter();
    }
  }
  return timeFmt;
}

// "02.12.2026, 11:18:55 GMT+3" for an RFC 3339 UTC time; "—" for none.
export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : formatter().format(d);
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '—';
  const units = t('units.bytes').split(',');
  let v = Number(n), i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return new Intl.NumberFormat(lang, { maximumFractionDigits: i ? 1 : 0 }).format(v) + ' ' + units[i];
}

export function fmtNum(n, digits = 1) {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  return new Intl.NumberFormat(lang, { maximumFractionDigits: digits }).format(n);
}

export function fmtBitrate(bps) {
  if (!bps) return '—';
  return fmtNum(bps / 1e6, 2) + ' ' + t('units.mbps');
}

// A local "YYYY-MM-DDTHH:MM" from a datetime-local input, read in the
// office's zone, -> the UTC instant as RFC 3339 for the API.
export function zonedToUtc(local) {
  if (!local) return null;
  const [d, tm] = local.split('T');
  const [y, mo, da] = d.split('-').map(Number);
  const [hh, mi] = tm.split(':').map(Number);
  const guess = Date.UTC(y, mo - 1, da, hh, mi);
  const offset = zoneOffsetMs(guess);
  return new Date(guess - zoneOffsetMs(guess - offset)).toISOString();
}

function zoneOffsetMs(utcMs) {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  }).formatToParts(new Date(utcMs));
  const p = Object.fromEntries(parts.map((x) => [x.type, x.value]));
  const asUtc = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
  return asUtc - Math.floor(utcMs / 1000) * 1000;
}

// The office-zone "YYYY-MM-DDTHH:MM" of a UTC instant, for datetime-local inputs.
export function utcToZoned(ms) {
  const local = new Date(ms + zoneOffsetMs(ms));
  return local.toISOString().slice(0, 16);
}
