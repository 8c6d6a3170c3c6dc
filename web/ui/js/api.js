// The documented JSON API, with the session cookie and, on changes, the
// CSRF header the API requires. Errors become ApiError with the API's code.
export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
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
  const res = await fetch('/api/v1' + path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const type = res.headers.get('Content-Type') || '';
  const data = type.startsWith('application/json') ? await res.json() : await res.text();
  if (!res.ok) {
    if (res.status === 401 && path !== '/login' && expired) expired();
    const e = (data && data.error) || {};
    throw new ApiError(res.status, e.code || 'http_' + res.status, e.message || res.statusText,
      Number(res.headers.get('Retry-After')) || 0);
  }
  return data;
}

export const get = (path) => api('GET', path);
