// The app shell: who is logged in, the menu their permissions allow, and a
// client-side router over the History API. vigild answers every UI route
// with this shell; a route the user may not use shows "not found" and is
// not in the menu.
import { api, ApiError, onExpired } from './api.js';
import { h, clear } from './dom.js';
import { t, setLanguage, setZone, language, languages } from './i18n.js';

// path pattern, permissions (any of; [] = any logged-in user), loader, menu key
const routes = [
  { path: /^\/$/, perms: ['live', 'playback', 'calls'], page: 'sources', menu: 'menu.sources' },
  { path: /^\/sources\/([a-z0-9][a-z0-9-]{0,62})$/, perms: ['live', 'playback', 'calls'], page: 'source' },
  { path: /^\/live$/, perms: ['live'], page: 'live', menu: 'menu.live' },
  { path: /^\/calls$/, perms: ['calls'], page: 'calls', menu: 'menu.calls' },
  { path: /^\/calls\/([0-9]{1,15})$/, perms: ['calls'], page: 'call' },
  { path: /^\/view$/, perms: ['playback', 'calls'], page: 'view', menu: 'menu.view' },
  // audit: the API lists every export to it (web/routes_export.c)
  { path: /^\/exports$/, perms: ['export', 'audit'], page: 'exports', menu: 'menu.exports' },
  { path: /^\/holds$/, perms: ['hold'], page: 'holds', menu: 'menu.holds' },
  { path: /^\/admin\/storage$/, perms: ['admin'], page: 'storage', menu: 'menu.storage' },
  { path: /^\/admin\/sources$/, perms: ['admin'], page: 'admin_sources', menu: 'menu.admin_sources' },
  { path: /^\/admin\/users$/, perms: ['admin'], page: 'users', menu: 'menu.users' },
  { path: /^\/admin\/tokens$/, perms: ['admin'], page: 'tokens', menu: 'menu.tokens' },
  { path: /^\/admin\/audit$/, perms: ['audit'], page: 'audit', menu: 'menu.audit' },
  { path: /^\/admin\/destruction-log$/, perms: ['audit'], page: 'destruction', menu: 'menu.destruction' },
  // call quality: QA forms, reports, calls missing the announcement
  { path: /^\/qa\/forms$/, perms: ['admin'], page: 'qa_forms', menu: 'menu.qa_forms' },
  { path: /^\/reports$/, perms: ['annotate', 'audit', 'admin'], page: 'reports', menu: 'menu.reports' },
  { path: /^\/reports\/announcement-missing$/, perms: ['calls', 'annotate', 'audit'], page: 'announcement_missing' },
];
const menuPaths = {
  calls: '/calls',
  sources: '/', view: '/view', exports: '/exports', holds: '/holds', storage: '/admin/storage', admin_sources: '/admin/sources',
  users: '/admin/users', tokens: '/admin/tokens', audit: '/admin/audit',
  destruction: '/admin/destruction-log',
  qa_forms: '/qa/forms', reports: '/reports',
  live: '/live',
};

export const app = { me: null, ui: null };
const main = () => document.getElementById('main');

export function allowed(route, me) {
  if (!me) return false;
  return route.perms.length === 0 || route.perms.some((p) => me.permissions.includes(p));
}

// Where a user starts: the sources page, or for a user who may not see it
// (an officer: audit only) the first menu entry they may use.
export function home(me) {
  const first = routes.find((r) => r.menu && allowed(r, me));
  return first ? menuPaths[first.page] : '/';
}

export function navigate(path, replace) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render();
}

export function title(text) {
  document.title = text + ' — vigil';
}

function header() {
  const top = clear(document.getElementById('top'));
  document.getElementById('skip').textContent = t('skip');
  if (!app.me) return;
  const here = location.pathname;
  const items = routes.filter((r) => r.menu && allowed(r, app.me)).map((r) => {
    const path = menuPaths[r.page];
    return h('li', {}, h('a', { href: path, 'aria-current': here === path ? 'page' : null,
      text: t(r.menu) }));
  });
  const langSel = h('select', { 'aria-label': t('lang.label'), onchange: (e) => switchLanguage(e.target.value) },
    languages.map((l) => h('option', { value: l, selected: l === language(), text: t('lang.' + l) })));
  top.append(h('nav', { class: 'bar', 'aria-label': t('menu.label') },
    h('a', { class: 'brand', href: '/', text: 'vigil' }),
    h('ul', { class: 'menu' }, items),
    h('div', { class: 'who' },
      h('span', { text: app.me.user + ' · ' + t('role.' + app.me.role) }),
      langSel,
      h('button', { class: 'link', type: 'button', onclick: logout, text: t('logout') }))));
}

export async function switchLanguage(l) {
  setLanguage(l);
  localStorage.setItem('vigil.lang', l);
  if (app.me) {
    try { await api('PUT', '/me/language', { language: l }); } catch { /* kept locally */ }
  }
  render();
}

async function logout() {
  app.me = null; // a session gone already is no reason to come back here (onExpired)
  try { await api('POST', '/logout'); } catch { /* the session may be gone already */ }
  navigate('/login');
}

export function notFound() {
  title(t('notfound.title'));
  return [h('h1', { tabindex: '-1', text: t('notfound.title') }), h('p', { text: t('notfound.text') }),
    h('p', {}, h('a', { href: '/', text: t('notfound.home') }))];
}

// The session ended under an open page (expired, logged out elsewhere, the
// password changed): once, whichever request noticed it, the login page,
// which sends the user back here afterwards.
onExpired(() => {
  if (!app.me || location.pathname === '/login') return;
  app.me = null;
  navigate('/login?next=' + encodeURIComponent(location.pathname + location.search), true);
});

async function loadMe() {
  try {
    app.me = await api('GET', '/me');
    if (app.me.user) {
      const { language: l } = await api('GET', '/me/language');
      if (l) {
        setLanguage(l);
        localStorage.setItem('vigil.lang', l);
      }
    }
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) throw e;
    app.me = null;
  }
}

export async function afterLogin(me) {
  app.me = me;
  await loadMe();
  const next = new URLSearchParams(location.search).get('next');
  navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : home(app.me), true);
}

let seq = 0;
export async function render() {
  const my = ++seq;
  const path = location.pathname;
  const m = main();
  // the page drawn last, for tests and tools waiting on a page change
  delete document.body.dataset.rendered;
  if (path === '/login') {
    header();
    const mod = await import('./pages/login.js');
    if (my !== seq) return;
    clear(m).append(...mod.render());
    m.querySelector('input')?.focus();
    document.body.dataset.rendered = path;
    return;
  }
  if (!app.me) {
    navigate('/login?next=' + encodeURIComponent(path + location.search), true);
    return;
  }
  if (path === '/' && home(app.me) !== '/') {
    navigate(home(app.me), true);
    return;
  }
  header();
  const route = routes.find((r) => r.path.test(path));
  let nodes;
  if (!route || !allowed(route, app.me)) {
    nodes = notFound();
  } else {
    const mod = await import('./pages/' + route.page + '.js');
    if (my !== seq) return;
    clear(m).append(h('p', { class: 'loading', text: t('loading') }));
    try {
      nodes = await mod.render(path.match(route.path), route);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return; // the login page is drawn (onExpired)
      nodes = [h('h1', { text: t('error.title') }), h('p', { class: 'msg error', role: 'alert', text: e.message })];
    }
  }
  if (my !== seq) return;
  clear(m).append(...nodes);
  (m.querySelector('h1') || m).focus({ preventScroll: true });
  document.body.dataset.rendered = path;
}

// Same-origin links route on the client; downloads and new tabs do not.
document.addEventListener('click', (e) => {
  const a = e.target.closest('a');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
  if (a.origin !== location.origin || a.hasAttribute('download') || a.target) return;
  if (a.pathname.startsWith('/api/') || a.getAttribute('href').startsWith('#')) return;
  e.preventDefault();
  navigate(a.pathname + a.search);
});
window.addEventListener('popstate', render);

async function boot() {
  app.ui = await api('GET', '/ui');
  setZone(app.ui.timezone);
  setLanguage(localStorage.getItem('vigil.lang') || app.ui.language);
  await loadMe();
  await render();
  document.body.dataset.ready = '1';
}

boot().catch((e) => {
  clear(main()).append(h('p', { class: 'msg error', role: 'alert', text: String(e.message || e) }));
});

// A page's h1 (focused after navigation, for screen readers) and its title.
export function heading(text) {
  title(text);
  return h('h1', { tabindex: '-1', text });
}
