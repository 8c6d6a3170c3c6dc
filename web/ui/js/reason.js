// [server] require_access_reason: opening a call or a recording then needs
// a reason, which the API stores in the audit row. A request refused for
// want of one (400, the access-reason error) asks the user in a modal
// dialog and is retried with the reason; the reason is kept for the rest
// of the page view, so the page's media requests carry it too (as
// reason=: the call's audio and peaks, the player's playlists).
import { h, field } from './dom.js';
import { t } from './i18n.js';
import { ApiError } from './api.js';

const MAX_BYTES = 150;
let given = null;
let page = null;

// The reason given on this page view (null when none was asked for).
export function accessReason() {
  return page === location.pathname + location.search ? given : null;
}

export function isReasonError(e) {
  return e instanceof ApiError && e.status === 400 && /reason/.test(e.code || '');
}

// fn(headers) -> a promise of the API answer; asked again once on refusal.
export async function withReason(fn) {
  const r = accessReason();
  try {
    return await fn(r ? { 'X-Access-Reason': r } : {});
  } catch (e) {
    if (!isReasonError(e)) throw e;
    const asked = await askReason();
    if (!asked) throw new ApiError(400, e.code, t('reason.needed'));
    given = asked;
    page = location.pathname + location.search;
    return fn({ 'X-Access-Reason': asked });
  }
}

// A URL of a media route with ?reason= when one was given.
export function withReasonParam(url) {
  const r = accessReason();
  return r ? url + (url.includes('?') ? '&' : '?') + 'reason=' + encodeURIComponent(r) : url;
}

function askReason() {
  return new Promise((resolve) => {
    const input = h('textarea', { name: 'reason', required: true, rows: '2', maxlength: '150' });
    const err = h('p', { class: 'msg error', role: 'alert' });
    let answer = null;
    const form = h('form', { method: 'dialog', onsubmit: (e) => {
      e.preventDefault();
      if (!input.value.trim()) { input.focus(); return; }
      // the API takes up to 150 bytes (UTF-8: 75 Cyrillic letters)
      if (new TextEncoder().encode(input.value.trim()).length > MAX_BYTES) {
        err.textContent = t('reason.too_long', { n: MAX_BYTES });
        input.focus();
        return;
      }
      answer = input.value.trim();
      d.close();
    } },
    h('p', { text: t('reason.text') }),
    field(t('reason.label'), input), err,
    h('div', { class: 'actions' }, h('button', { type: 'submit', text: t('reason.go') }),
      h('button', { type: 'button', class: 'secondary', text: t('reason.cancel'), onclick: () => d.close() })));
    const d = h('dialog', { class: 'dlg', 'aria-labelledby': 'reason-title' },
      h('h2', { id: 'reason-title', text: t('reason.title') }), form);
    d.addEventListener('close', () => { d.remove(); resolve(answer); });
    document.body.append(d);
    d.showModal();
    input.focus();
  });
}
