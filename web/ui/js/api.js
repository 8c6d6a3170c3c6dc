// The documented JSON API, with the session cookie and, on changes, the
// CSRF header the API requires. Errors become ApiError with the API's code
// and a message in the user's language (the API's own English text is kept
// as detail).
import { t } from './i18n.js';

export class ApiError extends Error {
  constructor(status, code, message, retryAfter, detail) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    this.detail = detail;
  }
}

// The user's words for an API error code (i18n key error.<code>); a code
// without its own sentence is named in a general one.
export function errorText(code) {
  const key = 'error.' + code;
  const s = t(key);
  return s !== key ? s : t('error.generic', { code });
}

// What to do once when a request finds the session gone (401): the app
// shell forgets the user and shows the login page (see app.js). The login
// itself answers 401 for a wrong password: that is the login page's to say.
let expired = null;
export function onExpired(fn) { expired = fn; }

// extra: more request headers (X-Access-Reason).
export async function api(method, path, body, extra) {
  const headers = { Accept: 'application/json', ...extra };
  if (method !== 'GET') headers['X-Requested-With'] = 'vigil';
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch('/api/v1' + path, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, 'network', errorText('network'), 0, String(e.message || e));
  }
  const type = res.headers.get('Content-Type') || '';
  const data = type.startsWith('application/json') ? await res.json() : await res.text();
  if (!res.ok) {
    if (res.status === 401 && path !== '/login' && expired) expired();
    const e = (data && data.error) || {};
    const code = e.code || 'http_' + res.status;
    throw new ApiError(res.status, code, errorText(code), Number(res.headers.get('Retry-After')) || 0,
      e.message || res.statusText);
  }
  return data;
}

export const get = (path) => api('GET', path);
