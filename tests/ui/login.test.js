// Login and logout, a wrong password said in words, Russian by default and
// English from the browser's language.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, newPage, login, ready, axe, shot, noProblems, auditRows, BASE } from './helpers.js';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

test('login page: fixed entry points, Russian by default, no axe violations', async () => {
  const page = await newPage(browser);
  await page.goto(BASE + '/');
  await page.waitForURL(/\/login/);
  await ready(page);
  assert.equal(await page.getAttribute('html', 'lang'), 'ru');
  assert.equal(await page.textContent('h1'), 'Вход в систему');
  for (const sel of ['input[name=user]', 'input[name=password]', 'button[type=submit]'])
    assert.equal(await page.locator(sel).count(), 1, sel);
  await axe(page, 'login');
  await shot(page, 'login');
  noProblems(page);
  await page.context().close();
});

test('wrong password is refused in words and leaves no session', async () => {
  const page = await newPage(browser);
  await page.goto(BASE + '/login');
  await ready(page);
  await page.fill('input[name=user]', 'admin');
  await page.fill('input[name=password]', 'not-the-password');
  await page.click('button[type=submit]');
  await page.waitForSelector('[role=alert]:has-text("Неверное имя пользователя или пароль")');
  assert.match(page.url(), /\/login/);
  const me = await page.request.get(BASE + '/api/v1/me');
  assert.equal(me.status(), 401);
  await page.context().close();
});

test('log in, land on the sources page, log out', async () => {
  const page = await newPage(browser);
  await login(page, 'admin');
  assert.equal(new URL(page.url()).pathname, '/');
  await page.waitForSelector('h1:has-text("Источники")');
  await page.click('button:has-text("Выйти")');
  await page.waitForURL(/\/login/);
  assert.equal((await page.request.get(BASE + '/api/v1/me')).status(), 401);
  const rows = await auditRows(await adminPage(), 'logout');
  assert.ok(rows.some((r) => r.actor === 'user:admin'), 'logout audited');
  noProblems(page);
  await page.context().close();
});

test('English from Accept-Language', async () => {
  const page = await newPage(browser, { locale: 'en-GB' });
  await page.goto(BASE + '/login');
  await ready(page);
  assert.equal(await page.textContent('h1'), 'Sign in');
  assert.equal(await page.getAttribute('html', 'lang'), 'en');
  await login(page, 'guard'); // has not picked a language: the browser's applies
  await page.waitForSelector('h1:has-text("Sources")');
  await axe(page, 'sources (en)');
  await page.context().close();
});

test('a deep link survives the login', async () => {
  const page = await newPage(browser);
  await page.goto(BASE + '/holds');
  await page.waitForURL(/\/login\?next=/);
  await ready(page);
  await page.fill('input[name=user]', 'inv');
  await page.fill('input[name=password]', process.env.VIGIL_PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForURL((u) => u.pathname === '/holds');
  await page.context().close();
});

let admin;
async function adminPage() {
  if (!admin) {
    admin = await newPage(browser);
    await login(admin, 'admin');
  }
  return admin;
}

test('keyboard alone: skip link, login form, menu, with a visible focus ring', async () => {
  const page = await newPage(browser);
  await page.goto(BASE + '/login');
  await ready(page);
  // the user field has focus on arrival; type, tab, type, Enter
  await page.keyboard.type('guard');
  await page.keyboard.press('Tab');
  await page.keyboard.type(process.env.VIGIL_PASSWORD);
  await page.keyboard.press('Enter');
  await page.waitForURL((u) => u.pathname === '/');
  await ready(page);
  // after a page change the focus is on its heading
  assert.equal(await page.evaluate(() => document.activeElement.tagName), 'H1');
  // backwards through the header to the skip link, which jumps to the content
  for (let i = 0; i < 20 && await page.evaluate(() => document.activeElement.id !== 'skip'); i++)
    await page.keyboard.press('Shift+Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'skip');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.activeElement.id === 'main' || location.hash === '#main');
  // forwards to the first source; its focus ring is visible
  for (let i = 0; i < 20; i++) {
    if (await page.evaluate(() => (document.activeElement.getAttribute('href') || '').startsWith('/sources/'))) break;
    await page.keyboard.press('Tab');
  }
  const ring = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(ring, 'none', 'focus is visible');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => location.pathname.startsWith('/sources/'));
  await page.context().close();
});
